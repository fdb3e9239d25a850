"""One trace across three processes: requester -> ``flamingock-es serve`` -> projection worker.

Each process exports OTLP/HTTP to :class:`OtlpReceiver` (the project's own, on loopback);
the test asserts one trace id spans all three services, with the expected structure:
the runner's CONSUMER span is a child of the requester's PRODUCER span, the run and its
changes descend from it, and the projection batch continues the trace with links to the
audit events' spans.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from .otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.kafka

CLI = [sys.executable, "-m", "flamingock_es.cli"]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        yield rx


def _env(receiver: OtlpReceiver, service: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": service,
                "OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "100",
                "FLAMINGOCK_PRINCIPAL": f"{service}-principal"})
    return env


def _workflow(root: Path, namespace: str, bus: str) -> Path:
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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_one_trace_spans_requester_runner_and_projector(
        tmp_path: Path, kafka_bootstrap: str, unique_name: str,
        receiver: OtlpReceiver) -> None:
    bus = f"kafka://{kafka_bootstrap}"
    namespace = unique_name[-40:].strip("-.")
    config = _workflow(tmp_path, namespace, bus)
    server = subprocess.Popen([*CLI, "serve", "-c", str(config), "--max-requests", "1", "-q"],
                              env=_env(receiver, "runner"), cwd=tmp_path)
    worker = subprocess.Popen(
        [*CLI, "project", "--bus", bus, "--namespace", namespace,
         "--store", f"sqlite:{tmp_path / 'projection.db'}", "--batch-size", "50"],
        env=_env(receiver, "projector"), cwd=tmp_path, stderr=subprocess.DEVNULL)
    try:
        requester = subprocess.run(
            [*CLI, "request", "--bus", bus, "--namespace", namespace, "--reason", "it",
             "--wait", "--timeout", "120"],
            env=_env(receiver, "requester"), cwd=tmp_path, capture_output=True, text=True,
            timeout=180)
        assert requester.returncode == 0, requester.stderr
        assert "SUCCEEDED" in requester.stdout
        assert server.wait(60) == 0

        def complete(spans: list[ReceivedSpan]) -> bool:
            sends = [s for s in spans if s.service == "requester" and s.kind == "PRODUCER"]
            if not sends:
                return False
            trace_id = sends[0].trace_id
            return any(s.service == "projector" and s.trace_id == trace_id
                       and s.name == "flamingock.projection.batch" for s in spans)

        spans = receiver.wait_for(complete, timeout=60)
    finally:
        _stop(server)
        _stop(worker)

    send = next(s for s in spans if s.service == "requester" and s.kind == "PRODUCER")
    trace = [s for s in spans if s.trace_id == send.trace_id]
    assert {s.service for s in trace} == {"requester", "runner", "projector"}
    by_id = {s.span_id: s for s in trace}
    runner = {s.name: s for s in trace if s.service == "runner"}
    process = next(s for s in runner.values() if s.kind == "CONSUMER")
    run = runner["flamingock.run"]
    assert send.attributes["messaging.system"] == "kafka"
    assert send.attributes["messaging.destination.name"] == f"flamingock.requests.{namespace}"
    assert process.parent_id == send.span_id
    assert process.attributes["messaging.consumer.group.name"] == f"flamingock.runner.{namespace}"
    assert run.parent_id == process.span_id
    assert runner["flamingock.lock.wait"].parent_id == process.span_id
    for unit in ("add-route", "widen-topic"):
        change = runner[f"flamingock.change {unit}"]
        assert change.parent_id == run.span_id
        assert change.attributes["flamingock.unit.id"] == unit
        assert change.attributes["flamingock.outcome"] == "APPLIED"
    assert run.attributes["flamingock.outcome"] == "SUCCEEDED"
    assert run.attributes["flamingock.namespace"] == namespace
    batches = [s for s in trace if s.name == "flamingock.projection.batch"]
    for batch in batches:
        assert batch.service == "projector"
        assert batch.kind == "CONSUMER"
        assert by_id[batch.parent_id].service == "runner"
        assert batch.links
        assert all(t == send.trace_id and sid in by_id for t, sid in batch.links)
    linked = {sid for batch in batches for _, sid in batch.links}
    assert runner["flamingock.change add-route"].span_id in linked
