"""``http-request``: one REST call, e.g. switching a feature flag on in a SaaS dashboard.

```yaml
template: http-request
apply:    {method: PUT, url: "${FLAGS_URL}/flags/new-checkout", json: {enabled: true},
           headers: {Authorization: "Bearer ${FLAGS_TOKEN}"}}
rollback: {method: PUT, url: "${FLAGS_URL}/flags/new-checkout", json: {enabled: false},
           headers: {Authorization: "Bearer ${FLAGS_TOKEN}"}}
```

Every call carries the unit's idempotency key in an ``Idempotency-Key`` header (the IETF
httpapi draft's name, which Stripe, Adyen and others read): the same on every attempt of
one application of the unit (an ``always-retry`` unit re-run after a crash sends the same
key, so such a server applies it once), another one for its rollback and for the next
application. ``idempotency_header`` renames it, or ``off`` leaves it out; a header of that
name in ``headers`` wins. The lock is checked right before the call goes out.

A call that provably changed nothing fails as *not started* (``StepNotStarted``: no
rollback runs, the next run tries again once the cause is fixed): the connection was
refused, the name did not resolve, the host or network was unreachable, the certificate was
refused, the URL cannot be called at all, or the server answered 4xx (it refused the
request). A timeout, a connection cut mid-request or a 5xx may have changed something: the
unit fails as usual (compensated, or a person decides).
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
import urllib.error
import urllib.request
from http import HTTPStatus
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field

from ...core.changes import ChangeContext
from ...errors import StepNotStarted
from .base import Template, TemplateParams, register

__all__ = ["HttpRequest"]


class HttpParams(TemplateParams):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    expect_status: int | list[int] = Field(
        default_factory=lambda: list(range(200, 300)),
        description="The status (201) or statuses ([200, 204]) that mean success; default "
                    "any 2xx.")
    timeout: float = 10.0
    idempotency_header: str | Literal[False] | None = "Idempotency-Key"
    """The header that carries the unit's idempotency key; ``off`` (or null) sends none."""

    @property
    def statuses(self) -> list[int]:
        """``expect_status`` as a list, however it was written."""
        wanted = self.expect_status
        return [wanted] if isinstance(wanted, int) else list(wanted)


class HttpRequestFailed(RuntimeError):
    """The call returned an unexpected status or did not complete: it may have changed
    something on the server."""


_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL,
                          errno.EAFNOSUPPORT})


@register
class HttpRequest(Template):
    name = "http-request"
    Params = HttpParams
    secret_fields: ClassVar[frozenset[str]] = frozenset({"Authorization", "X-Api-Key"})

    def apply(self, params: HttpParams, ctx: ChangeContext) -> None:
        _call(params, ctx)

    def rollback(self, params: HttpParams, ctx: ChangeContext) -> None:
        _call(params, ctx)

    def precondition(self, params: HttpParams, ctx: ChangeContext) -> bool:
        """The call (a GET, usually) answers one of ``expect_status``; another status means
        it does not hold; a call that cannot be made is an error, not an answer."""
        return _call(params, ctx, answer_only=True)


def _call(params: HttpParams, ctx: ChangeContext, *, answer_only: bool = False) -> bool:
    data: bytes | None = None
    headers = dict(params.headers)
    if params.json_body is not None:
        data = json.dumps(params.json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif params.body is not None:
        data = params.body.encode()
    named = params.idempotency_header
    if named and ctx.idempotency_key and named.lower() not in {h.lower() for h in headers}:
        headers[named] = ctx.idempotency_key
    call = f"{params.method} {_where(params.url)}"
    try:
        request = urllib.request.Request(params.url, data=data, headers=headers,
                                         method=params.method)
    except ValueError:  # its text quotes the whole URL, query (tokens) included
        raise StepNotStarted(f"{call}: the URL cannot be called (it needs http:// or "
                             "https:// and a host); nothing was sent") from None
    ctx.check_lock()  # a holder that lost the lock sends nothing
    try:
        with urllib.request.urlopen(request, timeout=params.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if never_sent(reason):
            raise StepNotStarted(f"{call} failed: {reason}; the request was never sent, so "
                                 "nothing was changed") from exc
        raise HttpRequestFailed(f"{call} failed: {reason}") from exc
    expected = params.statuses
    if answer_only:
        ctx.log.info("%s -> %s (precondition)", call, status)
        return status in expected
    if status not in expected:
        problem = (f"{call}: expected {describe_statuses(expected)}, got {status}"
                   f"{_phrase(status)}")
        if 400 <= status < 500:
            raise StepNotStarted(f"{problem}; the server refused the request, so nothing was "
                                 "changed")
        raise HttpRequestFailed(problem)
    ctx.log.info("%s -> %s", call, status)
    return True


def never_sent(reason: object) -> bool:
    """True if a call failed before any byte of the request could reach the server: refused,
    not resolved, unreachable, a certificate refused, a scheme or URL urllib cannot call."""
    if isinstance(reason, str | ValueError):  # "unknown url type", "no host given"
        return True
    if isinstance(reason, ConnectionRefusedError | socket.gaierror
                  | ssl.SSLCertVerificationError):
        return True
    return isinstance(reason, OSError) and not isinstance(reason, TimeoutError) \
        and reason.errno in _UNREACHABLE


def describe_statuses(codes: list[int]) -> str:
    """``2xx`` for a whole class, ``200-204`` for a longer run, ``200, 201 or 409`` else."""
    parts: list[str] = []
    wanted = sorted(set(codes))
    while wanted:
        first = wanted[0]
        if first % 100 == 0 and all(c in wanted for c in range(first, first + 100)):
            parts.append(f"{first // 100}xx")
            wanted = [c for c in wanted if c >= first + 100]
            continue
        last = first
        while last + 1 in wanted:
            last += 1
        run = [str(first), str(last)] if last == first + 1 else [f"{first}-{last}"]
        parts += [str(first)] if last == first else run
        wanted = [c for c in wanted if c > last]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"


def _phrase(status: int) -> str:
    try:
        return f" ({HTTPStatus(status).phrase})"
    except ValueError:
        return ""


def _where(url: str) -> str:
    """The URL for messages, which reach the audit log: credentials and the query (where
    tokens travel) are left out."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = "?..." if parts.query else ""
    return f"{parts.scheme}://{host}{parts.path}{query}"
