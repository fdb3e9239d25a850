"""A tiny document store on SQLite (JSON documents by collection): the example's database."""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def _connect(db: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS docs (collection TEXT, key TEXT, body TEXT, "
                 "PRIMARY KEY (collection, key))")
    return conn


def seed(db: str, collection: str, docs: dict[str, dict[str, Any]]) -> None:
    with _connect(db) as conn:
        conn.executemany("INSERT OR REPLACE INTO docs VALUES (?, ?, ?)",
                         [(collection, k, json.dumps(v)) for k, v in docs.items()])
    conn.close()


def documents(db: str, collection: str) -> dict[str, dict[str, Any]]:
    conn = _connect(db)
    rows = conn.execute("SELECT key, body FROM docs WHERE collection = ?", (collection,))
    out = {key: json.loads(body) for key, body in rows}
    conn.close()
    return out


def _rewrite(db: str, collection: str, change: Any) -> None:
    conn = _connect(db)
    with conn:  # one transaction: every document or none
        for key, body in conn.execute("SELECT key, body FROM docs WHERE collection = ?",
                                      (collection,)).fetchall():
            doc = json.loads(body)
            change(doc)
            conn.execute("UPDATE docs SET body = ? WHERE collection = ? AND key = ?",
                         (json.dumps(doc), collection, key))
    conn.close()


def add_field(db: str, collection: str, field: str, value: Any) -> None:
    """Add ``field`` to every document that lacks it (idempotent)."""
    _rewrite(db, collection, lambda doc: doc.setdefault(field, value))


def drop_field(db: str, collection: str, field: str) -> None:
    """Remove ``field`` from every document (idempotent)."""
    _rewrite(db, collection, lambda doc: doc.pop(field, None))
