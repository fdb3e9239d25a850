"""The ``couchbase-document`` template against a real Couchbase-protocol server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flamingock_es.projections.stores.couchbase import CouchbaseProjectionStore, CouchbaseSettings

from flamingock_es.core.changes import ChangeContext
from flamingock_es.definition.templates import get_template
from flamingock_es.errors import TemplateError

from .conftest import CouchbaseEnv

pytestmark = pytest.mark.couchbase


@pytest.fixture
def store(couchbase_env: CouchbaseEnv) -> Iterator[CouchbaseProjectionStore]:
    # Reads what the template wrote: application data, in the default collection (the
    # store's own default is its flamingock.audit keyspace).
    opened = CouchbaseProjectionStore(CouchbaseSettings(
        couchbase_env.url, couchbase_env.bucket, couchbase_env.user, couchbase_env.password,
        scope="_default", collection="_default"))
    yield opened
    opened.close()


def step(env: CouchbaseEnv, phase: str, block: dict[str, object]) -> None:
    template = get_template("couchbase-document")
    params = template.validate(block, phase, "test.yaml")
    ctx = ChangeContext("ns", "run-1", "unit-1", block, settings={
        "couchbase_url": env.url, "couchbase_user": env.user,
        "couchbase_password": env.password, "couchbase_bucket": env.bucket})
    (template.apply if phase == "apply" else template.rollback)(params, ctx)


def test_upsert_patch_rollback_delete(couchbase_env: CouchbaseEnv,
                                      store: CouchbaseProjectionStore) -> None:
    prefix = f"tpl-{uuid.uuid4().hex[:8]}::"
    for n in range(1, 4):
        step(couchbase_env, "apply", {"action": "upsert", "key": f"{prefix}{n}",
                                      "document": {"name": f"user {n}"}})
    patch = {"action": "patch", "key_range": {"prefix": prefix, "start": 1, "end": 3},
             "set": {"prefs.theme": "dark"}}
    step(couchbase_env, "apply", patch)
    assert store.lookup(f"{prefix}2", ["prefs.theme", "name"]) == {
        "prefs.theme": "dark", "name": "user 2"}
    undo = {"action": "patch", "key_range": {"prefix": prefix, "start": 1, "end": 3},
            "remove": ["prefs.theme"]}
    step(couchbase_env, "rollback", undo)
    step(couchbase_env, "rollback", undo)  # a rollback can be repeated
    found = store.get(f"{prefix}3")
    assert found is not None
    assert found.doc == {"name": "user 3", "prefs": {}}
    step(couchbase_env, "apply", {"action": "delete", "keys": [f"{prefix}1", f"{prefix}2",
                                                               f"{prefix}3"]})
    assert store.get(f"{prefix}1") is None
    with pytest.raises(RuntimeError, match="does not exist"):
        step(couchbase_env, "apply", {"action": "delete", "key": f"{prefix}1"})
    step(couchbase_env, "apply", {"action": "delete", "key": f"{prefix}1", "missing": "skip"})


def test_a_block_must_name_its_documents() -> None:
    template = get_template("couchbase-document")
    with pytest.raises(TemplateError, match="exactly one of key, keys or key_range"):
        template.validate({"action": "patch", "set": {"a": 1}}, "apply", "x.yaml")
    with pytest.raises(TemplateError, match="needs a document"):
        template.validate({"action": "upsert", "key": "k"}, "apply", "x.yaml")
