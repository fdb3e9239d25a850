"""An OTLP endpoint that is down costs a command at most about the export timeout (2 s) and
one warning line, never a traceback or a stack of retry messages."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="needs the [otel] extra")


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A port that accepts connections and never answers (a hung collector)."""
    server = socket.create_server(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


def timed_run(project: Project, **env: str) -> tuple[float, str]:
    project.env.update(env)
    started = time.monotonic()
    result = ok(project.cli("run", "-q"))
    return time.monotonic() - started, result.stderr


@pytest.mark.parametrize("endpoint", ["refused", "silent"])
def test_a_dead_endpoint_costs_at_most_the_export_timeout_and_one_line(
        project: Project, silent_endpoint: str, endpoint: str) -> None:
    url = "http://127.0.0.1:9" if endpoint == "refused" else silent_endpoint
    baseline, _ = timed_run(project, OTEL_SDK_DISABLED="true")
    ok(project.cli("undo", "--all", "-q"))
    project.env.pop("OTEL_SDK_DISABLED")

    seconds, stderr = timed_run(project, OTEL_EXPORTER_OTLP_ENDPOINT=url)

    assert seconds - baseline < 2.6, (seconds, baseline)  # 2 s, and a loaded machine's slack
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"WARNING flamingock_es.telemetry: traces could not be "
                               f"exported to {url} (")
    assert "Traceback" not in stderr
