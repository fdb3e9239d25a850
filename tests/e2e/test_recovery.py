"""Crashes, manual marks, drift, undo and readiness: what an operator does after a bad day."""

from __future__ import annotations

import json
import signal

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e


def killed_in_apply_of_u2(project: Project) -> None:
    """Run, and SIGKILL the runner while u2's apply is in progress."""
    project.flag("hold-u2")
    runner = project.spawn("run")
    try:
        project.wait_for_effect("start u2")
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=30)
    assert runner.returncode == -signal.SIGKILL
    project.unflag("hold-u2")
    assert project.effects() == ["start u1", "apply u1", "start u2"]


def test_a_killed_run_leaves_the_unit_in_doubt_and_manual_intervention_refuses(
        project: Project) -> None:
    killed_in_apply_of_u2(project)
    seen = project.frames()[-1][0]  # the offset of u2's ChangeStarted, its last event
    mark = f'flamingock-es mark u2 --as applied --reason "..." --seen {seen}'
    other = f'flamingock-es mark u2 --as rolled-back --reason "..." --seen {seen}'

    status = ok(project.cli("status"), 7)
    (row,) = [line for line in status.stdout.splitlines() if "main/u2" in line]
    assert "STARTED" in row
    assert "in doubt" in row
    assert mark in status.stdout
    assert other in status.stdout  # one concrete command for each decision, never a template

    refused = ok(project.cli("run"), 7)
    assert ("unit 'u2' is in doubt: started, no outcome recorded (the process died, or was cut "
            "off") in refused.stderr
    assert mark in refused.stderr
    # not ready: wait times out (exit 3) and names the unit and the command that resolves it
    assert ok(project.cli("wait", "--timeout", "0.5", "--poll", "0.1"), 3).stderr.count(mark) == 1
    assert project.effects() == ["start u1", "apply u1", "start u2"]  # nothing ran again

    marked = ok(project.cli("mark", "u2", "--as", "applied", "--reason", "row is in the db"))
    assert "marked u2 as applied" in marked.stdout
    ok(project.cli("run"))

    assert project.effects() == ["start u1", "apply u1", "start u2", "start u3", "apply u3"]
    report = json.loads(ok(project.cli("status", "--json")).stdout)
    assert [r["status"] for r in report["rows"]] == ["APPLIED", "MANUAL_MARKED_AS_APPLIED",
                                                    "APPLIED"]
    marks = [e for e in json.loads(project.cli("history", "--json", "--unit", "u2").stdout)
             if e["payload"]["type"] == "ManualMark"]
    assert marks[0]["payload"]["reason"] == "row is in the db"
    assert marks[0]["payload"]["marked_as"] == "APPLIED"
    assert marks[0]["actor"]["principal"] == "e2e-user"


def test_a_killed_run_is_retried_under_always_retry(project: Project) -> None:
    project.units(recovery="always-retry")
    killed_in_apply_of_u2(project)

    result = ok(project.cli("run"))

    assert "main/u2 (retry (in doubt: started, no outcome recorded" in result.stderr
    assert project.effects() == ["start u1", "apply u1", "start u2",
                                 "start u2", "apply u2", "start u3", "apply u3"]
    events = json.loads(project.cli("history", "--json", "--unit", "u2").stdout)
    assert [e["payload"]["attempt"] for e in events
            if e["payload"]["type"] == "ChangeStarted"] == [1, 2]
    ok(project.cli("verify"))


def test_marking_a_unit_rolled_back_makes_it_pending_again(project: Project) -> None:
    killed_in_apply_of_u2(project)
    ok(project.cli("mark", "u2", "--as", "rolled-back", "--reason", "reverted by hand"))

    ok(project.cli("run"))

    assert project.effects()[3:] == ["start u2", "apply u2", "start u3", "apply u3"]


def test_mark_needs_a_known_unit_and_a_reason(project: Project) -> None:
    assert "neither in workflow" in ok(project.cli("mark", "nope", "--as", "applied",
                                                   "--reason", "x"), 2).stderr
    assert "needs a --reason" in ok(project.cli("mark", "u1", "--as", "applied",
                                                "--reason", " "), 2).stderr


def test_checksum_drift_is_refused_then_accepted(project: Project) -> None:
    ok(project.cli("run"))
    units = project.path / "changes" / "units.py"
    source = units.read_text()
    edited = source.replace("def u1(ctx):\n    _apply(ctx.unit_id)",
                            "def u1(ctx):\n    _apply(ctx.unit_id)  # now also indexes\n")
    assert edited != source
    units.write_text(edited)

    refused = ok(project.cli("run"), 6)

    assert "unit 'u1' changed after it was applied" in refused.stderr
    assert "units.py:" in refused.stderr
    assert "--accept-drift" in refused.stderr
    assert "blocked" in ok(project.cli("plan")).stdout
    accepted = ok(project.cli("run", "--accept-drift"))
    assert "accepted checksum drift of u1" in accepted.stderr
    assert project.effects().count("apply u1") == 1  # accepting drift does not re-apply
    marks = [e["payload"] for e in json.loads(project.cli("history", "--json").stdout)
             if e["payload"]["type"] == "ManualMark"]
    assert len(marks) == 1
    assert marks[0]["unit_id"] == "u1"
    assert marks[0]["reason"].startswith("checksum drift accepted: ")
    assert "up to date" in ok(project.cli("run")).stderr


def test_whitespace_at_line_ends_is_not_drift(project: Project) -> None:
    ok(project.cli("run"))
    units = project.path / "changes" / "units.py"
    units.write_text("\n".join(line + "  " for line in units.read_text().splitlines()) + "\n")
    assert "up to date" in ok(project.cli("run")).stderr


def test_undo_to_a_unit_compensates_the_later_ones_newest_first(project: Project) -> None:
    ok(project.cli("run"))

    ok(project.cli("undo", "--to", "u1"))

    assert project.effects()[-2:] == ["rollback u3", "rollback u2"]
    report = json.loads(ok(project.cli("status", "--json")).stdout)
    assert [r["status"] for r in report["rows"]] == ["APPLIED", "ROLLED_BACK", "ROLLED_BACK"]
    plan = ok(project.cli("plan")).stdout.splitlines()
    assert [line.split()[0] for line in plan] == ["skip", "run", "run"]
    runs = [e["payload"] for e in json.loads(project.cli("history", "--json").stdout)
            if e["payload"]["type"] == "RunStarted"]
    assert runs[-1]["trigger"] == "undo"
    assert runs[-1]["planned"] == ["u3", "u2"]
    assert "nothing to undo after u1" in ok(project.cli("undo", "--to", "u1")).stdout
    assert "no such unit" in ok(project.cli("undo", "--to", "nope"), 2).stderr


def test_wait_returns_when_up_to_date_and_times_out_when_pending(project: Project) -> None:
    pending = project.cli("wait", "--timeout", "0.3", "--poll", "0.1")
    assert pending.returncode != 0
    assert "still not up to date after 0.3s; pending: u1, u2, u3" in pending.stderr

    ok(project.cli("run"))
    assert ok(project.cli("wait", "--timeout", "5")).stdout.strip() == "up to date"


def test_a_log_deleted_or_cut_is_refused_until_the_head_is_forgotten(project: Project) -> None:
    """A namespace whose log was deleted (or cut short) reads as a new one: every unit would
    run a second time. The runner remembers the head it saw, off the log, and refuses."""
    ok(project.cli("run"))
    assert project.effects() == ["start u1", "apply u1", "start u2", "apply u2",
                                 "start u3", "apply u3"]
    heads = project.path / ".flamingock" / "heads"
    [memory] = heads.iterdir()
    assert memory.name.startswith("shop@local")

    frames = project.frames()
    cut = frames[len(frames) // 2][0]
    with project.log.open("r+b") as log:  # cut off the second half, on a frame boundary
        log.truncate(cut)
    assert ok(project.cli("verify")).returncode == 0  # what is left holds together
    cut_off = ok(project.cli("run"), 4)
    assert "no longer holds the event this runner saw" in cut_off.stderr
    assert "the log ends before it" in cut_off.stderr

    project.log.parent.joinpath("snapshot").unlink(missing_ok=True)
    for name in ("audit.log", "lock"):
        project.log.parent.joinpath(name).unlink(missing_ok=True)
    deleted = ok(project.cli("run"), 4)
    assert "the namespace was deleted and created again" in deleted.stderr
    assert f"rm {memory.relative_to(project.path)}" in deleted.stderr
    assert len(project.effects()) == 6  # nothing ran a second time

    memory.unlink()  # the operator decides that starting over is what they want
    ok(project.cli("run"))
    assert len(project.effects()) == 12
