"""The lock on a broker that refuses the KIP-848 consumer protocol: the classic-protocol group
that ``group_lock.py`` falls back to, for real.

The broker is ``scripts/services up --classic-groups`` (its group coordinator serves
``group.coordinator.rebalance.protocols=classic`` only); scripts/test runs this module in a
phase of its own (``-m classic``) on the single broker restarted with that switch, and the
module fails at once on a broker that still serves KIP-848. The classic protocol keeps the
session timeout on the client (``group_lock._CLASSIC_SESSION_MS``): a frozen holder is
evicted after that, not after the broker's ``group.consumer.session.timeout.ms``.

Costs about 50 s: the lock contract (3 tests, a dead holder's 6 s session: 15 s), 5
contention rounds of 4 runner processes (25 s: a classic handover is a rebalance, about
1.2 s), and a frozen holder (10 s).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupType
from confluent_kafka.admin import AdminClient

from flamingock_es.adapters.kafka.group_lock import _CLASSIC_SESSION_MS
from flamingock_es.namespace import Backend, open_backend
from tests.contracts.lock_contract import LockContract

from .broker_config import broker_values
from .runner_support import RunnerProject
from .test_kafka_fencing import frozen_holder
from .test_kafka_runners import contend, running_workers

pytestmark = [pytest.mark.kafka, pytest.mark.classic]

CLASSIC_SESSION = _CLASSIC_SESSION_MS / 1000
"""Seconds after which a silent classic member is evicted: the lock consumer's own setting."""
ROUNDS = 5
RUNNERS = 4


@pytest.fixture(scope="module")
def bus(kafka_bootstrap: str) -> str:
    """The bus of a broker that serves classic consumer groups only; fails on any other."""
    served = broker_values(kafka_bootstrap, "group.coordinator.rebalance.protocols")
    for broker, protocols in served.items():
        if protocols != "classic":
            pytest.fail(f"broker {broker} of {kafka_bootstrap} serves the group protocols "
                        f"{protocols!r}, not 'classic' only: run scripts/services up "
                        "--classic-groups (scripts/test's classic phase does)", pytrace=False)
    return f"kafka://{kafka_bootstrap}"


def _group_type(bus: str, group: str) -> ConsumerGroupType:
    admin = AdminClient({"bootstrap.servers": bus.removeprefix("kafka://")})
    description = admin.describe_consumer_groups([group])[group].result(timeout=15)
    kind: ConsumerGroupType = description.type
    return kind


class TestClassicGroupLock(LockContract):
    """The port's contract, unchanged, on the classic protocol."""

    crash_timeout = CLASSIC_SESSION + 10.0


@pytest.fixture
def backend(bus: str) -> Iterator[Backend]:
    backend = open_backend(bus, f"classic-{uuid.uuid4().hex[:10]}")
    yield backend
    backend.close()


def test_exactly_once_under_contention_on_classic_groups(
        tmp_path: Path, bus: str, capsys: pytest.CaptureFixture[str]) -> None:
    project = RunnerProject(tmp_path / "proj", bus, f"classic-{uuid.uuid4().hex[:12]}")
    with running_workers(project, RUNNERS) as workers:
        report = contend(project, workers, ROUNDS)
    assert _group_type(bus, f"flamingock.lock.{project.namespace}") == ConsumerGroupType.CLASSIC
    with capsys.disabled():
        print(f"\n[classic contention] {report}")


def test_a_frozen_holder_is_fenced_on_classic_groups(bus: str, backend: Backend) -> None:
    """SIGSTOP the holder past its session: the successor takes the lock and the thawed
    holder cannot append. (Which refusal comes first is a race here: librdkafka's classic
    heartbeat hears of the eviction as soon as the holder thaws and forgets its member id,
    which the lease's own check catches; the broker refuses the rest.)"""
    outcome = frozen_holder(bus, backend, False, "aware", CLASSIC_SESSION + 15)
    assert outcome.startswith("refused LockLostError"), outcome
    assert _group_type(bus, f"flamingock.lock.{backend.namespace}") == ConsumerGroupType.CLASSIC
