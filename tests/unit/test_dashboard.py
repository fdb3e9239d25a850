"""The dashboard's web application, through Starlette's TestClient: its rules (a token,
read-only, headers, escaping) and the JSON shapes the page reads.

The documents come from a real fold (:class:`Projection`) written into a SQLite store, so the
shapes checked are those a projection worker writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flamingock_es.projections.documents import Projection
from flamingock_es.projections.stores.sqlite import SqliteProjectionStore
from starlette.testclient import TestClient

from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import (
    ROLLOUT_TRIGGER,
    Actor,
    ChangeFailed,
    ChangeStarted,
    ChangeSucceeded,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    LockAcquired,
    LockReleased,
    Payload,
    RolloutStarted,
    RunFinished,
    RunOutcome,
    RunStarted,
    TenantFinished,
    WavePublished,
)
from flamingock_es.core.recorder import Recorder, RunIdentity
from flamingock_es.core.state import State
from flamingock_es.dashboard import Hints, Tenant, Views
from flamingock_es.dashboard.app import COOKIE, HEADERS, create_app
from flamingock_es.dashboard.server import is_loopback
from flamingock_es.run.rollout import rollout_trigger

from .test_documents import MemoryWriter

EVIL = "<img src=x onerror=alert(1)>"
ACTOR = Actor(principal="ana", host="ci-1", pid=1, service_version=None, tool_version="0.1")
TOKEN = "s3cret-token-value"
JS = Path(__file__).resolve().parents[2] / "flamingock_es" / "dashboard" / "dashboard.js"


def _write(store: SqliteProjectionStore, namespace: str,
           runs: list[tuple[str, list[Payload]]]) -> None:
    writer, state, codec = MemoryWriter(), State(), AuditCodec()
    for run_id, payloads in runs:
        Recorder(writer, state, RunIdentity(namespace, run_id, ACTOR, None), codec).record(
            *payloads)
    projection = Projection(namespace)
    for record in codec.decode_all(writer.records):
        projection.apply(record)
    for key, doc in projection.documents().items():
        store.write(key, doc, None)


def _started(unit: str) -> ChangeStarted:
    return ChangeStarted(unit_id=unit, stage="main", author="ana", checksum=f"sum-{unit}",
                         template=None, parameters='{"url": "x", "api_token": "hunter22"}',
                         attempt=1, reason="pending")


def _tenant_run(run_id: str, fail: bool) -> list[Payload]:
    boom = ErrorInfo(type="RuntimeError", message="boom")
    steps: list[Payload] = [
        RunStarted(workflow="shop", trigger=rollout_trigger("r1"), planned=("u1", "u2")),
        LockAcquired(holder="h", lock="file:x", generation=1),
        _started("u1"), ChangeSucceeded(unit_id="u1", checksum="sum-u1", duration_ms=1.0),
        _started("u2")]
    if fail:
        steps += [ChangeFailed(unit_id="u2", checksum="sum-u2", duration_ms=1.0, error=boom),
                  CompensationStarted(unit_id="u1", reason="run failed"),
                  CompensationSucceeded(unit_id="u1", duration_ms=1.0),
                  RunFinished(outcome=RunOutcome.ROLLED_BACK, applied=(), error=boom)]
    else:
        steps += [ChangeSucceeded(unit_id="u2", checksum="sum-u2", duration_ms=1.0),
                  RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("u1", "u2"))]
    return [*steps, LockReleased(holder="h")]


@pytest.fixture
def views(tmp_path: Path) -> Iterator[Views]:
    store = SqliteProjectionStore(tmp_path / "p.db")
    _write(store, "shop._rollouts", [("coord", [
        RunStarted(workflow="shop", trigger="rollout", planned=()),
        LockAcquired(holder="c", lock="file:x", generation=1),
        RolloutStarted(rollout_id="r1", workflow="shop", reason="release 7 <b>now</b>",
                       tenants=("a", EVIL, "never"), max_failures="1", waves=1),
        WavePublished(rollout_id="r1", wave=0, tenants=("a", EVIL, "never"),
                      allowed_failures=1),
        TenantFinished(rollout_id="r1", wave=0, tenant="a", result="SUCCEEDED",
                       run_id="run-a"),
        TenantFinished(rollout_id="r1", wave=0, tenant=EVIL, result="ROLLED_BACK",
                       run_id="run-evil", error=ErrorInfo(type="RuntimeError", message="boom")),
    ])])
    _write(store, "shop.a", [("run-a", _tenant_run("run-a", fail=False))])
    _write(store, "shop.evil", [("run-evil", _tenant_run("run-evil", fail=True))])
    tenants = [Tenant("a", "shop.a"), Tenant(EVIL, "shop.evil"), Tenant("never", "shop.never")]
    yield Views(store, "shop", tenants, "shop._rollouts",
                Hints("flamingock-es project --all-tenants"))
    store.close()


def _client(views: Views, **options: object) -> TestClient:
    return TestClient(create_app(views, **options))  # type: ignore[arg-type]


def test_the_overview_has_the_rollout_its_waves_budget_and_the_grid(views: Views) -> None:
    data = _client(views).get("/api/overview").json()

    (rollout,) = data["rollouts"]
    assert rollout["rollout_id"] == "r1"
    assert rollout["started_by"] == "ana@ci-1"
    assert rollout["reason"] == "release 7 <b>now</b>"
    assert rollout["status"] == "RUNNING"
    assert rollout["counts"] == {"PENDING": 1, "ROLLED_BACK": 1, "SUCCEEDED": 1}
    assert rollout["budget"] == {"failed": 1, "allowed": 1}
    (wave,) = rollout["waves"]
    assert (wave["label"], wave["tenants"], wave["failed"], wave["allowed"]) == \
        ("canary", 3, 1, 1)
    assert data["units"] == ["u1", "u2"]
    rows = {row["tenant"]: row for row in data["tenants"]}
    assert rows["a"]["cells"] == {"u1": {"status": "APPLIED", "running": False},
                                  "u2": {"status": "APPLIED", "running": False}}
    assert {u: c["status"] for u, c in rows[EVIL]["cells"].items()} == {
        "u1": "ROLLED_BACK", "u2": "FAILED"}
    assert rows[EVIL]["rollout"]["result"] == "ROLLED_BACK"
    assert rows["never"]["projected"] is False
    assert rows["never"]["rollout"]["result"] == "PENDING"  # in the rollout, not run yet
    (notice,) = data["notices"]
    assert notice["kind"] == "empty"
    assert notice["tenants"] == ["never"]
    assert notice["command"] == "flamingock-es project --all-tenants"
    assert {entry["status"] for entry in data["legend"]} >= {"APPLIED", "FAILED", "PENDING",
                                                            "ROLLED_BACK"}


def test_a_tenant_has_its_history_who_asked_who_applied_and_its_verification(
        views: Views) -> None:
    client = _client(views)
    data = client.get("/api/tenants/" + EVIL).json()  # the client quotes the path

    assert data["namespace"] == "shop.evil"
    rows = [(h["unit_id"], h["outcome"], h["failed"]) for h in data["history"]]
    assert rows == [("u1", "ROLLED_BACK", False), ("u2", "FAILED", True)]
    first = data["history"][0]
    assert first["requested_by"] == {"principal": "ana@ci-1", "reason": "release 7 <b>now</b>",
                                     "rollout_id": "r1"}
    assert first["applied_by"] == {"principal": "ana", "host": "ci-1"}
    units = {u["unit_id"]: u for u in data["units"]}
    assert units["u2"]["error"]["message"] == "boom"
    assert units["u1"]["parameters"] == {"url": "x", "api_token": "***"}
    assert units["u1"]["requested_by"] == first["requested_by"]  # the rollout asked
    verification = data["verification"]
    assert verification["chain_intact"] is True
    assert verification["signed"] == "none"
    assert verification["stale"] is None
    assert "hunter22" not in client.get("/api/tenants/a").text
    assert client.get("/api/tenants/nobody").status_code == 404


def test_the_page_holds_no_data_and_the_script_builds_text_only(views: Views) -> None:
    client = _client(views)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<script src=\"dashboard.js\" defer></script>" in page.text
    assert "onerror" not in page.text
    assert "release 7" not in page.text
    script = client.get("/dashboard.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert re.search(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write",
                     script.text) is None
    assert "textContent" in script.text
    css = client.get("/dashboard.css").text
    assert ".s-APPLIED{background:#2e7d32" in css  # the report's palette
    data = client.get("/api/overview")
    assert data.headers["content-type"] == "application/json"
    assert EVIL in data.json()["units"] + [t["tenant"] for t in data.json()["tenants"]]


def test_every_response_carries_the_strict_headers(views: Views) -> None:
    client = _client(views)
    for path in ("/", "/dashboard.js", "/api/overview", "/api/tenants/nobody", "/nowhere"):
        response = client.get(path)
        for name, value in HEADERS.items():
            assert response.headers[name] == value, (path, name)
    assert "default-src 'self'" in HEADERS["content-security-policy"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_it_is_read_only(views: Views, method: str) -> None:
    client = _client(views)
    for path in ("/", "/api/overview", "/nowhere"):
        response = client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == "GET, HEAD"
    assert client.head("/api/overview").status_code == 200


def test_with_a_token_every_request_carries_it(views: Views) -> None:
    client = _client(views, token=TOKEN)
    for path in ("/", "/dashboard.js", "/api/overview", "/api/tenants/a"):
        assert client.get(path).status_code == 401, path
    assert client.get("/api/overview", headers={"Authorization": "Bearer nope"}
                      ).status_code == 401
    assert client.get("/?token=nope", follow_redirects=False).status_code == 401
    assert client.get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}
                      ).status_code == 200

    opened = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert opened.status_code == 303
    assert opened.headers["location"] == "/"  # the token leaves the address bar
    cookie = opened.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    assert client.get("/api/overview").status_code == 200  # the cookie carries it now
    client.cookies.clear()
    assert client.get("/api/overview").status_code == 401


def test_a_loopback_bind_refuses_other_host_names(views: Views) -> None:
    client = _client(views, allowed_hosts=["127.0.0.1", "localhost"])
    assert client.get("/api/overview", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert client.get("/api/overview", headers={"Host": "localhost"}).status_code == 200
    assert client.get("/api/overview", headers={"Host": "evil.example:8765"}
                      ).status_code == 400


def test_what_is_loopback() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com"))


def test_the_rollout_trigger_is_the_run_flows() -> None:
    assert rollout_trigger("r9") == f"{ROLLOUT_TRIGGER}r9"


def test_a_stale_projection_is_said_with_the_clis_remedy(views: Views) -> None:
    key = "fes::shop.a::summary"
    found = views.store.get(key)
    assert found is not None
    stale = {"position": 7, "kind": "break", "reason": "altered", "findings": 1,
             "remedy": {"kind": "quarantine", "position": 7}}
    views.store.write(key, found.doc | {"stale": stale}, found.version)
    told: list[tuple[str, int | None, str]] = []

    def remedy(kind: str, position: int | None, namespace: str) -> str:
        told.append((kind, position, namespace))
        return "the command"
    views.hints = Hints("p", remedy)
    (notice,) = [n for n in _client(views).get("/api/overview").json()["notices"]
                 if n["kind"] == "stale"]
    assert notice["namespace"] == "shop.a"
    assert "stopped before offset 7" in notice["message"]
    assert notice["command"] == "the command"
    assert told == [("quarantine", 7, "shop.a")]


@pytest.mark.parametrize("poll", ["0", "-1", "nan", "0.1", "often"])
def test_a_refresh_faster_than_half_a_second_or_not_a_number_is_refused(
        poll: str, capsys: pytest.CaptureFixture[str]) -> None:
    from flamingock_es.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["dashboard", "--poll", poll])
    assert exited.value.code == 2
    assert "argument --poll" in capsys.readouterr().err
    assert build_parser().parse_args(["dashboard", "--poll", "0.5"]).poll == 0.5
