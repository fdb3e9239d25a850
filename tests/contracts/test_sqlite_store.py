"""The projection-store contract on the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flamingock_es.projections.stores.sqlite import SqliteProjectionStore

from flamingock_es.namespace import open_store

from .projection_store_contract import ProjectionStoreContract


class TestSqliteProjectionStore(ProjectionStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteProjectionStore]:
        store = SqliteProjectionStore(tmp_path / "p.db")
        yield store
        store.close()


def test_open_store_picks_sqlite_and_uses_wal(tmp_path: Path) -> None:
    store = open_store(f"sqlite:{tmp_path}/sub/p.db")
    try:
        assert isinstance(store, SqliteProjectionStore)
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_a_failed_batch_writes_nothing(tmp_path: Path) -> None:
    store = SqliteProjectionStore(tmp_path / "p.db")
    try:
        def crash() -> None:
            with store.batch():
                store.write("k", {"n": 1}, None)
                raise RuntimeError("crash mid-batch")

        with pytest.raises(RuntimeError):
            crash()
        assert store.get("k") is None
    finally:
        store.close()
