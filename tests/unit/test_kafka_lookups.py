"""How a store's latest record is looked up when the broker does not answer: both tries of
``store_end`` are made before it reads as empty. A real librdkafka client against a socket
that accepts and never answers (a broker too busy to reply): librdkafka's own request
timeout comes first, as a ``KafkaException``, not the future's ``TimeoutError``."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from flamingock_es.adapters.kafka import admin


@pytest.fixture
def silent_broker() -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener closed at the end
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for conn in accepted:
        conn.close()


def test_a_store_lookup_no_broker_answers_makes_both_tries_then_reads_as_empty(
        silent_broker: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(admin, "LOOKUPS", (0.5, 1.5))
    client = AdminClient({"bootstrap.servers": silent_broker})
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=admin.__name__):
        assert admin.store_end(client, "flamingock.snapshots.ns", "snapshot") == 0
    took = time.monotonic() - started
    assert took >= 2.0, f"the second, longer try was not made ({took:.2f} s)"
    assert "no snapshot read from flamingock.snapshots.ns: no answer in 2 s" in caplog.text
