"""Fencing and integrity on the real broker: zombies cannot append, bad data is named."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import RunStarted
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.core.state import State
from flamingock_es.errors import DecodeError
from flamingock_es.namespace import Backend, open_backend

pytestmark = pytest.mark.kafka

SESSION_TIMEOUT = 3.0

# A runner that holds the lock, appends, then waits for "go" on stdin and appends again.
# The test freezes it (SIGSTOP) in between, as a long GC pause or a suspended VM would.
ZOMBIE = textwrap.dedent("""
    import sys
    from flamingock_es.namespace import open_backend
    backend = open_backend(sys.argv[1], sys.argv[2])
    lease = backend.lock.acquire("zombie", 30)
    writer = backend.log.writer(lease)
    writer.append([b"before"])
    print("held", flush=True)
    sys.stdin.readline()
    try:
        writer.append([b"zombie"])
    except Exception as exc:
        print(f"refused {type(exc).__name__}: {exc}", flush=True)
    else:
        print("appended", flush=True)
""")


@pytest.fixture
def bus(kafka_bootstrap: str) -> str:
    return f"kafka://{kafka_bootstrap}"


@pytest.fixture
def backend(bus: str) -> Iterator[Backend]:
    backend = open_backend(bus, f"fence-{uuid.uuid4().hex[:10]}")
    yield backend
    backend.close()


def _records(backend: Backend) -> list[bytes]:
    return [data for _, data in backend.log.read()]


@pytest.mark.parametrize("new_holder_writes", [False, True],
                         ids=["group-generation", "producer-epoch"])
def test_a_frozen_holder_cannot_append_after_another_took_over(
    bus: str, backend: Backend, new_holder_writes: bool
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", ZOMBIE, bus, backend.namespace],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as zombie:
        try:
            _zombie_scenario(zombie, backend, new_holder_writes)
        finally:
            os.kill(zombie.pid, signal.SIGCONT)
            zombie.kill()


def _zombie_scenario(zombie: subprocess.Popen[str], backend: Backend,
                     new_holder_writes: bool) -> None:
    assert zombie.stdout is not None
    assert zombie.stdin is not None
    assert zombie.stdout.readline().strip() == "held"
    os.kill(zombie.pid, signal.SIGSTOP)
    started = time.monotonic()
    lease = backend.lock.acquire("successor", SESSION_TIMEOUT + 15)
    assert time.monotonic() - started < SESSION_TIMEOUT + 15
    writer = None
    if new_holder_writes:  # init_transactions bumps the producer epoch: old one fenced
        writer = backend.log.writer(lease)
        writer.append([b"successor"])
    os.kill(zombie.pid, signal.SIGCONT)
    zombie.stdin.write("go\n")
    zombie.stdin.flush()
    outcome = zombie.stdout.readline().strip()
    print(f"zombie: {outcome}")
    assert outcome.startswith(("refused LockLostError", "refused AppendError")), outcome
    expected = [b"before", b"successor"] if new_holder_writes else [b"before"]
    assert _records(backend) == expected
    if writer is None:  # the successor can still write after the zombie's attempt
        writer = backend.log.writer(lease)
    writer.append([b"after"])
    writer.close()
    lease.release()
    assert _records(backend) == [*expected, b"after"]


def test_a_foreign_record_is_reported_with_its_offset(
    kafka_bootstrap: str, backend: Backend
) -> None:
    lease = backend.lock.acquire("runner", 30)
    state = State()
    recorder = Recorder(backend.log.writer(lease), state,
                        RunIdentity(backend.namespace, "run-1", local_actor()))
    recorder.record(RunStarted(workflow="w", trigger="test", planned=()))
    recorder.writer.close()
    lease.release()

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    topic = f"flamingock.audit.{backend.namespace}"
    offsets: list[int | None] = []
    producer.produce(topic, b'{"not": "avro"}', partition=0,
                     on_delivery=lambda err, msg: offsets.append(msg.offset()))
    assert producer.flush(10) == 0
    foreign = offsets[0]
    assert foreign is not None

    with pytest.raises(DecodeError, match=rf"offset {foreign}\b") as caught:
        list(AuditCodec().decode_all(backend.log.read()))
    assert caught.value.position == foreign


def test_topics_are_created_with_one_partition_and_infinite_retention(
    kafka_bootstrap: str, backend: Backend
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    ns = backend.namespace
    names = [f"flamingock.{kind}.{ns}" for kind in ("audit", "lock", "requests")]
    metadata = admin.list_topics(timeout=10).topics
    for name in names:
        assert name in metadata
        assert len(metadata[name].partitions) == 1
    resource = ConfigResource("topic", names[0])
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "delete"
    assert configs["retention.ms"].value == "-1"
    assert configs["retention.bytes"].value == "-1"
