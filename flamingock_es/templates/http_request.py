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
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..changes import ChangeContext
from .base import Template, TemplateParams, register

__all__ = ["HttpRequest"]


class HttpParams(TemplateParams):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    expect_status: list[int] = Field(default_factory=lambda: list(range(200, 300)))
    timeout: float = 10.0


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
        raise HttpRequestFailed(f"{params.method} {params.url} failed: {reason}") from exc
    if status not in params.expect_status:
        raise HttpRequestFailed(f"{params.method} {params.url} answered {status}, "
                                f"expected one of {params.expect_status}")
    ctx.log.info("%s %s -> %s", params.method, params.url, status)
