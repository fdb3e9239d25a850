"""``flamingock-es dashboard``: a read-only web page over the projection store.

:mod:`.views` reads the projected documents and arranges them (no Starlette in it);
:mod:`.app` is the web application and its rules (read-only, a token beyond loopback, strict
headers); :mod:`.page` the page, its style and script; :mod:`.server` runs it with uvicorn.
The web stack is the optional ``dashboard`` extra, imported only by :mod:`.app` and
:mod:`.server`; see docs/dashboard.md.
"""

from __future__ import annotations

from .views import Hints, Tenant, Views

__all__ = ["Hints", "Tenant", "Views"]
