"""Tenants and rollouts on the embedded log, through the CLI as a user runs it.

Each tenant's unit appends ``apply TENANT REGION`` to ``effects.txt`` (its rollback
``rollback TENANT``), so a test counts every side effect; ``fail-TENANT`` makes it raise,
``hold-TENANT`` parks it until ``release-TENANT`` exists.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .conftest import Project, ok

UNITS = '''\
import time
from pathlib import Path

from flamingock_es import change_unit


def _note(line):
    with open("effects.txt", "a") as f:
        f.write(line + "\\n")


def undo(ctx):
    _note(f"rollback {ctx.settings['tenant']['id']}")


@change_unit(id="u1", order=1, author="ana", rollback=undo,
             parameters={"region": "${tenant.region}", "url": "https://${tenant.id}.example"})
def u1(ctx):
    tenant = ctx.settings["tenant"]["id"]
    if Path(f"hold-{tenant}").exists():
        deadline = time.monotonic() + 60
        while not Path(f"release-{tenant}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    if Path(f"fail-{tenant}").exists():
        raise RuntimeError(f"{tenant} boom")
    _note(f"apply {tenant} {ctx.params['region']} {ctx.settings['flags']}")
'''

TENANTS = [f"t{i}" for i in range(1, 9)]
ALWAYS_RETRY = UNITS.replace("rollback=undo,", "rollback=undo, recovery=\"always-retry\",")
"""The same unit, retried when it is found in doubt."""


def workflow(tenants: str) -> str:
    return f"""\
namespace: shop
tenants: {tenants}
settings: {{flags: "https://flags.${{tenant.region}}.example"}}
stages:
  - name: main
    units: [changes]
"""


@pytest.fixture
def tenants(project: Project) -> Project:
    project.write("flamingock.yaml", workflow(
        "{list: [" + ", ".join(TENANTS[:-1]) + ", {id: t8, region: us}], "
        "defaults: {region: eu}}"))
    project.write("changes/units.py", UNITS)
    (project.path / "changes" / "__init__.py").unlink(missing_ok=True)
    return project


def applied(project: Project) -> Counter[str]:
    return Counter(line.split()[1] for line in project.effects() if line.startswith("apply"))


@contextmanager
def coordinator_held_at(tenants: Project, held: str, before: str) -> Iterator[
        subprocess.Popen[str]]:
    """A coordinator of release 7 (canary 2, waves of 3) with tenant ``held`` parked in its
    unit, once ``before`` (the tenant ahead of it) has applied; killed on the way out if it
    is still running."""
    tenants.flag(f"hold-{held}")
    coordinator = tenants.spawn("rollout", "--reason", "release 7", "--canary", "2", "--wave", "3")
    try:
        tenants.wait_for_effect(f"apply {before} eu https://flags.eu.example")
        time.sleep(0.3)  # ``held`` is in its unit now
        yield coordinator
    finally:
        if coordinator.poll() is None:
            coordinator.kill()


def rollout_json(project: Project) -> dict[str, object]:
    found = json.loads(ok(project.cli("rollout", "status", "--json")).stdout)
    assert len(found) == 1
    return found[0]  # type: ignore[no-any-return]


# Tenants -------------------------------------------------------------------------------------

def test_each_tenant_is_its_own_namespace_with_its_own_values(tenants: Project) -> None:
    ok(tenants.cli("run", "--tenant", "t8"))
    ok(tenants.cli("run", "--tenant", "t1"))
    ok(tenants.cli("run", "--tenant", "t1"))  # applied: nothing to do

    assert tenants.effects() == ["apply t8 us https://flags.us.example",
                                 "apply t1 eu https://flags.eu.example"]
    status = json.loads(ok(tenants.cli("status", "--tenant", "t1", "--json")).stdout)
    assert status["namespace"] == "shop.t1"
    assert [u["status"] for u in status["rows"]] == ["APPLIED"]
    assert (tenants.path / ".flamingock" / "shop.t1" / "audit.log").exists()
    assert not (tenants.path / ".flamingock" / "shop.t2").exists()
    ok(tenants.cli("verify", "--tenant", "t8"))
    history = ok(tenants.cli("history", "--tenant", "t8")).stdout
    assert "ChangeSucceeded" in history
    # the log keeps the block as written, never the tenant's values
    assert "${tenant.region}" in history or b"${tenant.region}" in (
        tenants.path / ".flamingock" / "shop.t8" / "audit.log").read_bytes()


def test_a_workflow_with_tenants_needs_one_named_to_run(tenants: Project) -> None:
    result = ok(tenants.cli("run"), 2)
    assert "runs per tenant" in result.stderr
    assert "--tenant ID" in result.stderr
    assert tenants.effects() == []


@pytest.mark.parametrize("command", [
    ["history"], ["verify"], ["replay"], ["snapshot"], ["checkpoint"], ["state"],
    ["quarantine", "--offset", "1", "--reason", "garbage from ticket 12"],
    ["prove", "--position", "0"]])
def test_a_read_of_a_workflow_with_tenants_names_the_tenant_not_a_missing_log(
        tenants: Project, command: list[str]) -> None:
    """The workflow's own namespace never holds a log: a read without --tenant says to name
    one (and where the rollouts are), not that namespace 'shop' was never recorded."""
    ok(tenants.cli("run", "--tenant", "t1"))
    result = ok(tenants.cli(*command), 2)
    assert "runs per tenant" in result.stderr, result.stderr
    assert "--tenant ID" in result.stderr
    assert "rollout status" in result.stderr
    assert "has no audit log" not in result.stderr


@pytest.mark.parametrize(("given", "says"), [
    ("[]", "gives no tenant"),
    ("[acme, acme]", "listed twice"),
    ("[acme, 'bad.id']", "tenants.1: String should match pattern"),
    ("{command: [sh, -c, 'echo nope >&2; exit 3']}", "failed with exit status 3: nope"),
    ("{command: [sh, -c, 'printf \"\\\\377\\\\n\"']}", "not UTF-8"),
    ("{command: [sh, -c, 'echo \"{not json\"']}", "not a JSON object"),
    ("{command: [sh, -c, 'echo \"a b\"']}", "is not a tenant id"),
    ("{command: [./no-such-program]}", "cannot be run"),
    ("{file: missing.txt}", "missing.txt"),
    ("{list: [a], file: t.txt}", "exactly one of list, file or command"),
], ids=["empty", "twice", "dot", "command-fails", "binary", "bad-json", "garbage",
        "no-program", "no-file", "two-sources"])
def test_bad_tenants_are_refused_before_anything_starts(tenants: Project, given: str,
                                                        says: str) -> None:
    tenants.write("flamingock.yaml", workflow(given))
    result = ok(tenants.cli("rollout", "--reason", "release 7"), 2)
    assert says in result.stderr
    assert tenants.effects() == []
    assert not (tenants.path / ".flamingock" / "shop._rollouts").exists()


def test_tenants_from_a_command_and_from_a_file(tenants: Project) -> None:
    tenants.write("list-tenants",
                  "#!/bin/sh\necho a1\necho '{\"id\": \"a2\", \"region\": \"ap\"}'\n")
    (tenants.path / "list-tenants").chmod(0o755)
    tenants.write("flamingock.yaml", workflow("{command: ./list-tenants, defaults: {region: eu}}"))
    ok(tenants.cli("rollout", "--reason", "r1", "--canary", "1"))
    assert tenants.effects() == ["apply a1 eu https://flags.eu.example",
                                 "apply a2 ap https://flags.ap.example"]
    tenants.write("tenants.txt", "# customers\nb1\n\nb2\n")
    tenants.write("flamingock.yaml", workflow("{file: tenants.txt, defaults: {region: sa}}"))
    ok(tenants.cli("run", "--tenant", "b2"))
    assert tenants.effects()[-1] == "apply b2 sa https://flags.sa.example"


def test_an_unknown_tenant_is_refused_with_the_close_ones(tenants: Project) -> None:
    result = ok(tenants.cli("status", "--tenant", "t1x"), 2)
    assert "unknown tenant 't1x'" in result.stderr
    assert "Did you mean t1" in result.stderr
    assert not (tenants.path / ".flamingock" / "shop.t1x").exists()
    result = ok(tenants.cli("rollout", "--reason", "release 7", "--canary", "t1,nope"), 2)
    assert "nope is not among the 8 tenant(s)" in result.stderr
    assert not (tenants.path / ".flamingock" / "shop._rollouts").exists()


@pytest.mark.parametrize("budget", ["two", "2.5", "101%", "-1", "%"])
def test_a_budget_that_does_not_parse_starts_nothing(tenants: Project, budget: str) -> None:
    result = ok(tenants.cli("rollout", "--reason", "release 7", "--max-failures", budget), 2)
    assert "--max-failures" in result.stderr
    assert "does not parse" in result.stderr
    assert tenants.effects() == []
    assert not (tenants.path / ".flamingock" / "shop._rollouts").exists()


# Rollouts ------------------------------------------------------------------------------------

def test_a_rollout_applies_every_tenant_once_in_waves(tenants: Project) -> None:
    result = ok(tenants.cli("rollout", "--reason", "release 7", "--canary", "t2,t5",
                            "--wave", "50%"))
    assert "canary t2, t5" in result.stderr
    assert applied(tenants) == Counter(dict.fromkeys(TENANTS, 1))
    assert [line.split()[1] for line in tenants.effects()][:2] == ["t2", "t5"]
    found = rollout_json(tenants)
    assert found["status"] == "FINISHED"
    assert found["result"] == "SUCCEEDED"
    assert [w["tenants"] for w in found["waves"]] == [  # type: ignore[index]
        ["t2", "t5"], ["t1", "t3", "t4", "t6"], ["t7", "t8"]]
    assert found["started_by"].startswith("e2e-user@")  # type: ignore[union-attr]
    assert found["reason"] == "release 7"
    ok(tenants.cli("verify", "--namespace", "shop._rollouts"))
    ok(tenants.cli("rollout", "--reason", "again"))  # a new rollout: every tenant up to date
    assert applied(tenants) == Counter(dict.fromkeys(TENANTS, 1))


def test_a_failing_canary_stops_the_rollout_before_wave_one(tenants: Project) -> None:
    tenants.flag("fail-t1")
    result = ok(tenants.cli("rollout", "--reason", "release 7", "--wave", "3"), 8)
    assert "STOPPED before wave 1" in result.stderr
    assert tenants.effects() == ["rollback t1"]  # compensated within itself, nothing else ran
    found = rollout_json(tenants)
    assert found["status"] == "STOPPED"
    assert found["counts"] == {"ROLLED_BACK": 1, "PENDING": 7}
    assert found["failed"][0]["tenant"] == "t1"  # type: ignore[index]
    assert "t1 boom" in found["failed"][0]["error"]  # type: ignore[index]
    text = ok(tenants.cli("rollout", "status")).stdout
    assert "FAILED t1 (wave 0): ROLLED_BACK" in text
    assert "EXCEEDED" in text
    # another rollout waits for a decision about this one
    result = ok(tenants.cli("rollout", "--reason", "again"), 7)
    assert "rollout resume" in result.stderr


def test_a_failed_tenant_is_compensated_alone_and_counted_against_the_budget(
        tenants: Project) -> None:
    tenants.flag("fail-t4")
    ok(tenants.cli("rollout", "--reason", "release 7", "--canary", "2", "--wave", "3",
                   "--max-failures", "1"))
    assert applied(tenants) == Counter({t: 1 for t in TENANTS if t != "t4"})
    assert tenants.effects().count("rollback t4") == 1
    assert [e for e in tenants.effects() if e.startswith("rollback")] == ["rollback t4"]
    found = rollout_json(tenants)
    assert found["result"] == "PARTIAL"
    assert found["waves"][1]["failures"] == 1  # type: ignore[index]
    assert not found["waves"][1]["exceeded"]  # type: ignore[index]
    status = json.loads(ok(tenants.cli("status", "--tenant", "t4", "--json")).stdout)
    assert [u["status"] for u in status["rows"]] == ["ROLLED_BACK"]


def test_a_stopped_rollout_resumes_past_its_budget_on_a_decision(tenants: Project) -> None:
    tenants.flag("fail-t3")
    ok(tenants.cli("rollout", "--reason", "release 7", "--canary", "2", "--wave", "3"), 8)
    rollout_id = rollout_json(tenants)["rollout_id"]
    assert applied(tenants) == Counter({"t1": 1, "t2": 1, "t4": 1, "t5": 1})
    tenants.unflag("fail-t3")
    ok(tenants.cli("rollout", "resume", str(rollout_id), "--reason", "t3 is known, JIRA-9"))
    # t3 has a result: it is not run again; t6..t8 are
    assert applied(tenants) == Counter({t: 1 for t in TENANTS if t != "t3"})
    found = rollout_json(tenants)
    assert found["result"] == "PARTIAL"
    assert found["resumed"] == [{"by": found["resumed"][0]["by"],  # type: ignore[index]
                                 "reason": "t3 is known, JIRA-9", "past_budget": True}]


def test_a_killed_coordinator_resumes_without_re_running_a_tenant(tenants: Project) -> None:
    with coordinator_held_at(tenants, "t5", before="t4") as coordinator:
        os.kill(coordinator.pid, signal.SIGKILL)
        coordinator.communicate(timeout=10)
    assert applied(tenants) == Counter({"t1": 1, "t2": 1, "t3": 1, "t4": 1})
    tenants.flag("release-t5")
    started = time.monotonic()
    result = ok(tenants.cli("rollout", "--reason", "the coordinator's host died"), 8)
    took = time.monotonic() - started
    # t5 died in doubt (manual-intervention): it is blocked, counted against the budget
    assert "resumed; 4 of 8 tenant(s) have a result and are not run again" in result.stderr
    assert applied(tenants) == Counter({"t1": 1, "t2": 1, "t3": 1, "t4": 1})
    found = rollout_json(tenants)
    assert found["failed"][0]["tenant"] == "t5"  # type: ignore[index]
    assert found["failed"][0]["result"] == "BLOCKED"  # type: ignore[index]
    assert took < 15, took


def test_a_coordinator_resumes_a_tenant_that_finished_after_it_died(tenants: Project) -> None:
    tenants.write("changes/units.py", ALWAYS_RETRY)
    with coordinator_held_at(tenants, "t3", before="t2") as coordinator:
        os.kill(coordinator.pid, signal.SIGKILL)
        coordinator.communicate(timeout=10)
    tenants.flag("release-t3")
    ok(tenants.cli("rollout", "--reason", "restarted"))
    # t3 was in doubt: always-retry runs it again (once); every other tenant ran once
    assert applied(tenants) == Counter(dict.fromkeys(TENANTS, 1))
    assert rollout_json(tenants)["result"] == "SUCCEEDED"


def test_two_coordinators_one_proceeds_the_other_says_who_holds_it(tenants: Project) -> None:
    tenants.flag("hold-t1")
    first = tenants.spawn("rollout", "--reason", "first")
    try:
        deadline = time.monotonic() + 30
        while not (tenants.path / ".flamingock" / "shop.t1" / "audit.log").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = ok(tenants.cli("rollout", "--reason", "second"), 3)
        assert "held" in second.stderr
        assert f":{first.pid}:" in second.stderr  # the holder: host:pid:run
        tenants.flag("release-t1")
        _, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert applied(tenants) == Counter(dict.fromkeys(TENANTS, 1))


def test_a_rollout_in_json(tenants: Project) -> None:
    result = json.loads(ok(tenants.cli("rollout", "--reason", "release 7", "--json")).stdout)
    assert result["result"] == "SUCCEEDED"
    assert result["counts"] == {"SUCCEEDED": 8}


def test_the_rollout_command_is_refused_for_a_workflow_without_tenants(project: Project) -> None:
    result = ok(project.cli("rollout", "--reason", "release 7"), 2)
    assert "has no tenants" in result.stderr


def test_a_rollout_and_each_tenant_are_projected_into_the_store(tenants: Project) -> None:
    tenants.flag("fail-t3")
    ok(tenants.cli("rollout", "--reason", "release 7", "--canary", "2", "--max-failures", "1"))
    rollout_id = str(rollout_json(tenants)["rollout_id"])
    ok(tenants.cli("project", "--once", "--namespace", "shop._rollouts"))
    ok(tenants.cli("project", "--once", "--tenant", "t3"))

    from flamingock_es.projections import ProjectionReader
    from flamingock_es.projections.stores.sqlite import SqliteProjectionStore

    store = SqliteProjectionStore(str(tenants.path / ".flamingock" / "projections.db"))
    with ProjectionReader(store, "shop._rollouts") as reader:
        doc = reader.rollout(rollout_id)
    assert doc is not None
    assert doc["type"] == "rollout"
    assert doc["result"] == "PARTIAL"
    assert doc["tenants"]["t3"]["result"] == "ROLLED_BACK"
    assert doc["tenants"]["t1"]["result"] == "SUCCEEDED"
    assert [w["counts"] for w in doc["waves"]] == [{"SUCCEEDED": 2},
                                                  {"SUCCEEDED": 5, "ROLLED_BACK": 1}]
    with ProjectionReader(SqliteProjectionStore(
            str(tenants.path / ".flamingock" / "projections.db")), "shop.t3") as reader:
        unit = reader.unit("u1")
    assert unit is not None
    assert unit["status"] == "ROLLED_BACK"


def test_the_compliance_report_of_a_rollout_is_verified_and_names_every_outcome(
        tenants: Project) -> None:
    tenants.flag("fail-t2")
    ok(tenants.cli("rollout", "--reason", "release 7 (CHG-77)", "--max-failures", "1"))
    report = json.loads(ok(tenants.cli("replay", "--namespace", "shop._rollouts",
                                       "--format", "json")).stdout)
    assert report["verified"] is True
    (rollout,) = report["rollouts"]
    assert rollout["reason"] == "release 7 (CHG-77)"
    assert rollout["started_by"].startswith("e2e-user@")
    assert sorted(rollout["tenants"]) == sorted(TENANTS)
    assert rollout["tenants"]["t2"]["result"] == "ROLLED_BACK"
    assert rollout["tenants"]["t2"]["error"]["message"].startswith("unit 'u1' failed")
    assert [w["wave"] for w in rollout["waves"]] == [0, 1]



def test_a_tenant_whose_lock_is_lost_mid_run_stops_the_rollout_to_be_resumed(
        tenants: Project) -> None:
    # The lock file replaced under t5's run (an operator's clean-up): its runner stops before
    # recording anything more. That is not t5's failure: the rollout stops unfinished, with
    # no result for t5, and a rerun resumes it (its unit in doubt, retried as it says).
    tenants.write("changes/units.py", ALWAYS_RETRY)
    with coordinator_held_at(tenants, "t5", before="t4") as coordinator:
        (lock,) = tenants.path.glob(".flamingock/*t5/lock")
        lock.unlink()
        tenants.flag("release-t5")
        _, err = coordinator.communicate(timeout=30)
    assert coordinator.returncode == 3, err
    assert "t5.lock was released or its file replaced" in err.replace("/", ".")
    assert "Unit(s) u1 had started, and no outcome could be recorded" in err
    found = rollout_json(tenants)
    assert (found["status"], found["failed"]) == ("RUNNING", [])
    assert "t5" not in found["tenants"]  # type: ignore[operator]

    resumed = ok(tenants.cli("rollout", "--reason", "the lock file was cleaned up"))
    assert "resumed; 4 of 8 tenant(s) have a result and are not run again" in resumed.stderr
    assert applied(tenants) == Counter({**dict.fromkeys(TENANTS, 1), "t5": 2})
    assert rollout_json(tenants)["result"] == "SUCCEEDED"
