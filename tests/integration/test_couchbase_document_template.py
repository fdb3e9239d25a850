"""The ``couchbase-document`` template against a real Couchbase-protocol server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flamingock_es.projections.stores.couchbase import CouchbaseProjectionStore, CouchbaseSettings

from flamingock_es.adapters.local.file_lock import FileLease, FileLock
from flamingock_es.api import run, verify
from flamingock_es.core.changes import ChangeContext
from flamingock_es.core.fencing import FencingToken
from flamingock_es.definition.templates import get_template
from flamingock_es.definition.templates.couchbase_document import XATTR
from flamingock_es.errors import LockLostError, StepNotStarted, TemplateError

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


def test_a_bucket_that_does_not_open_is_tried_once_more_then_fails_as_not_started(
        couchbase_env: CouchbaseEnv, caplog: pytest.LogCaptureFixture) -> None:
    # A bootstrap timeout is what a busy node and a missing bucket both give: one more try on
    # a new connection, then the step fails as not started (no rollback), naming the bucket.
    absent = CouchbaseEnv(couchbase_env.url, couchbase_env.user, couchbase_env.password,
                          f"absent-{uuid.uuid4().hex[:6]}")
    with caplog.at_level("WARNING"), pytest.raises(
            StepNotStarted, match=f"bucket '{absent.bucket}' is not ready.*no document was"):
        step(absent, "apply", {"action": "upsert", "key": "k", "document": {"a": 1},
                               "timeout": 1.0})
    tries = [r for r in caplog.records if "trying once more" in r.getMessage()]
    assert len(tries) == 1, caplog.text


def test_a_block_must_name_its_documents() -> None:
    template = get_template("couchbase-document")
    with pytest.raises(TemplateError, match="exactly one of key, keys or key_range"):
        template.validate({"action": "patch", "set": {"a": 1}}, "apply", "x.yaml")
    with pytest.raises(TemplateError, match="needs a document"):
        template.validate({"action": "upsert", "key": "k"}, "apply", "x.yaml")


# Fencing ---------------------------------------------------------------------------------

@pytest.fixture
def collection(couchbase_env: CouchbaseEnv) -> Iterator[Any]:
    """The default collection, through the SDK: to read the extended attributes."""
    from datetime import timedelta

    from couchbase.auth import PasswordAuthenticator
    from couchbase.cluster import Cluster
    from couchbase.options import ClusterOptions

    cluster = Cluster(couchbase_env.url, ClusterOptions(PasswordAuthenticator(
        couchbase_env.user, couchbase_env.password)))
    bucket = cluster.bucket(couchbase_env.bucket)
    cluster.wait_until_ready(timedelta(seconds=20))
    yield bucket.default_collection()
    cluster.close()


@pytest.fixture
def lease(tmp_path: Path) -> Iterator[FileLease]:
    """A real lock held for the step: its generation is the fencing token's."""
    held = FileLock(tmp_path / "lock").acquire("test:1:run-1", 5.0)
    yield held
    held.release()


def fenced(env: CouchbaseEnv, lease: FileLease, phase: str, block: dict[str, object]) -> None:
    template = get_template("couchbase-document")
    params = template.validate(block, phase, "test.yaml")
    ctx = ChangeContext("ns", "run-1", "unit-1", block, settings={
        "couchbase_url": env.url, "couchbase_user": env.user,
        "couchbase_password": env.password, "couchbase_bucket": env.bucket},
        idempotency_key="key-1",
        fencing=FencingToken(lease.lock, lease.generation, "run-1", "unit-1"), lease=lease)
    (template.apply if phase == "apply" else template.rollback)(params, ctx)


def metadata(collection: Any, key: str) -> dict[str, Any] | None:
    import couchbase.subdocument as sd

    found = collection.lookup_in(key, [sd.get(XATTR, xattr=True)])
    return found.content_as[dict](0) if found.exists(0) else None


def test_each_write_carries_the_fencing_token_in_an_extended_attribute(
        couchbase_env: CouchbaseEnv, lease: FileLease, collection: Any) -> None:
    key = f"fence-{uuid.uuid4().hex[:8]}"

    fenced(couchbase_env, lease, "apply", {"action": "upsert", "key": key,
                                           "document": {"name": "ana"}})
    fenced(couchbase_env, lease, "apply", {"action": "patch", "key": key,
                                           "set": {"tier": "gold"}})

    assert collection.get(key).content_as[dict] == {"name": "ana", "tier": "gold"}  # unseen
    assert metadata(collection, key) == {
        "lock": lease.lock, "generation": lease.generation, "run_id": "run-1",
        "unit_id": "unit-1", "namespace": "ns", "idempotency_key": "key-1",
        "action": "patch"}


def test_a_document_a_newer_lock_holder_wrote_is_refused_and_left_as_it_is(
        couchbase_env: CouchbaseEnv, lease: FileLease, collection: Any) -> None:
    import couchbase.subdocument as sd

    key = f"fence-{uuid.uuid4().hex[:8]}"
    collection.upsert(key, {"name": "newer"})
    newer = {"lock": lease.lock, "generation": lease.generation + 1, "run_id": "run-2",
             "unit_id": "unit-1"}
    collection.mutate_in(key, [sd.upsert(XATTR, newer, xattr=True, create_parents=True)])

    with pytest.raises(LockLostError, match="written by a newer holder of the lock"):
        fenced(couchbase_env, lease, "apply", {"action": "patch", "key": key,
                                               "set": {"tier": "stale"}})

    assert collection.get(key).content_as[dict] == {"name": "newer"}
    assert metadata(collection, key) == newer
    older = {**newer, "generation": lease.generation - 1}  # an older holder's: written over
    collection.mutate_in(key, [sd.upsert(XATTR, older, xattr=True)])
    fenced(couchbase_env, lease, "apply", {"action": "patch", "key": key,
                                           "set": {"tier": "gold"}})
    assert collection.get(key).content_as[dict] == {"name": "newer", "tier": "gold"}


def test_a_lost_lock_writes_no_further_document(
        couchbase_env: CouchbaseEnv, lease: FileLease, collection: Any) -> None:
    prefix = f"fence-{uuid.uuid4().hex[:8]}::"
    lease.path.unlink()  # the lock file is gone: this holder's flock guards nothing now

    with pytest.raises(LockLostError):
        fenced(couchbase_env, lease, "apply", {"action": "upsert", "keys": [
            f"{prefix}1", f"{prefix}2"], "document": {"name": "x"}})

    from couchbase.exceptions import DocumentNotFoundException

    for n in (1, 2):
        with pytest.raises(DocumentNotFoundException):
            collection.get(f"{prefix}{n}")


def test_a_run_records_its_lock_generation_on_the_documents_it_writes(
        tmp_path: Path, collection: Any) -> None:
    key = f"fence-{uuid.uuid4().hex[:8]}"
    (tmp_path / "changes").mkdir()
    (tmp_path / "flamingock.yaml").write_text(
        f"namespace: shop\nbus: local:{tmp_path}/bus\nstages:\n  - name: main\n"
        "    units: [changes]\n")
    (tmp_path / "changes" / "doc.yaml").write_text(
        f"id: doc\norder: 1\nauthor: ana\ntemplate: couchbase-document\n"
        f"apply: {{action: upsert, key: {key}, document: {{name: ana}}}}\n")

    result = run(tmp_path / "flamingock.yaml", handle_signals=False)

    acquired = next(r.event for r in verify(tmp_path / "flamingock.yaml").records
                    if r.event.kind == "LockAcquired")
    mark = metadata(collection, key)
    assert mark is not None
    assert (mark["generation"], mark["run_id"], mark["unit_id"]) == (
        acquired.payload.generation, result.run_id, "doc")
    assert mark["lock"] == acquired.payload.lock
