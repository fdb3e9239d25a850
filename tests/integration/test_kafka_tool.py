"""``scripts/kafka-tool``: Kafka's own tools, as docs/operations-kafka.md tells operators to
use them, against the real broker.

A real runner holds the lock (its first unit is parked inside its apply step): the lock
group's description names it (host, pid and run id in the client id) as the member that
is assigned the lock partition. After the run, the console consumer reads the audit topic
``read_committed`` and finds exactly the events the project's own replay finds.
"""

from __future__ import annotations

import re
import socket
import uuid
from pathlib import Path

import pytest

from .parked import parked_run
from .runner_support import RunnerProject, kafka_tool, read_audit

pytestmark = pytest.mark.kafka

def test_lock_holder_and_committed_audit_records(tmp_path: Path, kafka_bootstrap: str) -> None:
    namespace = f"tool-{uuid.uuid4().hex[:12]}"
    project = RunnerProject(tmp_path / "proj", f"kafka://{kafka_bootstrap}", namespace)
    project.add_unit(1)
    project.add_unit(2)
    with parked_run(project, "u0001") as run:
        described = kafka_tool("consumer-groups", "--describe", "--group",
                               f"flamingock.lock.{namespace}", "--members", "--verbose")
    assert run.code == 0, run.err
    assert described.returncode == 0, described.stderr

    # The holder's line: its client id names host, pid and run id; its assignment is the
    # lock topic's only partition.
    holder = f"flamingock-lock-{socket.gethostname()}:{run.pid}:"
    lines = [line for line in described.stdout.splitlines() if holder in line]
    assert len(lines) == 1, described.stdout
    run_id = re.search(re.escape(holder) + r"(\S+)", lines[0])
    assert run_id is not None
    assert f"flamingock.lock.{namespace}:0" in lines[0], described.stdout
    audit = read_audit(project.bus, namespace)
    assert run_id.group(1) == audit.events[0].run_id

    consumed = kafka_tool("console-consumer", "--topic", f"flamingock.audit.{namespace}",
                          "--from-beginning", "--isolation-level", "read_committed",
                          "--timeout-ms", "10000",
                          "--formatter-property", "print.offset=true",
                          "--formatter-property", "print.value=false")
    offsets = [int(n) for n in re.findall(r"^Offset:(\d+)", consumed.stdout, re.MULTILINE)]
    assert len(offsets) == len(audit.events) == 8, (consumed.stdout, consumed.stderr)
    assert f"Processed a total of {len(audit.events)} messages" in consumed.stderr
    assert offsets == sorted(offsets)  # one partition: the log's order


def test_an_unknown_tool_is_named() -> None:
    result = kafka_tool("no-such-tool")
    assert result.returncode == 2
    assert "unknown tool 'no-such-tool'" in result.stderr
