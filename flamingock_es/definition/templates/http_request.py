"""``http-request``: one REST call, e.g. switching a feature flag on in a SaaS dashboard.

```yaml
template: http-request
apply:    {method: PUT, url: "${FLAGS_URL}/flags/new-checkout", json: {enabled: true},
           headers: {Authorization: "Bearer ${FLAGS_TOKEN}"}}
rollback: {method: PUT, url: "${FLAGS_URL}/flags/new-checkout", json: {enabled: false},
           headers: {Authorization: "Bearer ${FLAGS_TOKEN}"}}
```
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http import HTTPStatus
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field

from ...core.changes import ChangeContext
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

    @property
    def statuses(self) -> list[int]:
        """``expect_status`` as a list, however it was written."""
        wanted = self.expect_status
        return [wanted] if isinstance(wanted, int) else list(wanted)


class HttpRequestFailed(RuntimeError):
    """The call returned an unexpected status or did not complete."""


@register
class HttpRequest(Template):
    name = "http-request"
    Params = HttpParams
    secret_fields: ClassVar[frozenset[str]] = frozenset({"Authorization", "X-Api-Key"})

    def apply(self, params: HttpParams, ctx: ChangeContext) -> None:
        _call(params, ctx)

    def rollback(self, params: HttpParams, ctx: ChangeContext) -> None:
        _call(params, ctx)


def _call(params: HttpParams, ctx: ChangeContext) -> None:
    data: bytes | None = None
    headers = dict(params.headers)
    if params.json_body is not None:
        data = json.dumps(params.json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif params.body is not None:
        data = params.body.encode()
    request = urllib.request.Request(params.url, data=data, headers=headers,
                                     method=params.method)
    try:
        with urllib.request.urlopen(request, timeout=params.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HttpRequestFailed(f"{params.method} {_where(params.url)} failed: {reason}") \
            from exc
    expected = params.statuses
    if status not in expected:
        raise HttpRequestFailed(f"{params.method} {_where(params.url)}: expected "
                                f"{describe_statuses(expected)}, got {status}"
                                f"{_phrase(status)}")
    ctx.log.info("%s %s -> %s", params.method, _where(params.url), status)


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
