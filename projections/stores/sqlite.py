"""``SqliteProjectionStore``: the embedded projection store, one SQLite file in WAL mode.

Each row holds a key, its JSON document and a version; compare-and-set is an ``UPDATE ...
WHERE version = ?`` that must touch one row. Versions are random 63-bit integers, opaque like
Couchbase's CAS, so a deleted and re-created document never reuses an old version.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .base import (
    Document,
    StoreUnavailable,
    Version,
    VersionConflict,
    Versioned,
    chunks,
    dig,
    write_each,
)

__all__ = ["SqliteProjectionStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    key     TEXT PRIMARY KEY,
    doc     TEXT NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID
"""


class SqliteProjectionStore:
    """Projected documents in a SQLite database at ``path`` (created if missing)."""

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.name = f"sqlite:{self.path}"
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=timeout, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open the projection store {self.name}: {exc}") from exc
        self._guard = threading.RLock()
        self._depth = 0

    def get(self, key: str) -> Versioned | None:
        with self._errors("read", key):
            row = self._db.execute(
                "SELECT doc, version FROM documents WHERE key = ?", (key,)).fetchone()
        return None if row is None else Versioned(json.loads(row[0]), row[1])

    def get_many(self, keys: Sequence[str]) -> dict[str, Versioned]:
        out: dict[str, Versioned] = {}
        for chunk in chunks(keys, 500):
            marks = ",".join("?" * len(chunk))
            with self._errors("read", chunk[0]):
                rows = self._db.execute(
                    f"SELECT key, doc, version FROM documents WHERE key IN ({marks})", chunk
                ).fetchall()
            out.update((k, Versioned(json.loads(d), v)) for k, d, v in rows)
        return out

    def lookup(self, key: str, paths: Sequence[str]) -> dict[str, Any] | None:
        found = self.get(key)
        return None if found is None else {p: dig(found.doc, p) for p in paths}

    def write(self, key: str, doc: Document, expected: Version | None) -> Version:
        version = secrets.randbits(63) or 1
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True)
        with self._errors("write", key), self._guard:
            if expected is None:
                cursor = self._db.execute(
                    "INSERT INTO documents (key, doc, version) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO NOTHING", (key, text, version))
            else:
                cursor = self._db.execute(
                    "UPDATE documents SET doc = ?, version = ? WHERE key = ? AND version = ?",
                    (text, version, key, expected))
            if cursor.rowcount != 1:
                raise VersionConflict(key)
        return version

    def write_many(self, items: Sequence[tuple[str, Document, Version | None]]
                   ) -> dict[str, Version | VersionConflict]:
        with self.batch():
            return write_each(self, items)

    def delete(self, key: str, expected: Version | None = None) -> bool:
        with self._errors("delete", key), self._guard:
            if expected is None:
                cursor = self._db.execute("DELETE FROM documents WHERE key = ?", (key,))
                return cursor.rowcount == 1
            cursor = self._db.execute(
                "DELETE FROM documents WHERE key = ? AND version = ?", (key, expected))
            if cursor.rowcount != 1:
                raise VersionConflict(key)
            return True

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction around the batch's writes (nesting is flat)."""
        with self._guard:
            outer = self._depth == 0
            if outer:
                with self._errors("begin a transaction in", ""):
                    self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                with self._errors("commit", ""):
                    self._db.execute("COMMIT")

    def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix`` (SQLite can list; Couchbase by key cannot)."""
        with self._errors("list", prefix):
            rows = self._db.execute(
                "SELECT key FROM documents WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix)).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            self._db = None  # type: ignore[assignment]

    @contextmanager
    def _errors(self, what: str, key: str) -> Iterator[None]:
        if self._db is None:
            raise StoreUnavailable(f"{self.name} is closed")
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(
                f"could not {what} {key!r} in {self.name}: {exc} (is another process holding "
                "a long write transaction, or is the disk full?)") from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"could not {what} {key!r} in {self.name}: {exc}") from exc
