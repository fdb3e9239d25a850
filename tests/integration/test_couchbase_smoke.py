"""Smoke tests of the Couchbase KV features the projections rely on, with the official SDK.

Runs against whatever FLAMINGOCK_COUCHBASE_URL names: gocaves (scripts/services) or a
real Couchbase Server (docker-compose.yml).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from couchbase.auth import PasswordAuthenticator
from couchbase.cluster import Cluster
from couchbase.collection import Collection
from couchbase.exceptions import CasMismatchException, DocumentExistsException
from couchbase.options import ClusterOptions, ClusterTimeoutOptions
from couchbase.subdocument import exists as sd_exists
from couchbase.subdocument import get as sd_get
from couchbase.subdocument import upsert as sd_upsert

from .conftest import CouchbaseEnv

pytestmark = pytest.mark.couchbase


@pytest.fixture(scope="module")
def collection(couchbase_env: CouchbaseEnv) -> Iterator[Collection]:
    options = ClusterOptions(
        PasswordAuthenticator(couchbase_env.user, couchbase_env.password),
        timeout_options=ClusterTimeoutOptions(
            connect_timeout=timedelta(seconds=10), kv_timeout=timedelta(seconds=5)
        ),
    )
    cluster = Cluster(couchbase_env.url, options)
    try:
        yield cluster.bucket(couchbase_env.bucket).default_collection()
    finally:
        cluster.close()


def test_upsert_get_and_stale_cas_refused(collection: Collection, unique_name: str) -> None:
    key = f"{unique_name}-doc"
    first = collection.upsert(key, {"state": "applied", "version": 1})
    assert collection.get(key).content_as[dict] == {"state": "applied", "version": 1}

    second = collection.replace(key, {"state": "applied", "version": 2}, cas=first.cas)
    assert second.cas != first.cas

    # Optimistic concurrency: a writer holding the old CAS is refused.
    with pytest.raises((CasMismatchException, DocumentExistsException)):
        collection.replace(key, {"state": "lost-update", "version": 2}, cas=first.cas)
    assert collection.get(key).content_as[dict]["version"] == 2


def test_subdocument_mutate_and_lookup(collection: Collection, unique_name: str) -> None:
    key = f"{unique_name}-doc"
    collection.upsert(key, {"id": key, "changes": {}})
    collection.mutate_in(
        key,
        [
            sd_upsert("changes.c001", {"status": "APPLIED"}, create_parents=True),
            sd_upsert("meta.lastOffset", 41, create_parents=True),
        ],
    )
    result = collection.lookup_in(
        key, [sd_get("changes.c001.status"), sd_get("meta.lastOffset"), sd_exists("missing")]
    )
    assert result.content_as[str](0) == "APPLIED"
    assert result.content_as[int](1) == 41
    assert result.exists(2) is False
    assert collection.get(key).content_as[dict]["changes"] == {"c001": {"status": "APPLIED"}}
