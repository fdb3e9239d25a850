"""The projection-store contract on a real Couchbase-protocol server (gocaves or Couchbase)."""

from __future__ import annotations

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
