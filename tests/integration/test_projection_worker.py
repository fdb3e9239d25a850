"""The projection worker end to end: events in a log, documents in a store, read back.

Every test runs twice: on the embedded stack (local log, SQLite) and on the real one (Kafka
and a Couchbase-protocol server, marked). Documents are compared with a clean fold of the
whole log: after crashes, outages and races they must be exactly what a rebuild gives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flamingock_es.projections import ProjectionReader, ProjectionWorker
from flamingock_es.projections.documents import checkpoint_key
from flamingock_es.projections.stores import ProjectionStore
from flamingock_es.projections.stores.couchbase import CouchbaseProjectionStore, CouchbaseSettings

from flamingock_es.api import project
from flamingock_es.core.ports import EventLog, StoredRecord
from flamingock_es.definition.settings import resolve_settings
from flamingock_es.errors import StoreError
from flamingock_es.namespace import Backend, open_backend, settings_store

from .kv_proxy import KvProxy
from .projection_support import expected_documents, stored_documents, write_history

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    bus: str
    store_url: str
    namespace: str
    env: dict[str, str] = field(default_factory=dict)
    couchbase_url: str = ""

    def store(self) -> ProjectionStore:
        return settings_store(resolve_settings(read_file=False, store=self.store_url))


@pytest.fixture(params=[
    pytest.param("local", id="local-sqlite"),
    pytest.param("local-cb", id="local-couchbase", marks=pytest.mark.couchbase),
    pytest.param("real", id="kafka-couchbase", marks=[pytest.mark.kafka, pytest.mark.couchbase]),
])
def stack(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Stack:
    namespace = f"proj-{uuid.uuid4().hex[:10]}"
    if request.param == "local":
        return Stack(f"local:{tmp_path}/bus", f"sqlite:{tmp_path}/projections.db", namespace)
    cb = request.getfixturevalue("couchbase_env")
    bus = f"local:{tmp_path}/bus"
    if request.param == "real":
        bus = f"kafka://{request.getfixturevalue('kafka_bootstrap')}"
    env = {"FLAMINGOCK_COUCHBASE_USER": cb.user, "FLAMINGOCK_COUCHBASE_PASSWORD": cb.password,
           "FLAMINGOCK_COUCHBASE_BUCKET": cb.bucket}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Stack(bus, f"{cb.url}?bucket={cb.bucket}", namespace, env, cb.url)


@pytest.fixture
def backend(stack: Stack) -> Iterator[Backend]:
    opened = open_backend(stack.bus, stack.namespace)
    yield opened
    opened.close()


@pytest.fixture
def store(stack: Stack) -> Iterator[ProjectionStore]:
    opened = stack.store()
    yield opened
    opened.close()


def wait_for_checkpoint(store: ProjectionStore, namespace: str, position: int,
                        timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = store.get(checkpoint_key(namespace))
        if found is not None and found.doc["position"] >= position:
            return
        time.sleep(0.05)
    raise AssertionError(f"the worker did not reach position {position} in {timeout}s")


class Following:
    """A worker following the log in a thread, until the context ends."""

    def __init__(self, backend: Backend, store: ProjectionStore, batch_size: int = 50) -> None:
        self.worker = ProjectionWorker(backend.log, store, backend.namespace,
                                       batch_size=batch_size)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run(self.stop)
        except BaseException as exc:  # surfaced by __exit__
            self.error = exc

    def __enter__(self) -> Following:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the worker did not stop"
        if self.error is not None:
            raise self.error


def test_projects_the_log_and_reads_it_back(stack: Stack, backend: Backend,
                                            store: ProjectionStore) -> None:
    state = write_history(backend, runs=8)
    position = project(bus=stack.bus, namespace=stack.namespace, store=stack.store_url, once=True)
    assert position == state.position
    projection, expected = expected_documents(backend)
    assert stored_documents(store, projection) == expected

    reader = ProjectionReader(store, stack.namespace)
    summary = reader.summary()
    assert summary is not None
    assert summary["counts"] == dict(sorted(state.counts().items()))
    assert summary["events"] == state.events
    assert summary["head_hash"] == state.head_hash.hex()
    assert [u["unit_id"] for u in reader.units()] == sorted(state.units)
    last = state.last_run
    assert last is not None
    run = reader.run(last.run_id)
    assert run is not None
    assert run["outcome"] == last.outcome
    lock = reader.lock()
    assert lock is not None
    assert lock["held"] is False
    some = sorted(state.units)[0]
    assert reader.unit_status(some) == state.units[some].status.value


def test_incremental_following_equals_a_rebuild(stack: Stack, backend: Backend,
                                                store: ProjectionStore) -> None:
    write_history(backend, runs=3)
    project(bus=stack.bus, namespace=stack.namespace, store=stack.store_url, once=True)
    with Following(backend, store, batch_size=7):
        for seed in (1, 2, 3):
            state = write_history(backend, runs=2, seed=seed)
            time.sleep(0.2)
        wait_for_checkpoint(store, stack.namespace, state.position)
    projection, expected = expected_documents(backend)
    incremental = stored_documents(store, projection)
    assert incremental == expected

    project(bus=stack.bus, namespace=stack.namespace, store=stack.store_url, once=True,
            rebuild=True)
    assert stored_documents(store, projection) == incremental


def test_a_worker_killed_mid_batch_resumes_to_the_same_documents(
        stack: Stack, backend: Backend, store: ProjectionStore) -> None:
    state = write_history(backend, runs=60, per_append=20)
    command = [sys.executable, "-m", "flamingock_es.cli", "project", "--bus", stack.bus,
               "--namespace", stack.namespace, "--store", stack.store_url,
               "--batch-size", "3"]
    env = {**os.environ, **stack.env}
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as worker:
        assert worker.stdout is not None
        for _ in range(20):  # let it write a few batches, then kill it without warning
            assert worker.stdout.readline().startswith("projected"), "the worker died"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    found = store.get(checkpoint_key(stack.namespace))
    assert found is not None
    assert 0 < found.doc["position"] < state.position, "killed mid-stream, not at the end"

    restarted = subprocess.run([*command, "--once"], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=300, check=False)
    assert restarted.returncode == 0, restarted.stderr
    projection, expected = expected_documents(backend)
    assert stored_documents(store, projection) == expected


def test_two_workers_at_once_never_move_a_document_backwards(
        stack: Stack, backend: Backend, store: ProjectionStore) -> None:
    write_history(backend, runs=2)
    seen: dict[str, int] = {}
    regressions: list[str] = []
    watching = threading.Event()

    second = stack.store()
    try:
        with Following(backend, store, batch_size=5), Following(backend, second, batch_size=9):
            stop_watch = threading.Event()

            def monitor() -> None:
                watcher = stack.store()
                try:
                    while not stop_watch.is_set():
                        projection, _ = expected_documents(backend)
                        for key, doc in stored_documents(watcher, projection).items():
                            if doc["position"] < seen.get(key, -1):
                                regressions.append(f"{key}: {seen[key]} -> {doc['position']}")
                            seen[key] = max(seen.get(key, -1), doc["position"])
                        watching.set()
                        time.sleep(0.02)
                finally:
                    watcher.close()

            thread = threading.Thread(target=monitor, daemon=True)
            thread.start()
            for seed in range(4):
                state = write_history(backend, runs=3, seed=seed)
            wait_for_checkpoint(store, stack.namespace, state.position)
            stop_watch.set()
            thread.join(timeout=60)
    finally:
        second.close()
    assert watching.is_set()
    assert regressions == []
    projection, expected = expected_documents(backend)
    assert stored_documents(store, projection) == expected


@pytest.mark.parametrize("stack", [
    pytest.param("local-cb", id="local-couchbase", marks=pytest.mark.couchbase),
    pytest.param("real", id="kafka-couchbase", marks=[pytest.mark.kafka, pytest.mark.couchbase]),
], indirect=True)
def test_a_couchbase_outage_loses_and_double_counts_nothing(
        stack: Stack, backend: Backend, store: ProjectionStore) -> None:
    proxy = KvProxy(stack.couchbase_url)
    bucket = stack.env["FLAMINGOCK_COUCHBASE_BUCKET"]
    settings = CouchbaseSettings.from_url(f"{proxy.url}?bucket={bucket}", {"timeout": "1"},
                                          resolve_settings(read_file=False).connections)
    cut_store = CouchbaseProjectionStore(settings, retry_seconds=2.0)
    try:
        write_history(backend, runs=2)
        with Following(backend, cut_store, batch_size=10) as following:
            before = write_history(backend, runs=2, seed=1)
            wait_for_checkpoint(store, stack.namespace, before.position)
            proxy.cut()
            write_history(backend, runs=4, seed=2)  # written while Couchbase is away
            time.sleep(4)  # longer than the store's own retries: the worker must wait it out
            during = store.get(checkpoint_key(stack.namespace))
            assert during is not None
            assert during.doc["position"] == before.position  # nothing got through the cut
            proxy.restore()
            state = write_history(backend, runs=2, seed=3)
            wait_for_checkpoint(store, stack.namespace, state.position, timeout=90)
        assert following.worker.events_written == state.events
    finally:
        cut_store.close()
        proxy.close()
    projection, expected = expected_documents(backend)
    assert stored_documents(store, projection) == expected
    summary = ProjectionReader(store, stack.namespace).summary()
    assert summary is not None
    assert summary["events"] == state.events  # every event counted exactly once


class SlowFirstFetch:
    """A real log whose follower comes back empty once before its first records, as a
    Kafka consumer's first fetch does on a busy machine (hundreds of tenants' followers in
    one `project --all-tenants`): the worker is idle before it has read anything."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def __getattr__(self, name: str) -> object:
        return getattr(self.log, name)

    def follow(self, start: int, stop: threading.Event) -> Iterator[StoredRecord | None]:
        yield None
        yield from self.log.follow(start, stop)


def test_a_follower_idle_before_its_first_fetch_resumes_from_its_checkpoint(
        tmp_path: Path) -> None:
    stack = Stack(f"local:{tmp_path}/bus", f"sqlite:{tmp_path}/projections.db", "slow")
    with open_backend(stack.bus, stack.namespace) as backend, closing(stack.store()) as store:
        write_history(backend, runs=3)
        project(bus=stack.bus, namespace=stack.namespace, store=stack.store_url, once=True)
        worker = ProjectionWorker(SlowFirstFetch(backend.log), store,  # type: ignore[arg-type]
                                  stack.namespace)
        stop, failed = threading.Event(), []
        thread = threading.Thread(target=lambda: _run_until(worker, stop, failed))
        thread.start()
        try:
            state = write_history(backend, runs=1, seed=2)
            wait_for_checkpoint(store, stack.namespace, state.position)
        finally:
            stop.set()
            thread.join(timeout=60)
        assert failed == []  # not "the checkpoint is past the end of the log"
        projection, expected = expected_documents(backend)
        assert stored_documents(store, projection) == expected


def test_a_follower_refuses_a_checkpoint_past_the_end_of_a_replaced_log(
        tmp_path: Path) -> None:
    stack = Stack(f"local:{tmp_path}/bus", f"sqlite:{tmp_path}/projections.db", "replaced")
    with open_backend(stack.bus, stack.namespace) as backend:
        write_history(backend, runs=3)
    project(bus=stack.bus, namespace=stack.namespace, store=stack.store_url, once=True)
    (tmp_path / "bus" / stack.namespace / "audit.log").unlink()  # started over, shorter
    with open_backend(stack.bus, stack.namespace) as backend, closing(stack.store()) as store:
        write_history(backend, runs=1)
        worker = ProjectionWorker(SlowFirstFetch(backend.log), store,  # type: ignore[arg-type]
                                  stack.namespace)
        with pytest.raises(StoreError, match="past the end of"):
            worker.run(threading.Event())


def _run_until(worker: ProjectionWorker, stop: threading.Event,
               failed: list[BaseException]) -> None:
    try:
        worker.run(stop)
    except BaseException as exc:  # the test asserts there was none
        failed.append(exc)
