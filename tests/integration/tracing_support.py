"""The traced three-process scenario that the tracing tests share.

A requester (``flamingock-es request --wait``), a runner (``flamingock-es serve``) and a
projection worker (``flamingock-es project``), each its own process exporting OTLP/HTTP to
``endpoint`` under its own ``OTEL_SERVICE_NAME``. Where the spans go (the project's own
receiver, or Jaeger) and how they are checked is the caller's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

CLI = [sys.executable, "-m", "flamingock_es.cli"]
UNITS = ("add-route", "widen-topic")
"""The ids of the two units the runner applies, in order."""

T = TypeVar("T")


@dataclass(frozen=True)
class Services:
    """The ``OTEL_SERVICE_NAME`` of each process."""

    requester: str = "requester"
    runner: str = "runner"
    projector: str = "projector"


def otel_env(endpoint: str, service: str) -> dict[str, str]:
    """This process's environment, tracing to ``endpoint`` as ``service`` (fast export)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": service,
                "OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "100",
                "FLAMINGOCK_PRINCIPAL": f"{service}-principal"})
    return env


def write_workflow(root: Path, namespace: str, bus: str) -> Path:
    """A project with two Python units (:data:`UNITS`); returns its flamingock.yaml."""
    (root / "changes").mkdir()
    (root / "changes" / "u001_route.py").write_text(textwrap.dedent('''
        from flamingock_es import ChangeContext, change_unit

        @change_unit(id="add-route", order=1, author="it")
        def add_route(ctx: ChangeContext) -> None:
            ctx.log.info("route added")
    '''))
    (root / "changes" / "u002_topic.py").write_text(textwrap.dedent('''
        from flamingock_es import ChangeContext, change_unit

        @change_unit(id="widen-topic", order=2, author="it")
        def widen(ctx: ChangeContext) -> None:
            ctx.log.info("topic widened")
    '''))
    config = root / "flamingock.yaml"
    config.write_text(f"namespace: {namespace}\nbus: {bus}\nstages:\n"
                      "  - name: main\n    units: [changes]\n")
    return config


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Interrupt ``proc`` as a person would (Ctrl-C); kill it if it does not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_traced_request(root: Path, bus: str, namespace: str, endpoint: str,
                       until: Callable[[], T], services: Services = Services()) -> T:
    """Serve and project ``namespace``, publish one request and wait for its answer, then
    return ``until()`` (which waits for the spans) while the projector still runs."""
    config = write_workflow(root, namespace, bus)
    server = subprocess.Popen([*CLI, "serve", "-c", str(config), "--max-requests", "1", "-q"],
                              env=otel_env(endpoint, services.runner), cwd=root)
    worker = subprocess.Popen(
        [*CLI, "project", "--bus", bus, "--namespace", namespace,
         "--store", f"sqlite:{root / 'projection.db'}", "--batch-size", "50"],
        env=otel_env(endpoint, services.projector), cwd=root, stderr=subprocess.DEVNULL)
    try:
        requester = subprocess.run(
            [*CLI, "request", "--bus", bus, "--namespace", namespace, "--reason", "it",
             "--wait", "--timeout", "120"],
            env=otel_env(endpoint, services.requester), cwd=root, capture_output=True,
            text=True, timeout=180)
        assert requester.returncode == 0, requester.stderr
        assert "SUCCEEDED" in requester.stdout
        assert server.wait(60) == 0
        return until()
    finally:
        stop(server)
        stop(worker)
