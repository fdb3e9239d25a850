"""Serving the dashboard: uvicorn on a socket the caller bound, until ``stop`` is set.

The server runs in a thread of its own, so that uvicorn installs no signal handlers: the
caller (the CLI) owns SIGINT and SIGTERM, sets ``stop``, and the server finishes the
requests in flight and returns. Binding the socket first lets the caller print the port it
really got (``--port 0``) before anything is served.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

import uvicorn
from starlette.types import ASGIApp

__all__ = ["bind", "is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: one the system picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve(app: ASGIApp, sock: socket.socket, stop: threading.Event) -> None:
    """Serve ``app`` on ``sock`` until ``stop`` is set, then shut down cleanly."""
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="dashboard", daemon=True)
    thread.start()
    try:
        while thread.is_alive() and not stop.wait(0.2):
            pass
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
