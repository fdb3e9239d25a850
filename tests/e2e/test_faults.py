"""Ordinary faults on the embedded log, produced for real: a filesystem that fills up, an
operator following `status`'s advice during a healthy run, a template typo hidden beside a
variable, signals, a garbage record, a read-only disk. Every side effect is counted: each
change runs exactly once, or is in doubt and waits for a person; nothing runs twice.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from flamingock_es.adapters.local.frames import encode

from .conftest import Project, ok

pytestmark = pytest.mark.e2e


def on_disk(project: Project, disk: Path) -> Path:
    """Put the project's log on ``disk``; the units fill that disk when told to."""
    project.write("flamingock.yaml", f"""\
        namespace: shop
        bus: local:{disk}/bus
        stages:
          - name: main
            units: [changes]
    """)
    project.write("disk", str(disk))
    return disk / "bus" / "shop" / "audit.log"


def free_disk(disk: Path) -> None:
    (disk / "filler").unlink()


# 1. A full disk ----------------------------------------------------------------------------

def test_a_change_started_that_does_not_fit_on_disk_never_runs(
        project: Project, small_disk: Path) -> None:
    log = on_disk(project, small_disk)
    project.env["PAD_U2"] = "30000"  # u2's ChangeStarted needs several pages
    project.flag("fill-disk-u1")  # u1's side effect leaves one page free

    failed = ok(project.cli("run"), 5)

    assert "could not make" in failed.stderr
    assert "No space left on device" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert project.effects() == ["start u1", "apply u1"]  # u2's side effect never started
    project.unflag("fill-disk-u1")
    free_disk(small_disk)
    assert "unfinished append" not in ok(project.cli("verify")).stderr  # cut back, not torn
    ok(project.cli("run"))
    assert project.effects() == ["start u1", "apply u1", "start u2", "apply u2",
                                 "start u3", "apply u3"]
    assert log.exists()


def test_an_outcome_that_does_not_fit_leaves_the_change_in_doubt_never_pending(
        project: Project, small_disk: Path) -> None:
    on_disk(project, small_disk)
    project.flag("fill-disk-u1", "fail-big-u1")  # its ChangeFailed needs several pages

    ok(project.cli("run"), 5)

    assert project.effects() == ["start u1"]
    project.unflag("fill-disk-u1", "fail-big-u1")
    free_disk(small_disk)
    status = ok(project.cli("status"), 7)
    (row,) = [line for line in status.stdout.splitlines() if "main/u1" in line]
    assert "STARTED" in row
    assert "in doubt" in row
    assert "flamingock-es mark u1 --as applied" in status.stdout
    ok(project.cli("run"), 7)  # refused: a person decides, nothing runs twice
    assert project.effects() == ["start u1"]
    assert ok(project.cli("verify")).stdout.rstrip().endswith("chain intact")


# 2. Following status's advice while a healthy run is at work ----------------------------

def test_status_tells_a_running_change_from_a_dead_one_and_a_late_mark_is_refused(
        project: Project) -> None:
    project.flag("hold-u2")
    runner = project.spawn("run")
    try:
        project.wait_for_effect("start u2")
        status = ok(project.cli("status"))  # nothing needs a person: u2 is running
        (row,) = [line for line in status.stdout.splitlines() if "main/u2" in line]
        assert "running now in run" in row
        assert "mark" not in status.stdout
        seen = json.loads(ok(project.cli("history", "--json", "--unit", "u2")).stdout)
        marker = project.spawn("mark", "u2", "--as", "rolled-back", "--reason", "looked dead")
        time.sleep(4.0)  # the mark reads the log, then waits for the lock (a slow start-up)
        project.flag("release-u2")
        runner.communicate(timeout=60)
        _, err = marker.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0
    assert marker.returncode == 7, err
    assert "changed since it was looked at" in err
    assert "it is now APPLIED" in err
    assert seen[-1]["payload"]["type"] == "ChangeStarted"
    ok(project.cli("run"))
    assert project.effects().count("apply u2") == 1  # not re-applied
    marks = [e for e in json.loads(project.cli("history", "--json").stdout)
             if e["payload"]["type"] == "ManualMark"]
    assert marks == []


def test_the_projection_does_not_flag_a_change_that_is_running(project: Project) -> None:
    project.flag("hold-u2")
    runner = project.spawn("run")
    try:
        project.wait_for_effect("start u2")
        ok(project.cli("project", "--once"))
        running = json.loads(ok(project.cli("state", "unit", "u2", "--json")).stdout)
        summary = json.loads(ok(project.cli("state", "summary", "--json")).stdout)
        project.flag("release-u2")
        runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert running["status"] == "STARTED"
    assert running["running"] is True
    assert running["needs_attention"] is False  # a dashboard must not alert on a deployment
    assert summary["attention"] == []


def test_a_mark_names_the_history_it_saw(project: Project) -> None:
    project.flag("fail-u2", "fail-rollback-u2")  # ROLLBACK_FAILED: a person decides
    ok(project.cli("run"), 8)
    status = ok(project.cli("status"), 7)
    command = next(line.strip() for line in status.stdout.splitlines()
                   if "--as rolled-back" in line and "u2" in line)
    seen = int(command.rsplit("--seen ", 1)[1])

    stale = ok(project.cli("mark", "u2", "--as", "applied", "--reason", "x", "--seen",
                           str(seen - 1)), 7)

    assert "changed since it was looked at" in stale.stderr
    ok(project.cli("mark", "u2", "--as", "applied", "--reason", "checked", "--seen",
                   str(seen)))


# 3. A typo beside a variable, and a step that fails before it starts ---------------------

def test_a_template_typo_beside_a_variable_stops_everything_before_the_lock(
        project: Project) -> None:
    project.write("changes/flag.yaml", """\
        id: u4
        order: 4
        author: ana
        template: http-request
        apply: {method: PUT, url: "${FLAGS_URL}/flags/x", jsn: {enabled: true}}
        rollback: {method: PUT, url: "${FLAGS_URL}/flags/x", json: {enabled: false}}
    """)
    for command in ("plan", "run"):
        result = ok(project.cli(command), 2)
        assert "flag.yaml:5: the apply block does not fit template 'http-request'" in \
            result.stderr
        assert "jsn" in result.stderr
    assert project.effects() == []
    assert not project.log.exists()


def test_a_step_that_fails_before_it_starts_is_not_compensated(project: Project) -> None:
    project.flag("not-started-u2")

    result = ok(project.cli("run"), 8)

    assert project.effects() == ["start u1", "apply u1", "rollback u1"]  # no "rollback u2"
    assert "precondition does not hold" in result.stderr
    failed = [e["payload"] for e in json.loads(project.cli("history", "--json").stdout)
              if e["payload"]["type"] == "ChangeFailed"]
    assert [(f["unit_id"], f["not_started"]) for f in failed] == [("u2", True)]
    status = ok(project.cli("status"))  # nothing to decide: it never started
    assert "failed before it started" in status.stdout
    project.unflag("not-started-u2")
    ok(project.cli("run"))
    assert project.effects().count("apply u2") == 1


# 4. Signals --------------------------------------------------------------------------------

def test_sigterm_lets_the_change_finish_then_records_the_rest_and_releases(
        project: Project) -> None:
    project.flag("hold-u2")
    runner = project.spawn("run")
    project.wait_for_effect("start u2")
    runner.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    project.flag("release-u2")  # within the grace period

    _, err = runner.communicate(timeout=60)

    assert runner.returncode == 9, err
    assert project.effects() == ["start u1", "apply u1", "start u2", "apply u2"]
    events = json.loads(project.cli("history", "--json").stdout)
    finished = [e["payload"] for e in events if e["payload"]["type"] == "RunFinished"]
    assert finished[-1]["not_started"] == ["u3"]
    assert finished[-1]["outcome"] == "STOPPED"  # a stop on request, not a failure
    assert finished[-1]["error"]["type"] == "Interrupted"
    assert events[-1]["payload"]["type"] == "LockReleased"
    ok(project.cli("run"))
    assert project.effects().count("apply u3") == 1


def test_a_clean_stop_is_its_own_outcome_in_status_the_report_and_the_projection(
        project: Project) -> None:
    project.flag("hold-u2")
    runner = project.spawn("run")
    project.wait_for_effect("start u2")
    runner.send_signal(signal.SIGINT)
    project.flag("release-u2")  # u2 finishes; the run stops before u3

    _, err = runner.communicate(timeout=60)

    assert runner.returncode == 9, err
    assert "STOPPED; applied 2, compensated 0, skipped 0; not started: u3" in err
    status = ok(project.cli("status"))  # nothing needs a person
    assert ": STOPPED: stopped on request (SIGINT) after 2 unit(s); 1 not started; the " \
        "next run applies u3" in status.stdout
    report = json.loads(ok(project.cli("replay", "--format", "json")).stdout)
    assert [r["outcome"] for r in report["runs"]] == ["STOPPED"]
    ok(project.cli("replay", "--format", "html", "-o", "report.html"))
    html = (project.path / "report.html").read_text()
    assert '<span class="badge o-STOPPED">STOPPED</span>' in html  # runs by outcome
    assert "badge o-FAILED" not in html  # not counted as a failed run
    ok(project.cli("project", "--once"))
    (run_id,) = [r["run_id"] for r in report["runs"]]
    run = json.loads(ok(project.cli("state", "run", run_id, "--json")).stdout)
    assert (run["outcome"], run["not_started"]) == ("STOPPED", ["u3"])


@pytest.mark.parametrize(("signals", "code", "why"), [
    ((signal.SIGTERM,), 143, "the grace period of 1s ran out"),
    ((signal.SIGINT, signal.SIGINT), 130, "a second signal (SIGINT) arrived"),
])
def test_a_change_that_cannot_finish_is_recorded_as_interrupted(
        project: Project, signals: tuple[signal.Signals, ...], code: int, why: str) -> None:
    project.write("flamingock.yaml", "namespace: shop\ngrace_period: 1\nstages:\n"
                                     "  - name: main\n    units: [changes]\n")
    project.flag("hold-u2")
    runner = project.spawn("run")
    project.wait_for_effect("start u2")
    for sig in signals:
        runner.send_signal(sig)
        time.sleep(0.3)

    _, err = runner.communicate(timeout=60)

    assert runner.returncode == code, err
    assert "Traceback" not in err
    events = json.loads(project.cli("history", "--json").stdout)
    kinds = [e["payload"]["type"] for e in events]
    assert kinds[-4:] == ["ChangeStarted", "ChangeInterrupted", "RunFinished", "LockReleased"]
    interrupted = events[-3]["payload"]
    assert interrupted["unit_id"] == "u2"
    assert why in interrupted["reason"]
    status = ok(project.cli("status"), 7)
    assert f"interrupted by {interrupted['signal']}: {why}" in status.stdout
    assert "apply u2" not in project.effects()


# 5. A garbage record ------------------------------------------------------------------------

def test_a_garbage_record_stops_every_reader_until_an_operator_quarantines_it(
        project: Project) -> None:
    ok(project.cli("run"))
    garbage_at = project.log.stat().st_size
    with project.log.open("ab") as log:  # any client that can write the file
        log.write(encode([b"\xc3\x01 not an event at all"])[0])
    project.write("changes/more.py", """
        from flamingock_es import change_unit

        @change_unit(id="u4", order=4, author="ana")
        def u4(ctx):
            with open("effects.txt", "a") as f:
                f.write("apply u4\\n")
    """)

    for command in ("run", "status", "plan", "verify", "replay"):
        refused = ok(project.cli(command), 4)
        said = refused.stderr + refused.stdout
        assert f"offset {garbage_at}" in said, command
        assert "Traceback" not in said
    assert f"flamingock-es quarantine --offset {garbage_at}" in \
        ok(project.cli("run"), 4).stderr
    assert "apply u4" not in project.effects()
    project_once = ok(project.cli("project", "--once"), 4)
    assert "stops before" in project_once.stderr
    stale = ok(project.cli("state"), 4)
    assert f"STALE: the projection stopped before offset {garbage_at}" in stale.stderr

    ok(project.cli("quarantine", "--offset", str(garbage_at), "--reason", "test client"))

    ok(project.cli("run"))
    assert project.effects().count("apply u4") == 1
    verify = ok(project.cli("verify"))
    assert f"QUARANTINED offset {garbage_at} by e2e-user@" in verify.stdout
    assert "test client" in verify.stdout
    assert verify.stdout.rstrip().endswith("chain intact")
    ok(project.cli("project", "--once"))
    assert "STALE" not in ok(project.cli("state")).stderr
    assert "offset" in ok(project.cli("quarantine", "--offset", "0", "--reason", "x"), 2).stderr


# Around them --------------------------------------------------------------------------------

def test_read_only_commands_never_import_unit_code(project: Project) -> None:
    project.write("helpers.py", "VALUE = 1\n")
    project.write("changes/uses_helper.py", """
        from helpers import VALUE
        from flamingock_es import change_unit

        @change_unit(id="u4", order=4, author="ana")
        def u4(ctx):
            assert VALUE == 1
    """)
    ok(project.cli("run"))
    project.write("changes/broken.py", "this is not python\n")

    for command in ("history", "verify", "replay", "checkpoint"):
        result = project.cli(command)
        assert result.returncode in (0, 2), (command, result.stderr)
        assert "broken.py" not in result.stderr, command
        assert "No module named" not in result.stderr, command
    ok(project.cli("history"))
    ok(project.cli("verify"))


def test_a_namespace_that_does_not_exist_is_an_error_and_is_not_created(
        project: Project) -> None:
    ok(project.cli("run"))
    for command in ("verify", "history", "replay"):
        result = ok(project.cli(command, "--namespace", "typo"), 2)
        assert "namespace 'typo' has no audit log" in result.stderr
    assert not (project.path / ".flamingock" / "typo").exists()


def test_a_read_only_disk_is_exit_5_with_a_message(project: Project,
                                                   read_only_disk: Path) -> None:
    project.write("flamingock.yaml", f"namespace: shop\nbus: local:{read_only_disk}/bus\n"
                                     "stages:\n  - name: main\n    units: [changes]\n")

    result = ok(project.cli("run"), 5)

    assert "Read-only file system" in result.stderr
    assert "Traceback" not in result.stderr
    assert project.effects() == []
