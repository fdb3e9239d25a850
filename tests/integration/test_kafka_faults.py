"""Faults and attacks on the real broker: records produced to the audit topic by a client
without the runner's key (garbage, a copy that breaks the chain, a forged event that continues
it), a mark during a healthy run, a signal past the grace period, an outcome the broker never
confirms, garbage change requests, a namespace typo, and an audit topic deleted and created
again. Every side effect is counted.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import ManualMark, MarkedAs
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.core.state import fold
from flamingock_es.request.model import ChangeRequest, RequestCodec

from .runner_support import RunnerProject, kafka_tool, ok, read_audit

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bus(kafka_bootstrap: str) -> str:
    return f"kafka://{kafka_bootstrap}"


@pytest.fixture
def project(tmp_path: Path, bus: str) -> RunnerProject:
    project = RunnerProject(tmp_path / "proj", bus, f"faults-{uuid.uuid4().hex[:12]}")
    for n in (1, 2, 3):
        project.add_unit(n)
    return project


def _produce(bootstrap: str, topic: str, value: bytes) -> int:
    """A plain producer: no lock, no transactional id, none of the runner's keys."""
    offsets: list[int] = []
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value, partition=0,
                     on_delivery=lambda err, msg: offsets.append(msg.offset()))
    producer.flush(30)
    return offsets[0]


def _audit_records(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    try:
        while True:
            msg = consumer.poll(10)
            assert msg is not None, "the audit topic did not answer"
            if msg.error():
                break
            out.append((msg.offset(), msg.value()))
    finally:
        consumer.close()
    return out


def test_a_garbage_record_stops_the_namespace_until_it_is_quarantined(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    ok(project.cli("run"))
    at = _produce(kafka_bootstrap, f"flamingock.audit.{project.namespace}", b"not an event")
    project.add_unit(4)

    for command in ("run", "status", "verify"):
        refused = ok(project.cli(command), 4)
        said = refused.stderr + refused.stdout
        assert f"offset {at}" in said, command
        assert "Traceback" not in said, command
    assert f"flamingock-es quarantine --offset {at}" in ok(project.cli("run"), 4).stderr
    store = f"sqlite:{project.path / 'projection.db'}"
    ok(project.cli("project", "--once", "--store", store), 4)
    assert "STALE" in ok(project.cli("state", "--store", store), 4).stderr

    ok(project.cli("quarantine", "--offset", str(at), "--reason", "a test client"))

    ok(project.cli("run"))
    assert project.applied_effects() == ["u0001", "u0002", "u0003", "u0004"]
    assert f"QUARANTINED offset {at}" in ok(project.cli("verify")).stdout
    ok(project.cli("project", "--once", "--store", store))
    assert "STALE" not in ok(project.cli("state", "--store", store)).stderr


def test_a_record_that_decodes_but_breaks_the_chain_is_excluded_whole(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    ok(project.cli("run"))
    topic = f"flamingock.audit.{project.namespace}"
    records = _audit_records(kafka_bootstrap, topic)
    # A real event of this log, replayed: it decodes, and its seq and prev_hash are wrong.
    copy = next(value for _, value in records
                if AuditCodec().decode(value).event.kind == "CompensationSucceeded"
                or AuditCodec().decode(value).event.kind == "ChangeStarted")
    at = _produce(kafka_bootstrap, topic, copy)

    refused = ok(project.cli("run"), 4)
    assert f"inconsistent at offset {at}" in refused.stderr
    ok(project.cli("quarantine", "--offset", str(at), "--reason", "a replayed copy"))

    project.add_unit(4)
    ok(project.cli("run"))
    assert project.applied_effects() == ["u0001", "u0002", "u0003", "u0004"]
    audit = read_audit(project.bus, project.namespace)
    assert audit.report.state.counts() == {"APPLIED": 4}
    assert at in audit.report.state.quarantined


def test_a_forged_event_continuing_the_chain_is_refused_with_signatures(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    for name in ("runner",):
        ok(project.cli("keys", "generate", name, "--dir", str(project.path / "keys")))
    config = project.config.read_text().replace("stages:", (
        "signing_key: keys/runner.key\ntrust:\n  - {key: keys/runner.pub, principal: runner, "
        f"write: [{project.namespace}]}}\nstages:"))
    project.config.write_text(config)
    ok(project.cli("run"))
    topic = f"flamingock.audit.{project.namespace}"
    codec = AuditCodec()
    state = fold(codec.decode_all(_audit_records(kafka_bootstrap, topic)))
    forged: list[bytes] = []

    class Keep:
        def append(self, records: list[bytes], headers: object = None) -> list[int]:
            forged.extend(records)
            return [state.position + 1]

        def close(self) -> None: ...

    Recorder(Keep(), state, RunIdentity(project.namespace, "forged", local_actor(
        principal="ana@build-7")), codec).record(
        ManualMark(unit_id="u0001", marked_as=MarkedAs.ROLLED_BACK, reason="reverted"))
    at = _produce(kafka_bootstrap, topic, forged[0])

    verify = ok(project.cli("verify"), 4)
    assert f"UNSIGNED offsets {at}..{at}" in verify.stdout
    assert f"offset {at}" in ok(project.cli("run"), 4).stderr
    assert project.applied_effects().count("u0001") == 1  # the forged mark changed nothing
    ok(project.cli("quarantine", "--offset", str(at), "--reason", "forged"))
    ok(project.cli("run"))
    assert project.applied_effects().count("u0001") == 1


def test_a_mark_that_waited_for_a_healthy_run_is_refused(project: RunnerProject) -> None:
    project.flag("hold-u0002")
    runner = project.spawn("run")
    try:
        project.wait_for_effect("start u0002", timeout=60)
        status = ok(project.cli("status"))
        assert "running now in run" in status.stdout
        marker = project.spawn("mark", "u0002", "--as", "rolled-back", "--reason", "dead?")
        time.sleep(6.0)  # the mark reads the log, then waits for the lock (a slow start-up)
        project.flag("release-u0002")
        runner.communicate(timeout=120)
        _, err = marker.communicate(timeout=120)
    finally:
        for proc in (runner,):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert marker.returncode == 7, err
    assert "it is now APPLIED" in err
    ok(project.cli("run"))
    assert project.applied_effects() == ["u0001", "u0002", "u0003"]


def test_a_signal_past_the_grace_period_is_recorded_and_the_lock_released(
        project: RunnerProject) -> None:
    project.config.write_text(project.config.read_text().replace("stages:",
                                                                 "grace_period: 1\nstages:"))
    project.flag("hold-u0002")
    runner = project.spawn("run")
    project.wait_for_effect("start u0002", timeout=60)
    runner.send_signal(signal.SIGTERM)
    _, err = runner.communicate(timeout=120)

    assert runner.returncode == 143, err
    audit = read_audit(project.bus, project.namespace)
    audit.assert_intact()
    kinds = [e.kind for e in audit.events]
    assert kinds[-4:] == ["ChangeStarted", "ChangeInterrupted", "RunFinished", "LockReleased"]
    finished = audit.kinds("RunFinished")[-1].payload
    assert finished.not_started == ("u0003",)
    assert "interrupted by SIGTERM" in ok(project.cli("status"), 7).stdout


def test_garbage_requests_go_to_the_dead_letters_without_the_lock(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    ns = project.namespace
    ok(project.cli("run"))  # the topics exist, and nothing is pending
    before = len(read_audit(project.bus, ns).events)
    for i in range(40):
        _produce(kafka_bootstrap, f"flamingock.requests.{ns}", b"garbage %d" % i)
    real = ChangeRequest(namespace=ns, requested_by="it", reason="after the garbage")
    _produce(kafka_bootstrap, f"flamingock.requests.{ns}", RequestCodec().encode(real))
    started = time.monotonic()
    served = subprocess.run(project.command("serve", "--max-requests", "41", "-q"),
                            cwd=project.path, env=project.env, text=True, capture_output=True,
                            timeout=180, check=False)
    seconds = time.monotonic() - started
    assert served.returncode == 0, served.stderr

    audit = read_audit(project.bus, ns)
    runs = list(audit.kinds("RunStarted")[1:])
    assert [e.request_id for e in runs] == [real.request_id]  # garbage wrote nothing
    assert len(audit.events) == before + 4
    dead = _audit_records(kafka_bootstrap, f"flamingock.requests-dlq.{ns}")
    assert len(dead) == 40
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": uuid.uuid4().hex})
    consumer.assign([TopicPartition(f"flamingock.requests-dlq.{ns}", 0, 0)])
    msg = consumer.poll(10)
    consumer.close()
    assert msg is not None
    headers = dict(msg.headers() or [])
    assert headers["flamingock.dlq.reason"].startswith(b"undecodable")
    print(f"\n[dead letters] 40 garbage requests and one real one served in {seconds:.1f}s")


def test_a_namespace_typo_is_an_error_and_creates_no_topic(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    typo = f"typo-{uuid.uuid4().hex[:8]}"
    for command in ("verify", "history", "replay"):
        args = [*project.command(command)[:-4], "--bus", project.bus, "--namespace", typo]
        result = subprocess.run(args, cwd=project.path, env=project.env, text=True,
                                capture_output=True, timeout=120, check=False)
        assert result.returncode == 2, result.stderr
        assert f"namespace '{typo}' has no audit log" in result.stderr
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert not [t for t in topics if typo in t]


def test_a_transaction_a_dead_holder_left_open_is_aborted_not_waited_for(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    ok(project.cli("run"))
    topic = f"flamingock.audit.{project.namespace}"
    dead = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": topic,
                     "transaction.timeout.ms": 120_000})
    dead.init_transactions(30)
    dead.begin_transaction()
    dead.produce(topic, b"never committed", partition=0)
    dead.flush(30)  # in the log, hidden from read_committed readers, until aborted
    project.add_unit(4)

    started = time.monotonic()
    result = ok(project.cli("run"))
    seconds = time.monotonic() - started

    assert "left open" in result.stderr
    assert seconds < 30, f"the run waited {seconds:.1f}s for the dead transaction"
    assert project.applied_effects() == ["u0001", "u0002", "u0003", "u0004"]
    read_audit(project.bus, project.namespace).assert_intact()


def test_a_replaced_audit_topic_is_refused_by_the_signed_snapshot(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    ok(project.cli("keys", "generate", "runner", "--dir", str(project.path / "keys")))
    project.config.write_text(project.config.read_text().replace("stages:", (
        "signing_key: keys/runner.key\ntrust:\n  - {key: keys/runner.pub, principal: runner, "
        f"write: [{project.namespace}]}}\nstages:")))
    ok(project.cli("run"))
    _replace_topic(kafka_bootstrap, f"flamingock.audit.{project.namespace}")

    refused = ok(project.cli("run"), 4)  # the run re-creates the topic, empty

    assert "the log ends before it" in refused.stderr
    assert project.applied_effects() == ["u0001", "u0002", "u0003"]  # nothing applied twice


def _replace_topic(bootstrap: str, topic: str) -> None:
    """Delete ``topic`` and wait until the broker no longer lists it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics:  # deletion is asynchronous
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_replaced_audit_topic_is_refused_by_the_lock_groups_commit(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    ok(project.cli("run"))  # unsigned: its snapshot is only a cache, never a witness
    _replace_topic(kafka_bootstrap, f"flamingock.audit.{project.namespace}")

    refused = ok(project.cli("run"), 4)  # the run re-creates the topic, empty

    assert "committed with it reaching offset" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert project.applied_effects() == ["u0001", "u0002", "u0003"]  # nothing applied twice
    assert read_audit(project.bus, project.namespace).events == []  # nothing recorded either

    # Started over on purpose: the commands the message gives let the next run begin afresh,
    # the lock group's offsets deleted and the runner's remembered head forgotten.
    remedies = refused.stderr.split("to resolve: ", 1)[1].splitlines()
    delete, forget = (line.strip().split("   ")[0].split() for line in remedies)
    assert delete[0] == "scripts/kafka-tool", remedies
    assert forget[0] == "rm", remedies
    deleted = kafka_tool(*delete[1:], "--bootstrap-server", kafka_bootstrap)
    assert deleted.returncode == 0, deleted.stderr
    Path(forget[1]).unlink()
    ok(project.cli("run"))
    assert project.applied_effects() == ["u0001", "u0002", "u0003"] * 2
