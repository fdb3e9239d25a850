"""Real runner processes competing on the real broker: exactly once, a crowd, a crash, and a
broker restart in the middle of a run.

Every test uses a fresh namespace. Units append one line per step to ``effects.txt``
(``start ID PID``, then ``apply ID PID``), so how often a side effect happened is counted,
not inferred from the audit log (see ``runner_support.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .runner_support import RunnerProject, ok, read_audit, unit_id

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services"

CONTENTION_RUNNERS = 4
CONTENTION_ROUNDS = int(os.environ.get("FLAMINGOCK_IT_CONTENTION_ROUNDS", "50"))
"""Each round pends one unit and starts all four runners at once: one applies it, the three
others queue for the lock one after another, so a round costs about four lock sessions
(about 2.3 s here). CI runs 50 rounds, 200 real contentions; the soak is
``FLAMINGOCK_IT_CONTENTION_ROUNDS=1000 scripts/test -k contention`` (about 40 minutes)."""
CROWD = 20
MARK = 'flamingock-es mark u0002 --as applied --reason "..." --seen '


@pytest.fixture
def bus(kafka_bootstrap: str) -> str:
    return f"kafka://{kafka_bootstrap}"


@pytest.fixture
def namespace() -> str:
    return f"runners-{uuid.uuid4().hex[:12]}"


def _project(tmp_path: Path, bus: str, namespace: str, **options: object) -> RunnerProject:
    return RunnerProject(tmp_path / "proj", bus, namespace, **options)  # type: ignore[arg-type]


# 1. Exactly once under contention ------------------------------------------------------------


@pytest.fixture
def workers(tmp_path: Path, bus: str, namespace: str) -> Iterator[list[subprocess.Popen[str]]]:
    with running_workers(_project(tmp_path, bus, namespace), CONTENTION_RUNNERS) as procs:
        yield procs


@contextmanager
def running_workers(project: RunnerProject, count: int) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` runner workers of ``project`` (``runner_support.py``), ready for rounds."""
    procs = [project.worker() for _ in range(count)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line == "ready", f"worker did not start: {line!r} {proc.stderr}"
        yield procs
    finally:
        for proc in procs:
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def test_exactly_once_under_contention(
    tmp_path: Path, bus: str, namespace: str, workers: list[subprocess.Popen[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = RunnerProject(tmp_path / "proj", bus, namespace)  # the workers' project
    report = contend(project, workers, CONTENTION_ROUNDS)
    with capsys.disabled():
        print(f"\n[contention] {report}")


def contend(project: RunnerProject, workers: list[subprocess.Popen[str]], rounds: int) -> str:
    """``rounds`` rounds: each pends one unit and starts every worker at once. Exactly one
    run applies it, the others find nothing to do; every side effect happens once, in order,
    and the audit log says so. What happened, for the test's report."""
    answers: list[dict[str, object]] = []
    started = time.monotonic()
    for n in range(1, rounds + 1):
        uid = project.add_unit(n)
        for proc in workers:  # all at once
            assert proc.stdin is not None
            proc.stdin.write(f"go {n}\n")
            proc.stdin.flush()
        round_answers = []
        for proc in workers:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, f"worker {proc.pid} died: {proc.stderr.read() if proc.stderr else ''}"
            round_answers.append(json.loads(line))
        answers += round_answers

        errors = [a for a in round_answers if "error" in a]
        assert not errors, f"round {n}: {errors}"
        appliers = [a for a in round_answers if a["applied"]]
        assert [a["applied"] for a in appliers] == [[uid]], f"round {n}: {round_answers}"
        assert all(a["outcome"] is None and a["run_id"] is None
                   for a in round_answers if not a["applied"]), round_answers
        assert project.applied_effects().count(uid) == 1, f"round {n}: {project.effects()}"
        assert project.started_effects().count(uid) == 1, f"round {n}: {project.effects()}"
    elapsed = time.monotonic() - started

    uids = [unit_id(n) for n in range(1, rounds + 1)]
    assert project.applied_effects() == uids  # each once, in order, nothing else ran
    assert project.started_effects() == uids

    audit = read_audit(project.bus, project.namespace)
    audit.assert_intact()
    succeeded = Counter(e.payload.unit_id for e in audit.kinds("ChangeSucceeded"))  # type: ignore[attr-defined]
    assert succeeded == dict.fromkeys(uids, 1)
    assert len(audit.kinds("ChangeStarted")) == rounds
    assert audit.report.state.counts() == {"APPLIED": rounds}
    # only the runs that applied something wrote: one RunStarted/RunFinished per round
    assert len(audit.kinds("RunStarted")) == len(audit.kinds("RunFinished")) == rounds
    ok(project.cli("verify"))

    applied_runs = sum(1 for a in answers if a["applied"])
    waited_then_nothing = sum(1 for a in answers if not a["applied"] and a["waited"])
    nothing_at_once = sum(1 for a in answers if not a["applied"] and not a["waited"])
    winners = Counter(a["pid"] for a in answers if a["applied"])
    return (f"{rounds} rounds x {len(workers)} runner processes"
            f" = {len(answers)} runs in {elapsed:.1f}s ({elapsed / rounds:.2f}s per "
            f"round); units {len(uids)}, side effects {len(project.applied_effects())} "
            f"(each exactly once); runs that applied {applied_runs}, found nothing to do "
            f"{len(answers) - applied_runs} ({waited_then_nothing} after waiting for the lock, "
            f"{nothing_at_once} without waiting); wins per process {sorted(winners.values())}; "
            f"audit events {len(audit.events)}, chain intact")


# 2. A crowd ----------------------------------------------------------------------------------


def test_a_crowd_of_runners_applies_once_and_the_rest_find_nothing(
    tmp_path: Path, bus: str, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path, bus, namespace, lock_timeout=180)
    uids = [project.add_unit(n) for n in (1, 2, 3)]

    started = time.monotonic()
    procs = [project.spawn("run") for _ in range(CROWD)]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    wall = time.monotonic() - started

    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
        for noise in ("error", "Traceback", "WARNING", "LOCK LOST", "FAILED"):
            assert noise not in err, err
    winners = [err for _, err in outputs if "SUCCEEDED; applied 3" in err]
    assert len(winners) == 1, [err for _, err in outputs]
    losers = [err for _, err in outputs if "SUCCEEDED" not in err]
    assert all("up to date: 3 unit(s), nothing to apply" in err for err in losers), losers
    after_wait = sum("another runner applied them while this one waited" in e for e in losers)

    assert project.applied_effects() == uids
    assert project.started_effects() == uids
    audit = read_audit(bus, namespace)
    audit.assert_intact()
    assert len(audit.kinds("RunStarted")) == len(audit.kinds("RunFinished")) == 1
    assert len(audit.kinds("LockAcquired")) == len(audit.kinds("LockReleased")) == 1
    assert [e.kind for e in audit.events] == [
        "RunStarted", "LockAcquired",
        *(k for _ in uids for k in ("ChangeStarted", "ChangeSucceeded")),
        "RunFinished", "LockReleased"]
    with capsys.disabled():
        print(f"\n[crowd] {CROWD} runner processes started at once: 1 applied {len(uids)} units, "
              f"{len(losers)} found nothing to do ({after_wait} after waiting for the lock); "
              f"wall time {wall:.1f}s; audit events {len(audit.events)}")


# 3. A crash ----------------------------------------------------------------------------------


def _kill_inside_u0002(project: RunnerProject) -> float:
    """Run, and SIGKILL the runner while u0002's apply is in progress; the kill's time."""
    project.flag("hold-u0002")
    holder = project.spawn("run")
    try:
        project.wait_for_effect("start u0002", timeout=60)
    finally:
        holder.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        holder.communicate(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    assert project.applied_effects() == ["u0001"]
    assert project.started_effects() == ["u0001", "u0002"]
    return killed


@pytest.mark.parametrize("recovery", ["manual-intervention", "always-retry"])
def test_a_holder_killed_inside_a_unit_leaves_it_in_doubt(
    tmp_path: Path, bus: str, namespace: str, recovery: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = _project(tmp_path, bus, namespace, recovery=recovery)
    for n in (1, 2, 3):
        project.add_unit(n)
    killed = _kill_inside_u0002(project)
    (project.path / "hold-u0002").unlink()  # a retry must not park again

    successor = project.cli("run")
    takeover = time.monotonic() - killed

    audit = read_audit(bus, namespace)
    audit.assert_intact()
    if recovery == "manual-intervention":
        ok(successor, 7)
        assert ("unit 'u0002' is in doubt: started, no outcome recorded (the process died, or "
                "was cut off") in successor.stderr
        assert MARK in successor.stderr
        assert project.applied_effects() == ["u0001"]  # nothing ran again
        assert project.started_effects() == ["u0001", "u0002"]
        status = ok(project.cli("status"), 7)
        (row,) = [line for line in status.stdout.splitlines() if "main/u0002" in line]
        assert "STARTED" in row
        assert MARK in status.stdout
        # the successor took the lock to decide, and wrote nothing
        assert len(audit.kinds("RunStarted")) == 1
        assert audit.report.state.counts() == {"APPLIED": 1, "STARTED": 1}
    else:
        ok(successor)
        assert "main/u0002 (retry (in doubt: started, no outcome recorded" in successor.stderr
        assert project.applied_effects() == ["u0001", "u0002", "u0003"]
        assert project.started_effects() == ["u0001", "u0002", "u0002", "u0003"]
        assert [e.payload.attempt for e in audit.unit_events("u0002", "ChangeStarted")] \
            == [1, 2]  # type: ignore[attr-defined]
        assert len(audit.unit_events("u0002", "ChangeSucceeded")) == 1
        assert audit.report.state.counts() == {"APPLIED": 3}
    ok(project.cli("verify"))
    with capsys.disabled():
        print(f"\n[crash/{recovery}] kill -9 inside u0002 -> successor done (process start-up, "
              f"lock takeover after the session timeout, decision) in {takeover:.1f}s; exit "
              f"{successor.returncode}")


# 4. A broker restart mid-run -----------------------------------------------------------------


def _services(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SERVICES), *args], cwd=REPO, text=True, capture_output=True,
                          timeout=timeout, check=False)


def _wait_for_broker(bootstrap: str, timeout: float = 120.0) -> None:
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    while True:
        try:
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


RESUME_BOUND = 45.0
"""Seconds a runner gets, once the broker is back and its unit done, to finish or fail."""


def test_a_broker_restart_mid_run_loses_and_duplicates_nothing(
    tmp_path: Path, kafka_bootstrap: str, bus: str, namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = _project(tmp_path, bus, namespace)
    for n in (1, 2, 3):
        project.add_unit(n)
    project.flag("hold-u0002")
    runner = project.spawn("run")
    try:
        try:
            project.wait_for_effect("start u0002", timeout=60)
            down = time.monotonic()
            stopped = _services("stop", "kafka")
            assert stopped.returncode == 0, stopped.stderr
        finally:  # the broker is back whatever happened
            starting = time.monotonic()
            started = _services("start", "kafka")
            answering = time.monotonic()
            _wait_for_broker(kafka_bootstrap)
        back = time.monotonic()
        restart = back - down
        assert started.returncode == 0, started.stderr
        project.flag("release-u0002")
        released = time.monotonic()
        hung = False
        try:
            _, err = runner.communicate(timeout=RESUME_BOUND)
        except subprocess.TimeoutExpired:
            hung = True
        finish = time.monotonic() - released
    finally:
        if runner.returncode is None:
            runner.kill()
            _, err = runner.communicate(timeout=30)
    with capsys.disabled():
        print(f"\n[broker restart] stop+start {restart:.1f}s; after the release the runner "
              + (f"was still stuck after {RESUME_BOUND:g}s (killed)" if hung
                 else f"exited {runner.returncode} in {finish:.1f}s"))
        if restart > 30:  # ~120 s and ~35 s on two CI dry runs, cause unknown: say where
            print(f"[broker restart] stop {starting - down:.1f}s, start "
                  f"{answering - starting:.1f}s, broker answered {back - answering:.1f}s later; "
                  f"scripts/services start said:\n{started.stderr}")

    # Nothing lost, nothing duplicated, whatever the runner did: what was durable before the
    # restart is there once, the chain holds, no unit has two outcomes.
    audit = read_audit(bus, namespace)
    audit.assert_intact()
    kinds = [(e.kind, getattr(e.payload, "unit_id", None)) for e in audit.events]
    assert kinds[:5] == [("RunStarted", None), ("LockAcquired", None),
                         ("ChangeStarted", "u0001"), ("ChangeSucceeded", "u0001"),
                         ("ChangeStarted", "u0002")], kinds
    assert project.started_effects().count("u0002") == 1
    assert not hung, (f"the runner neither resumed nor failed within {RESUME_BOUND:g}s of the "
                      f"broker's return; stderr:\n{err[-3000:]}")

    if runner.returncode == 0:  # resumed: the appends were retried once the broker was back
        assert project.applied_effects() == ["u0001", "u0002", "u0003"]
        assert kinds[5:] == [("ChangeSucceeded", "u0002"), ("ChangeStarted", "u0003"),
                             ("ChangeSucceeded", "u0003"), ("RunFinished", None),
                             ("LockReleased", None)], kinds
        assert audit.report.state.counts() == {"APPLIED": 3}
        ok(project.cli("run"))
    else:  # failed cleanly: a clear error, u0002 in doubt, nothing after it ran
        assert runner.returncode in (3, 5), err
        assert "flamingock-es: error:" in err, err
        assert "Traceback" not in err, err
        assert project.applied_effects() == ["u0001", "u0002"]
        assert audit.report.state.units["u0002"].status.value == "STARTED"
        rerun = ok(project.cli("run"), 7)  # manual-intervention: a person decides
        assert MARK in rerun.stderr
    ok(project.cli("verify"))
