"""The projection-store contract on a real Couchbase-protocol server (gocaves or Couchbase)."""

from __future__ import annotations

import logging
import random
import string
import uuid
from collections.abc import Iterator

import pytest
from flamingock_es.projections.stores import StoreUnavailable
from flamingock_es.projections.stores.couchbase import CouchbaseProjectionStore, CouchbaseSettings

from flamingock_es.definition.settings import resolve_settings
from flamingock_es.errors import ConfigError
from flamingock_es.namespace import settings_store

from ..contracts.projection_store_contract import ProjectionStoreContract
from .conftest import CouchbaseEnv

pytestmark = pytest.mark.couchbase


def store_url(env: CouchbaseEnv) -> str:
    return f"{env.url}?bucket={env.bucket}"


@pytest.fixture
def store(couchbase_env: CouchbaseEnv) -> Iterator[CouchbaseProjectionStore]:
    opened = CouchbaseProjectionStore.from_url(
        store_url(couchbase_env), {"user": couchbase_env.user,
                                   "password": couchbase_env.password})
    yield opened
    opened.close()


class TestCouchbaseProjectionStore(ProjectionStoreContract):
    pass


def test_credentials_come_from_the_environment(couchbase_env: CouchbaseEnv,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAMINGOCK_COUCHBASE_USER", couchbase_env.user)
    monkeypatch.setenv("FLAMINGOCK_COUCHBASE_PASSWORD", couchbase_env.password)
    monkeypatch.setenv("FLAMINGOCK_COUCHBASE_BUCKET", couchbase_env.bucket)
    store = settings_store(resolve_settings(read_file=False, store=couchbase_env.url))
    try:
        assert isinstance(store, CouchbaseProjectionStore)
        assert store.settings.bucket == couchbase_env.bucket
    finally:
        store.close()


def test_settings_pass_tls_options_through_and_keep_ours() -> None:
    s = CouchbaseSettings.from_url(
        "couchbases://db1,db2?bucket=b&scope=s&collection=c&certpath=/ca.pem&ssl=no_verify",
        {"user": "u", "password": "s3cret"}, defaults={})
    assert s.connection_string == "couchbases://db1,db2?certpath=%2Fca.pem&ssl=no_verify"
    assert (s.bucket, s.scope, s.collection, s.user) == ("b", "s", "c", "u")
    assert "s3cret" not in repr(s)
    with pytest.raises(ConfigError, match="FLAMINGOCK_COUCHBASE_USER"):
        CouchbaseSettings.from_url("couchbase://db1?bucket=b", defaults={})


def test_wrong_credentials_are_a_clear_store_error(couchbase_env: CouchbaseEnv) -> None:
    with pytest.raises(StoreUnavailable, match="cannot connect to Couchbase"):
        CouchbaseProjectionStore(CouchbaseSettings(
            couchbase_env.url, "no-such-bucket-xyz", couchbase_env.user,
            couchbase_env.password))


FALLBACK = "reading the whole document"
"""What the store logs (debug) when the server cannot look inside a document."""


def _fallbacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "flamingock_es.projections.stores.couchbase" and FALLBACK in r.message]


@pytest.mark.parametrize("pad", ["compressible", "incompressible"])
def test_lookup_reads_the_whole_document_only_where_gocaves_cannot_look_inside(
        store: CouchbaseProjectionStore, caplog: pytest.LogCaptureFixture, pad: str) -> None:
    """gocaves answers a sub-document lookup of a document the SDK sent it compressed (a
    compressible one past 32 bytes) with "internal error" (0x84) for every path: only then
    does the store read the whole document, and it says so at debug level. Any other
    document is read by its paths, which real Couchbase servers always do."""
    rng = random.Random(7)
    filler = "x" * 2000 if pad == "compressible" else "".join(
        rng.choice(string.ascii_letters) for _ in range(2000))
    key = f"it-lookup-{uuid.uuid4().hex}"
    store.write(key, {"status": "APPLIED", "last": {"run_id": "r1"}, "pad": filler}, None)
    try:
        with caplog.at_level(logging.DEBUG, logger="flamingock_es.projections.stores.couchbase"):
            found = store.lookup(key, ["status", "last.run_id", "absent", "status.code"])
        assert found == {"status": "APPLIED", "last.run_id": "r1", "absent": None,
                         "status.code": None}
        fallbacks = _fallbacks(caplog)
        if pad == "compressible":  # gocaves: the whole document, once, logged
            assert len(fallbacks) == 1, caplog.records
            assert fallbacks[0].levelno == logging.DEBUG
            assert key in fallbacks[0].message
        else:  # read by its paths: no fallback
            assert fallbacks == [], fallbacks
    finally:
        store.delete(key)
