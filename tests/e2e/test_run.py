"""``run``, ``plan``, ``status``, ``history`` and ``init`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

APPLIED_ALL = ["start u1", "apply u1", "start u2", "apply u2", "start u3", "apply u3"]


def kinds(project: Project, *args: str) -> list[tuple[str, str | None]]:
    events = json.loads(ok(project.cli("history", "--json", *args)).stdout)
    return [(e["payload"]["type"], e["payload"].get("unit_id")) for e in events]


def test_first_run_applies_everything_in_order(project: Project) -> None:
    result = ok(project.cli("run"))

    assert project.effects() == APPLIED_ALL
    assert "[1/3] main/u1 (pending) ... applied" in result.stderr
    assert "SUCCEEDED; applied 3, compensated 0, skipped 0" in result.stderr
    assert kinds(project) == [
        ("RunStarted", None), ("LockAcquired", None),
        ("ChangeStarted", "u1"), ("ChangeSucceeded", "u1"),
        ("ChangeStarted", "u2"), ("ChangeSucceeded", "u2"),
        ("ChangeStarted", "u3"), ("ChangeSucceeded", "u3"),
        ("RunFinished", None), ("LockReleased", None)]
    status = ok(project.cli("status"))
    assert status.stdout.startswith("namespace shop: 10 audit events")
    assert status.stdout.count("APPLIED") == 3


def test_a_second_run_is_up_to_date_writes_nothing_and_takes_no_lock(project: Project) -> None:
    ok(project.cli("run"))
    log, lock = project.log.read_bytes(), project.lock.read_bytes()

    result = ok(project.cli("run"))

    assert "up to date: 3 unit(s), nothing to apply" in result.stderr
    assert project.log.read_bytes() == log  # no new events
    assert project.lock.read_bytes() == lock  # the generation was not bumped: no lock taken
    assert project.effects() == APPLIED_ALL


def test_a_failure_compensates_the_unit_and_the_run_newest_first(project: Project) -> None:
    project.flag("fail-u3")

    result = ok(project.cli("run"), 8)

    units = (project.path / "changes" / "units.py").read_text().splitlines()
    raised = next(n for n, line in enumerate(units, 1) if 'raise RuntimeError(f"{uid} boom")'
                  in line)
    where = f"changes/units.py:{raised}"  # the unit's own line that raised
    assert project.effects() == ["start u1", "apply u1", "start u2", "apply u2", "start u3",
                                 "rollback u3", "rollback u2", "rollback u1"]
    assert (f"unit 'u3' failed: RuntimeError: u3 boom (at {where}); compensated u3, u2, u1: "
            "no partial state is left") in result.stderr
    assert "ROLLED_BACK; applied 2, compensated 3" in result.stderr
    compensation = [k for k in kinds(project) if k[0].startswith("Compensation")]
    assert compensation == [
        ("CompensationStarted", "u3"), ("CompensationSucceeded", "u3"),
        ("CompensationStarted", "u2"), ("CompensationSucceeded", "u2"),
        ("CompensationStarted", "u1"), ("CompensationSucceeded", "u1")]
    events = json.loads(project.cli("history", "--json").stdout)
    finished = [e["payload"] for e in events if e["payload"]["type"] == "RunFinished"]
    assert finished[0]["outcome"] == "ROLLED_BACK"
    assert finished[0]["error"] == {"type": "RuntimeError", "message": "u3 boom",
                                    "where": where}

    status = ok(project.cli("status"))
    assert status.stdout.count("ROLLED_BACK") == 3
    assert "error: RuntimeError: u3 boom" in status.stdout
    history = ok(project.cli("history")).stdout
    assert "CompensationStarted" in history
    assert "CompensationSucceeded" in history
    assert "by=e2e-user@" in history

    project.unflag("fail-u3")  # fixed: the next run applies everything again
    ok(project.cli("run"))
    assert project.effects()[-6:] == APPLIED_ALL


def test_a_failed_rollback_shows_both_errors(project: Project) -> None:
    project.flag("fail-u3", "fail-rollback-u3")

    result = ok(project.cli("run"), 8)

    assert "ROLLBACK FAILED: OSError: rollback of u3 boom" in result.stderr
    assert "not everything could be rolled back" in result.stderr
    assert project.effects()[-2:] == ["rollback u2", "rollback u1"]
    status = ok(project.cli("status"), 7)
    (row,) = [line for line in status.stdout.splitlines() if "main/u3" in line]
    assert "ROLLBACK_FAILED" in row
    assert "error: RuntimeError: u3 boom" in row
    assert "rollback error: OSError: rollback of u3 boom" in row
    assert 'flamingock-es mark u3 --as rolled-back --reason "..."' in status.stdout
    report = json.loads(ok(project.cli("status", "--json")).stdout)
    assert [r["status"] for r in report["rows"]] == ["ROLLED_BACK", "ROLLED_BACK",
                                                    "ROLLBACK_FAILED"]
    events = json.loads(project.cli("history", "--json", "--unit", "u3").stdout)
    failed = [e["payload"] for e in events if e["payload"]["type"] == "CompensationFailed"]
    assert failed[0]["original_error"]["message"] == "u3 boom"
    assert failed[0]["error"]["message"] == "rollback of u3 boom"
    assert ok(project.cli("run"), 7).stderr.count("flamingock-es mark u3 --as rolled-back") == 1


def test_plan_shows_what_run_would_do_and_writes_nothing(project: Project) -> None:
    before = ok(project.cli("plan"))
    assert not project.log.exists()
    lines = before.stdout.splitlines()
    assert lines[0].split()[:2] == ["run", "main/u1"]
    assert [line.split()[1] for line in lines] == ["main/u1", "main/u2", "main/u3"]
    assert all(line.split()[-1] == "pending" for line in lines)

    ok(project.cli("run"))
    after = ok(project.cli("plan")).stdout
    assert after.count("skip") == 3
    assert after.rstrip().endswith("up to date: nothing to apply")
    plan = json.loads(ok(project.cli("plan", "--json")).stdout)
    assert [(u["unit"], u["action"]) for u in plan["units"]] == [
        ("u1", "skip"), ("u2", "skip"), ("u3", "skip")]
    assert plan["blockers"] == []
    assert plan["unknown"] == []


def test_json_outputs_parse(project: Project) -> None:
    first = json.loads(ok(project.cli("run", "--json")).stdout)
    assert first["outcome"] == "SUCCEEDED"
    assert first["applied"] == ["u1", "u2", "u3"]
    again = json.loads(ok(project.cli("run", "--json")).stdout)
    assert again["outcome"] is None
    assert again["run_id"] is None
    assert again["skipped"] == 3

    status = json.loads(ok(project.cli("status", "--json")).stdout)
    assert status["namespace"] == "shop"
    assert status["events"] == 10
    assert {r["unit_id"]: r["status"] for r in status["rows"]} == {
        "u1": "APPLIED", "u2": "APPLIED", "u3": "APPLIED"}
    history = json.loads(ok(project.cli("history", "--json", "--unit", "u2")).stdout)
    assert [e["payload"]["type"] for e in history] == ["ChangeStarted", "ChangeSucceeded"]
    assert history[0]["actor"]["principal"] == "e2e-user"
    assert len(bytes.fromhex(history[0]["hash"])) == 32
    verify = json.loads(ok(project.cli("verify", "--json")).stdout)
    assert verify["ok"] is True
    assert verify["events"] == 10
    assert verify["breaks"] == []
    assert verify["counts"] == {"APPLIED": 3}


def test_init_then_run(tmp_path: Path) -> None:
    project = Project(tmp_path / "fresh-app")
    project.path.mkdir()

    created = ok(project.cli("init"))

    assert "created flamingock.yaml" in created.stdout
    ok(project.cli("run"))
    status = ok(project.cli("status")).stdout
    assert "namespace fresh-app" in status
    assert "APPLIED" in status
    assert "main/hello-python" in status
    assert "main/hello-yaml" in status
    assert ok(project.cli("init"), 2).stderr.startswith("flamingock-es: error: init would ")
