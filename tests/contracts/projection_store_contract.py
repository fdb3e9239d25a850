"""The contract every ``ProjectionStore`` adapter passes. Subclass it and provide ``store``.

Run on SQLite in ``test_sqlite_store.py`` and on a real Couchbase-protocol server in
``tests/integration/test_couchbase_store.py``: the same assertions, unchanged.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from flamingock_es.projections.stores import ProjectionStore, VersionConflict


class ProjectionStoreContract:
    @pytest.fixture
    def prefix(self) -> str:
        return f"contract-{uuid.uuid4().hex[:10]}::"

    def test_a_missing_key_reads_as_none(self, store: ProjectionStore, prefix: str) -> None:
        assert store.get(prefix + "nothing") is None
        assert store.lookup(prefix + "nothing", ["a"]) is None
        assert store.get_many([prefix + "nothing"]) == {}

    def test_insert_then_read_back(self, store: ProjectionStore, prefix: str) -> None:
        doc = {"position": 3, "nested": {"status": "APPLIED"}, "list": [1, "two", None]}
        version = store.write(prefix + "a", doc, None)
        found = store.get(prefix + "a")
        assert found is not None
        assert found.doc == doc
        assert found.version == version

    def test_insert_refuses_an_existing_key(self, store: ProjectionStore, prefix: str) -> None:
        store.write(prefix + "a", {"n": 1}, None)
        with pytest.raises(VersionConflict):
            store.write(prefix + "a", {"n": 2}, None)
        found = store.get(prefix + "a")
        assert found is not None
        assert found.doc == {"n": 1}

    def test_compare_and_set(self, store: ProjectionStore, prefix: str) -> None:
        first = store.write(prefix + "a", {"n": 1}, None)
        second = store.write(prefix + "a", {"n": 2}, first)
        assert second != first
        with pytest.raises(VersionConflict):
            store.write(prefix + "a", {"n": 3}, first)  # stale version
        found = store.get(prefix + "a")
        assert found is not None
        assert found.doc == {"n": 2}
        assert found.version == second

    def test_replace_of_a_missing_key_conflicts(self, store: ProjectionStore,
                                                prefix: str) -> None:
        version = store.write(prefix + "a", {"n": 1}, None)
        store.delete(prefix + "a")
        with pytest.raises(VersionConflict):
            store.write(prefix + "a", {"n": 2}, version)

    def test_delete(self, store: ProjectionStore, prefix: str) -> None:
        version = store.write(prefix + "a", {"n": 1}, None)
        assert store.delete(prefix + "a") is True
        assert store.get(prefix + "a") is None
        assert store.delete(prefix + "a") is False
        again = store.write(prefix + "a", {"n": 2}, None)
        with pytest.raises(VersionConflict):
            store.delete(prefix + "a", version)
        assert store.delete(prefix + "a", again) is True

    def test_get_many_returns_only_existing(self, store: ProjectionStore, prefix: str) -> None:
        store.write(prefix + "a", {"n": 1}, None)
        store.write(prefix + "b", {"n": 2}, None)
        found = store.get_many([prefix + "a", prefix + "missing", prefix + "b"])
        assert {k: v.doc for k, v in found.items()} == {prefix + "a": {"n": 1},
                                                        prefix + "b": {"n": 2}}

    def test_lookup_reads_fields(self, store: ProjectionStore, prefix: str) -> None:
        store.write(prefix + "a", {"status": "FAILED", "last": {"run_id": "r9"}}, None)
        assert store.lookup(prefix + "a", ["status", "last.run_id", "absent"]) == {
            "status": "FAILED", "last.run_id": "r9", "absent": None}
        # a path through a value that is no object: the document lacks it, too
        assert store.lookup(prefix + "a", ["status.code", "last.run_id.x"]) == {
            "status.code": None, "last.run_id.x": None}

    def test_a_batch_commits_its_writes(self, store: ProjectionStore, prefix: str) -> None:
        with store.batch():
            store.write(prefix + "a", {"n": 1}, None)
            store.write(prefix + "b", {"n": 2}, None)
        assert set(store.get_many([prefix + "a", prefix + "b"])) == {prefix + "a", prefix + "b"}

    def test_racing_writers_one_wins_each_round(self, store: ProjectionStore,
                                                prefix: str) -> None:
        key = prefix + "counter"
        store.write(key, {"n": 0}, None)
        errors: list[BaseException] = []

        def bump() -> None:
            try:
                for _ in range(20):
                    while True:
                        found = store.get(key)
                        assert found is not None
                        try:
                            store.write(key, {"n": found.doc["n"] + 1}, found.version)
                            break
                        except VersionConflict:
                            continue
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=bump) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        found = store.get(key)
        assert found is not None
        assert found.doc["n"] == 60
