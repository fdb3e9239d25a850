"""The contract every ``RequestChannel`` adapter passes. Subclass it and provide a ``bus``
fixture. Run on the embedded channel in ``test_local.py`` and on real Kafka in
``tests/integration/test_kafka_contracts.py``: the same assertions, unchanged."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import pytest

from flamingock_es.core.ports import Delivery, RequestConsumer
from flamingock_es.namespace import Backend, open_backend


def _take(consumer: RequestConsumer, count: int, timeout: float = 30.0) -> list[Delivery]:
    """The next ``count`` deliveries (fails if they do not come within ``timeout``)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} requests arrived"
        delivery = consumer.poll(0.2)
        if delivery is not None:
            got.append(delivery)
    return got


def _quiet(consumer: RequestConsumer, seconds: float = 1.5) -> bool:
    """True if nothing is delivered for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if consumer.poll(0.2) is not None:
            return False
    return True


class DeadLetter(NamedTuple):
    """A request the runner could not take, as the dead-letter channel kept it."""

    reason: str
    value: bytes
    source: int
    """The request's position on the requests channel."""


class RequestChannelContract:
    @pytest.fixture
    def backend(self, bus: str) -> Iterator[Backend]:
        with open_backend(bus, f"requests-{uuid.uuid4().hex[:10]}") as backend:
            yield backend

    def test_published_requests_arrive_in_order_with_growing_positions(
            self, backend: Backend) -> None:
        channel = backend.requests
        published = [channel.publish(f"r{i}", f"request {i}".encode()) for i in range(3)]
        consumer = channel.consumer()
        try:
            got = _take(consumer, 3)
        finally:
            consumer.close()
        assert [d.value for d in got] == [b"request 0", b"request 1", b"request 2"]
        assert [d.position for d in got] == published
        assert published == sorted(set(published))
        assert all(d.end > d.position for d in got)

    def test_a_committed_request_is_not_delivered_to_the_group_again(
            self, backend: Backend) -> None:
        channel = backend.requests
        for i in range(2):
            channel.publish(f"r{i}", f"request {i}".encode())
        first = channel.consumer("runners")
        try:
            handled = _take(first, 1)[0]
            first.commit(handled)
        finally:
            first.close()
        again = channel.consumer("runners")
        try:
            rest = _take(again, 1)
            assert _quiet(again)
        finally:
            again.close()
        assert handled.value == b"request 0"
        assert [d.value for d in rest] == [b"request 1"]

    def test_an_uncommitted_request_is_delivered_again(self, backend: Backend) -> None:
        channel = backend.requests
        channel.publish("r0", b"request 0")
        first = channel.consumer("runners")
        try:
            _take(first, 1)
        finally:
            first.close()
        second = channel.consumer("runners")
        try:
            assert [d.value for d in _take(second, 1)] == [b"request 0"]
        finally:
            second.close()

    def test_groups_keep_their_own_positions(self, backend: Backend) -> None:
        channel = backend.requests
        channel.publish("r0", b"request 0")
        runners = channel.consumer("runners")
        try:
            runners.commit(_take(runners, 1)[0])
        finally:
            runners.close()
        auditors = channel.consumer("auditors")
        try:
            assert [d.value for d in _take(auditors, 1)] == [b"request 0"]
        finally:
            auditors.close()

    def dead_letters(self, backend: Backend) -> list[DeadLetter]:
        """Every dead letter of ``backend``'s namespace, read where the adapter keeps them
        (each adapter's test class says how): the port itself has no reader for them."""
        raise NotImplementedError

    def test_a_dead_letter_is_kept_with_its_reason_and_leaves_the_requests_alone(
            self, backend: Backend) -> None:
        channel = backend.requests
        channel.publish("bad", b"\x00garbage")
        channel.publish("good", b"request after the garbage")
        consumer = channel.consumer()
        try:
            bad = _take(consumer, 1)[0]
            channel.dead_letter(bad, "not a ChangeRequest")
            consumer.commit(bad)
            good = _take(consumer, 1)[0]
            consumer.commit(good)
            assert _quiet(consumer)
        finally:
            consumer.close()
        assert good.value == b"request after the garbage"
        assert self.dead_letters(backend) == [
            DeadLetter("not a ChangeRequest", b"\x00garbage", bad.position)]

    def test_namespaces_do_not_share_requests(self, backend: Backend) -> None:
        with open_backend(backend.bus, f"{backend.namespace}-other") as other:
            backend.requests.publish("mine", b"mine")
            consumer = other.requests.consumer()
            try:
                assert _quiet(consumer)
            finally:
                consumer.close()
