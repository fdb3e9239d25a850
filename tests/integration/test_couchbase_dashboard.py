"""Projections a dashboard can use, on the real Couchbase-protocol server (gocaves):

* documents go to their own keyspace by default (`flamingock`.`audit`), created through the
  SDK's collection manager when missing; ``?scope=&collection=`` names another;
* unit documents say who applied them, when, and who requested it;
* the reads docs/projections.md gives as SQL++ (gocaves has no query service, so those
  statements are not run here) done through the key-value ``ProjectionReader``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flamingock_es.projections import ProjectionReader
from flamingock_es.projections.stores.couchbase import CouchbaseProjectionStore

from flamingock_es.namespace import open_store

from ..e2e.conftest import Project, ok
from .conftest import CouchbaseEnv

pytestmark = [pytest.mark.couchbase, pytest.mark.e2e]


def cluster_bucket(env: CouchbaseEnv) -> Any:
    from couchbase.auth import PasswordAuthenticator
    from couchbase.cluster import Cluster
    from couchbase.options import ClusterOptions

    cluster = Cluster(env.url, ClusterOptions(PasswordAuthenticator(env.user, env.password)))
    cluster.wait_until_ready(timedelta(seconds=15))
    return cluster, cluster.bucket(env.bucket)


@pytest.fixture
def bucket(couchbase_env: CouchbaseEnv) -> Iterator[Any]:
    cluster, opened = cluster_bucket(couchbase_env)
    yield opened
    cluster.close()


@pytest.fixture
def scope(bucket: Any) -> Iterator[str]:
    """A scope of this test's own, dropped afterwards."""
    from couchbase.exceptions import ScopeNotFoundException

    name = f"it_{uuid.uuid4().hex[:10]}"
    yield name
    with contextlib.suppress(ScopeNotFoundException):
        bucket.collections().drop_scope(name)


@pytest.fixture
def project(tmp_path: Path, couchbase_env: CouchbaseEnv) -> Project:
    project = Project(tmp_path / "proj")
    project.write("flamingock.yaml", "namespace: shop\nstages:\n  - name: main\n"
                                     "    units: [changes]\n")
    project.units()
    project.env.update(FLAMINGOCK_COUCHBASE_USER=couchbase_env.user,
                       FLAMINGOCK_COUCHBASE_PASSWORD=couchbase_env.password)
    return project


def keyspaces(bucket: Any) -> dict[str, set[str]]:
    return {s.name: {c.name for c in s.collections}
            for s in bucket.collections().get_all_scopes()}


def test_a_missing_scope_and_collection_are_created_and_used(
        couchbase_env: CouchbaseEnv, bucket: Any, scope: str) -> None:
    url = f"{couchbase_env.url}?bucket={couchbase_env.bucket}&scope={scope}&collection=audit"
    store = open_store(url, {"user": couchbase_env.user, "password": couchbase_env.password})
    try:
        key = f"fes::{scope}::probe"
        store.write(key, {"type": "probe"}, None)
        assert store.get(key) is not None
    finally:
        store.close()
    assert keyspaces(bucket)[scope] == {"audit"}
    stored = bucket.scope(scope).collection("audit").get(key).content_as[dict]
    assert stored == {"type": "probe"}
    assert not bucket.default_collection().exists(key).exists


def test_the_default_keyspace_is_flamingock_audit_not_default(
        couchbase_env: CouchbaseEnv, bucket: Any) -> None:
    store = open_store(f"{couchbase_env.url}?bucket={couchbase_env.bucket}",
                       {"user": couchbase_env.user, "password": couchbase_env.password})
    key = f"fes::it-{uuid.uuid4().hex[:8]}::probe"
    try:
        assert isinstance(store, CouchbaseProjectionStore)
        assert (store.settings.scope, store.settings.collection) == ("flamingock", "audit")
        store.write(key, {"type": "probe"}, None)
        assert bucket.scope("flamingock").collection("audit").exists(key).exists
        assert not bucket.default_collection().exists(key).exists
    finally:
        store.delete(key)
        store.close()


def test_a_dashboards_reads_through_the_key_value_reader(
        project: Project, couchbase_env: CouchbaseEnv, scope: str) -> None:
    url = f"{couchbase_env.url}?bucket={couchbase_env.bucket}&scope={scope}&collection=audit"
    namespace = f"shop-{uuid.uuid4().hex[:8]}"
    project.env["FLAMINGOCK_NAMESPACE"] = namespace
    ok(project.cli("run", "--namespace", namespace))
    ok(project.cli("undo", "--to", "u1", "--namespace", namespace))
    project.flag("fail-u3", "fail-rollback-u3")
    ok(project.cli("run", "--namespace", namespace), 8)  # u3 ROLLBACK_FAILED, u2 rolled back
    ok(project.cli("project", "--once", "--store", url, "--namespace", namespace))
    units = ok(project.cli("state", "units", "--store", url, "--namespace", namespace))
    assert "ROLLBACK_FAILED" in units.stdout

    store = open_store(url, {"user": couchbase_env.user, "password": couchbase_env.password})
    reader = ProjectionReader(store, namespace)
    try:
        # Units needing attention (docs/projections.md, the first SQL++ statement).
        attention = [u["unit_id"] for u in reader.units() if u["needs_attention"]]
        assert attention == ["u3"]
        # The last runs of the namespace, newest first (the second).
        last = sorted(reader.runs(), key=lambda r: r["started_at"], reverse=True)[:3]
        assert [r["trigger"] for r in last] == ["cli", "undo", "cli"]
        assert last[0]["outcome"] == "FAILED"
        # Who changed what this week (the third).
        week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
        changed = [(u["unit_id"], u["status"], u["last_attempt"]["by"]["principal"])
                   for u in reader.units() if u["finished_at"] >= week_ago]
        assert changed == [("u1", "APPLIED", "e2e-user"), ("u2", "ROLLED_BACK", "e2e-user"),
                           ("u3", "ROLLBACK_FAILED", "e2e-user")]
        u1 = reader.unit("u1")
        assert u1 is not None
        assert u1["applied_by"]["principal"] == "e2e-user"
        assert u1["applied_at"] == u1["finished_at"]
        u3 = reader.unit("u3")
        assert u3 is not None
        assert u3["applied_by"] is None
        assert u3["last_attempt"]["by"]["principal"] == "e2e-user"
    finally:
        store.close()


def test_a_rollout_and_its_tenants_are_projected_into_couchbase(
        project: Project, couchbase_env: CouchbaseEnv, bucket: Any, scope: str) -> None:
    from ..e2e.test_rollout import UNITS, rollout_json, workflow

    url = f"{couchbase_env.url}?bucket={couchbase_env.bucket}&scope={scope}&collection=audit"
    project.write("flamingock.yaml", workflow(
        "[{id: t1, region: eu}, {id: t2, region: us}, {id: t3, region: eu}, "
        "{id: t4, region: us}]"))
    project.write("changes/units.py", UNITS)
    project.flag("fail-t3")
    ok(project.cli("rollout", "--reason", "release 9 (CHG-9)", "--canary", "1",
                   "--max-failures", "1"))
    rollout_id = str(rollout_json(project)["rollout_id"])
    ok(project.cli("project", "--once", "--store", url, "--namespace", "shop._rollouts"))
    for tenant in ("t1", "t3"):
        ok(project.cli("project", "--once", "--store", url, "--tenant", tenant))

    store = open_store(url, {"user": couchbase_env.user, "password": couchbase_env.password})
    try:
        doc = ProjectionReader(store, "shop._rollouts").rollout(rollout_id)
        assert doc is not None
        assert (doc["type"], doc["result"]) == ("rollout", "PARTIAL")
        assert doc["reason"] == "release 9 (CHG-9)"
        assert {t: v["result"] for t, v in doc["tenants"].items()} == {
            "t1": "SUCCEEDED", "t2": "SUCCEEDED", "t3": "ROLLED_BACK", "t4": "SUCCEEDED"}
        assert [w["counts"] for w in doc["waves"]] == [{"SUCCEEDED": 1},
                                                      {"SUCCEEDED": 2, "ROLLED_BACK": 1}]
        failed = ProjectionReader(store, "shop.t3").unit("u1")
        assert failed is not None
        assert failed["status"] == "ROLLED_BACK"
        applied = ProjectionReader(store, "shop.t1").unit("u1")
        assert applied is not None
        assert applied["status"] == "APPLIED"
    finally:
        store.close()
    # The documents are in the named keyspace, where a dashboard's SQL++ reads them.
    stored = bucket.scope(scope).collection("audit").get(
        f"fes::shop._rollouts::rollout::{rollout_id}").content_as[dict]
    assert stored["tenants"]["t3"]["result"] == "ROLLED_BACK"
