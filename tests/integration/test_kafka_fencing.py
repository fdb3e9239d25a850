"""Fencing and integrity on the real broker: zombies cannot append, bad data is named."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
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

# A runner that holds the lock, appends, then waits for "go" on stdin and appends again.
# The test freezes it (SIGSTOP) in between, as a long GC pause or a suspended VM would.
# With "unaware", the lease's own watch (the thread that serves the group's callbacks) is
# stopped before the freeze: the holder never hears of its eviction, its own check passes,
# and only the broker can refuse its append. It prints what refused it: the Kafka error code
# under the refusal (the broker's answer), or "-" when the refusal was the runner's own.
ZOMBIE = textwrap.dedent("""
    import sys
    from flamingock_es.adapters.kafka.errors import error_of
    from flamingock_es.errors import LockLostError
    from flamingock_es.namespace import open_backend
    backend = open_backend(sys.argv[1], sys.argv[2])
    lease = backend.lock.acquire("zombie", 30)
    writer = backend.log.writer(lease)
    writer.append([b"before"])
    if sys.argv[3] == "unaware":
        lease._stop.set()
        lease._thread.join()
    print("held", flush=True)
    sys.stdin.readline()
    if sys.argv[3] == "unaware":
        lease.check()
        print("own check passed", flush=True)
    try:
        writer.append([b"zombie"])
    except Exception as exc:
        err = error_of(exc.__cause__) if exc.__cause__ is not None else None
        code = err.name() if err is not None else "-"
        print(f"refused {type(exc).__name__} {code}: {exc}", flush=True)
    else:
        print("appended", flush=True)
""")

GROUP_REFUSALS = frozenset({"UNKNOWN_MEMBER_ID", "FENCED_MEMBER_EPOCH", "STALE_MEMBER_EPOCH",
                            "ILLEGAL_GENERATION"})
"""What the group coordinator answers a commit from a member it evicted or replaced."""
PRODUCER_REFUSALS = frozenset({"_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"})
"""What the transaction coordinator answers a producer whose epoch a newer one bumped
(librdkafka turns that answer into its fatal ``_FENCED``: it cannot know it otherwise)."""


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
    bus: str, backend: Backend, new_holder_writes: bool, group_session_timeout: float
) -> None:
    """Whoever notices first (the holder's own lease once it thaws, or the broker) stops it."""
    outcome = frozen_holder(bus, backend, new_holder_writes, "aware",
                            group_session_timeout + 15)
    assert outcome.startswith(("refused LockLostError", "refused AppendError")), outcome


@pytest.mark.parametrize("new_holder_writes", [False, True],
                         ids=["group-generation", "producer-epoch"])
def test_the_broker_refuses_a_frozen_holder_that_never_learned_it_was_evicted(
    bus: str, backend: Backend, new_holder_writes: bool, group_session_timeout: float
) -> None:
    """The holder's own check passes (it never served the group's callbacks): the refusal
    can only be the broker's, and the error under the LockLostError is the broker's code."""
    outcome = frozen_holder(bus, backend, new_holder_writes, "unaware",
                            group_session_timeout + 15)
    refusal, _, message = outcome.partition(": ")
    verdict, kind, code = refusal.split()
    assert (verdict, kind) == ("refused", "LockLostError"), outcome
    assert code in (PRODUCER_REFUSALS if new_holder_writes else GROUP_REFUSALS), outcome
    assert "audit writer was fenced" in message, outcome


def frozen_holder(bus: str, backend: Backend, new_holder_writes: bool, watch: str,
                  takeover: float) -> str:
    """Freeze a holder (``ZOMBIE`` with ``watch``), let a successor take the lock within
    ``takeover`` seconds (and write, if ``new_holder_writes``), thaw the holder and let it
    append: what it says about its attempt. The log holds exactly what the holders that were
    current wrote."""
    with subprocess.Popen(
        [sys.executable, "-c", ZOMBIE, bus, backend.namespace, watch],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as zombie:
        try:
            return _zombie_scenario(zombie, backend, new_holder_writes, watch, takeover)
        finally:
            os.kill(zombie.pid, signal.SIGCONT)
            zombie.kill()


def _zombie_scenario(zombie: subprocess.Popen[str], backend: Backend,
                     new_holder_writes: bool, watch: str, takeover: float) -> str:
    assert zombie.stdout is not None
    assert zombie.stdin is not None
    assert zombie.stdout.readline().strip() == "held"
    os.kill(zombie.pid, signal.SIGSTOP)
    lease = backend.lock.acquire("successor", takeover)
    writer = None
    if new_holder_writes:  # init_transactions bumps the producer epoch: old one fenced
        writer = backend.log.writer(lease)
        writer.append([b"successor"])
    os.kill(zombie.pid, signal.SIGCONT)
    zombie.stdin.write("go\n")
    zombie.stdin.flush()
    if watch == "unaware":
        assert zombie.stdout.readline().strip() == "own check passed"
    outcome = zombie.stdout.readline().strip()
    print(f"zombie: {outcome}")
    expected = [b"before", b"successor"] if new_holder_writes else [b"before"]
    assert _records(backend) == expected
    if writer is None:  # the successor can still write after the zombie's attempt
        writer = backend.log.writer(lease)
    writer.append([b"after"])
    writer.close()
    lease.release()
    assert _records(backend) == [*expected, b"after"]
    return outcome


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
