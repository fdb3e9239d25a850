"""The dashboard's web application (Starlette): four read-only routes over :class:`Views`.

``/`` is the page (no data in it), ``/dashboard.css`` and ``/dashboard.js`` its parts,
``/api/overview`` and ``/api/tenants/{id}`` the JSON the page polls. One middleware keeps
the rules for every request, matched or not:

* only ``GET`` and ``HEAD``: anything else is ``405`` (the dashboard changes nothing);
* with a token, every request carries it: ``Authorization: Bearer TOKEN``, or a cookie set
  when a page was opened once with ``?token=TOKEN`` (then redirected to drop it from the
  address bar); compared in constant time. Without it, ``401``;
* ``allowed_hosts`` (a loopback bind): a ``Host`` header naming anything else is refused, so
  a web page elsewhere cannot reach the dashboard through DNS rebinding;
* every response says ``Content-Security-Policy: default-src 'self'`` (no inline script, no
  other origin), ``X-Content-Type-Options: nosniff``, ``Cache-Control: no-store``, no
  referrer, no framing.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .page import LEGEND, PAGE, SCRIPT, stylesheet
from .views import Views

__all__ = ["COOKIE", "HEADERS", "create_app"]

COOKIE = "flamingock_dashboard"
"""The cookie that carries the token after a page was opened with ``?token=``."""

HEADERS = {
    "content-security-policy": "default-src 'self'; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
"""Set on every response."""

_READ = frozenset({"GET", "HEAD"})


def create_app(views: Views, *, token: str | None = None, poll_seconds: float = 2.0,
               allowed_hosts: Sequence[str] | None = None) -> ASGIApp:
    """The dashboard over ``views``: with ``token``, every request must carry it; with
    ``allowed_hosts``, the ``Host`` header must name one of them (any port)."""
    page = PAGE.replace("{poll_ms}", str(int(poll_seconds * 1000)))
    css = stylesheet()

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    async def styles(request: Request) -> Response:
        return Response(css, media_type="text/css; charset=utf-8")

    async def script(request: Request) -> Response:
        return Response(SCRIPT, media_type="text/javascript; charset=utf-8")

    async def overview(request: Request) -> Response:
        # The store's reads are short key lookups; made here, one at a time (Views locks).
        return JSONResponse(views.overview() | {"legend": LEGEND})

    async def tenant(request: Request) -> Response:
        found = views.tenant(request.path_params["tenant"])
        if found is None:
            return JSONResponse({"error": "no such tenant on this dashboard"}, status_code=404)
        return JSONResponse(found)

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)  # none; the browser's request is not an error

    routes = [Route("/", index), Route("/favicon.ico", favicon), Route("/dashboard.css", styles),
              Route("/dashboard.js", script), Route("/api/overview", overview),
              Route("/api/tenants/{tenant}", tenant)]
    return _Guard(Starlette(routes=routes), token, allowed_hosts)


class _Guard:
    """The rules every request meets before a route sees it (see the module's docstring)."""

    def __init__(self, app: ASGIApp, token: str | None,
                 allowed_hosts: Sequence[str] | None) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode().lower() not in HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        refused = self._refusal(scope)
        if refused is not None:
            await refused(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)

    def _refusal(self, scope: Scope) -> Response | None:
        if scope["method"] not in _READ:
            return PlainTextResponse("read-only: only GET and HEAD", status_code=405,
                                     headers={"Allow": "GET, HEAD"})
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.hosts is not None and _host(headers.get("host", "")) not in self.hosts:
            return PlainTextResponse("unknown host", status_code=400)
        if self.token is None:
            return None
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        given = dict(query).get("token")
        if given is not None:
            if not self._is_token(given):
                return _unauthorized()
            # Once: a cookie from now on, and the token out of the address bar and history.
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            response = RedirectResponse(scope["path"] + (f"?{rest}" if rest else ""), 303)
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict",
                                secure=scope.get("scheme") == "https", path="/")
            return response
        bearer = headers.get("authorization", "")
        if bearer[:7].lower() == "bearer " and self._is_token(bearer[7:].strip()):
            return None
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except CookieError:  # a malformed cookie header carries no token
            return _unauthorized()
        if COOKIE in cookie and self._is_token(cookie[COOKIE].value):
            return None
        return _unauthorized()

    def _is_token(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token)


def _host(value: str) -> str:
    """The host of a ``Host`` header, without its port (``[::1]:8080`` is ``[::1]``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _unauthorized() -> Response:
    return PlainTextResponse("this dashboard needs its token: open it with ?token=TOKEN once, "
                             "or send Authorization: Bearer TOKEN", status_code=401,
                             headers={"WWW-Authenticate": "Bearer"})
