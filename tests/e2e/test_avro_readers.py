"""The local audit log, written by the CLI, read by a second Avro implementation (Apache
Avro's Python package): every record names a published writer schema by its fingerprint
and decodes to the events the project's own codec reads."""

from __future__ import annotations

import pytest

from flamingock_es.core.codec import AuditCodec

from ..avro_reader import decode, writer_schemas
from .conftest import Project, ok

pytestmark = pytest.mark.e2e


def test_avros_reader_decodes_every_event_of_the_local_log(project: Project) -> None:
    project.flag("fail-u3")
    ok(project.cli("run"), 8)
    project.unflag("fail-u3")
    ok(project.cli("run"))
    frames = project.frames()
    writers = writer_schemas()

    decoded = [decode(record, writers) for _, record in frames]
    ours = list(AuditCodec().decode_all(frames))

    assert {name for name, _ in decoded} == {"AuditEvent"}
    assert len(decoded) == len(ours) == 26
    for (_, theirs), mine in zip(decoded, ours, strict=True):
        event = mine.event
        assert theirs["event_id"] == event.event_id
        assert theirs["seq"] == event.seq
        assert theirs["time"] == event.time  # timestamp-micros, read as a datetime
        assert (theirs["namespace"], theirs["run_id"]) == ("shop", event.run_id)
        assert theirs["actor"]["principal"] == "e2e-user"
        assert theirs["hash"] == event.hash
        assert theirs["prev_hash"] == event.prev_hash
    failed = [d["payload"] for _, d in decoded if "error" in d["payload"]
              and isinstance(d["payload"]["error"], dict) and "not_started" in d["payload"]]
    assert failed[0]["error"]["message"] == "u3 boom"
