"""The dashboard's command: ``dashboard`` serves a read-only page over the projection store."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from .. import api
from ..definition.settings import DEFAULT_STORE, Settings
from ..errors import ConfigError, MissingExtraError, Remedy, RemedyKind
from .output import settings
from .remedies import command

if TYPE_CHECKING:
    from ..dashboard import Views

__all__ = ["register"]

LOOPBACK = "127.0.0.1"


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve a read-only web page over the projection store: the rollouts with their waves
    and budget, a tenants x units grid coloured by state, and one tenant's history (who
    requested, who applied) with its verification state.

    It reads the projected documents only, never the log: keep `flamingock-es project
    --all-tenants` (or `project`, for a workflow without tenants) running beside it. The
    page refreshes itself every --poll seconds. It binds to 127.0.0.1 unless --host names
    another address; beyond loopback a --token (or FLAMINGOCK_DASHBOARD_TOKEN) is required,
    and every request must then carry it (open the printed URL once, or send
    `Authorization: Bearer TOKEN`). Only GET and HEAD are served. It prints the URL it
    serves on (--port 0: a free port); Ctrl-C or SIGTERM stops it."""
    try:
        from ..dashboard.app import create_app
        from ..dashboard.server import bind, is_loopback, serve
    except ImportError as exc:
        raise MissingExtraError("flamingock-es dashboard", "dashboard",
                                exc.name or "starlette") from exc
    s = settings(args)
    token = args.token or s.dashboard_token
    loopback = is_loopback(args.host)
    if not loopback and not token:
        raise ConfigError(f"dashboard --host {args.host} is beyond loopback: anyone who "
                          "reaches it would read every tenant's history. Give it a --token "
                          "(or FLAMINGOCK_DASHBOARD_TOKEN) that every request must carry, or "
                          f"bind to {LOOPBACK}")
    views = _views(args, s)
    app = create_app(views, token=token, poll_seconds=args.poll,
                     allowed_hosts=None if not loopback else
                     ["127.0.0.1", "localhost", "[::1]", args.host.lower()])
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise ConfigError(f"dashboard: cannot listen on {args.host}:{args.port}: "
                          f"{exc.strerror or exc}") from exc
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{port}/"
    print(f"flamingock-es dashboard: serving {views.workflow} from {s.store} on {url}",
          flush=True)
    if token:  # never printed: it is a secret, and this output ends up in logs
        print("  every request needs the token: open the URL once with ?token=TOKEN, or send "
              "Authorization: Bearer TOKEN", flush=True)
    if not args.quiet:
        print(f"  reads the projection only; keep it current with: {views.hints.project}",
              flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, on_signal)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve(app, sock, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        views.store.close()
    if not args.quiet:
        print("flamingock-es dashboard: stopped", flush=True)
    return 0


def _views(args: argparse.Namespace, s: Settings) -> Views:
    """What the page shows: every tenant (or those named), and the rollouts; a workflow
    without tenants is one row, its own namespace."""
    from ..dashboard import Hints, Tenant, Views  # the page's reader: only this command's

    rollouts: str | None = None
    if s.tenants is None:
        tenants = [Tenant(s.namespace, s.namespace)]
        project = command(Remedy(RemedyKind.PROJECT)).replace(" --once", "")
    else:
        known = [s.tenant] if s.tenant is not None else s.tenant_list()
        if args.tenants:
            wanted = [t.strip() for t in args.tenants.split(",") if t.strip()]
            found = {t.id: t for t in known}
            missing = [t for t in wanted if t not in found]
            if missing:
                raise ConfigError(f"dashboard --tenants: unknown tenant(s) "
                                  f"{', '.join(missing)} (the workflow's tenants: "
                                  f"{', '.join(sorted(found))})")
            known = [found[t] for t in wanted]
        tenants = [Tenant(t.id, t.namespace) for t in known]
        rollouts = api.rollout_settings(s).namespace
        project = command(Remedy(RemedyKind.PROJECT_TENANTS))
    if args.store:
        project += f" --store {args.store}"

    def remedy(kind: str, position: int | None, namespace: str) -> str:
        try:
            known_kind = RemedyKind(kind)
        except ValueError:
            return ""
        return f"{command(Remedy(known_kind, position=position))} --namespace {namespace}"

    reader = api.open_projection(s)  # its store is the dashboard's, closed when it stops
    return Views(reader.store, s.name or s.parent_namespace, tenants, rollouts,
                 Hints(project, remedy))


def register(add: Any) -> None:
    """Add the dashboard's command through ``add(name, handler) -> parser``."""
    p = add("dashboard", cmd_dashboard)
    p.add_argument("--host", default=LOOPBACK,
                   help=f"the address to listen on (default {LOOPBACK}); beyond loopback a "
                        "--token is required")
    p.add_argument("--port", type=int, default=8765,
                   help="the port (default 8765; 0: a free one, printed)")
    p.add_argument("--token", metavar="TOKEN",
                   help="every request must carry it (Authorization: Bearer, or ?token= "
                        "once); default: $FLAMINGOCK_DASHBOARD_TOKEN")
    p.add_argument("--tenants", metavar="A,B",
                   help="only these tenants (default: every tenant of the workflow)")
    p.add_argument("--poll", type=_poll_seconds, default=2.0, metavar="SECONDS",
                   help=f"how often the page refreshes itself (default 2; at least "
                        f"{MIN_POLL:g})")
    p.add_argument("--store", help=f"projection store: sqlite:PATH or couchbase://HOST?"
                                   f"bucket=NAME (default: the workflow's, else "
                                   f"{DEFAULT_STORE})")


MIN_POLL = 0.5
"""The fastest refresh a page may ask for: a page open all day at zero or less would ask
the projection store without pause."""


def _poll_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds >= MIN_POLL:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} s is too often: at least {MIN_POLL:g} s")
    return seconds
