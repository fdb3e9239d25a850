"""Shutdown fits inside the platform's grace: real signals to a real ``flamingock-es run``.

A unit that blocks for an hour (in ``time.sleep``, or with the signals blocked, as C code
that never returns to Python behaves) must not hold the process past the grace period: the
run records what it knows and ends, so the record is written before the platform's SIGKILL.
Each test would hang for an hour if the process waited for the unit; none asserts on time,
and each prints how long the process took from the signal to its exit.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import WORKFLOW, Project, ok

pytestmark = pytest.mark.e2e

UNITS = '''\
import signal
import time
from pathlib import Path

from flamingock_es import change_unit


def _note(line):
    with open("effects.txt", "a") as f:
        f.write(line + "\\n")


def _step(uid):
    _note(f"start {uid}")
    if Path(f"stuck-{uid}").exists():  # as C code that never sees the signal
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        time.sleep(3600)
    if Path(f"sleep-{uid}").exists():
        time.sleep(3600)
    while Path(f"hold-{uid}").exists() and not Path(f"release-{uid}").exists():
        time.sleep(0.02)
    _note(f"apply {uid}")


@change_unit(id="u1", order=1, author="ana")
def u1(ctx):
    _step("u1")


@change_unit(id="u2", order=2, author="ana")
def u2(ctx):
    _step("u2")


@change_unit(id="u3", order=3, author="ana")
def u3(ctx):
    _step("u3")
'''

CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class Blocking(Project):
    """The project, whose runs are killed at the end of the test if still alive: a test that
    fails early must not leave a runner sleeping for an hour."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.spawned: list[subprocess.Popen[str]] = []

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        runner = super().spawn(*args)
        self.spawned.append(runner)
        return runner


@pytest.fixture
def blocking(tmp_path: Path) -> Iterator[Blocking]:
    project = Blocking(tmp_path / "proj")
    project.write("flamingock.yaml", WORKFLOW)
    project.write("changes/units.py", UNITS)
    project.env["FLAMINGOCK_GRACE_PERIOD"] = "2"
    yield project
    for runner in project.spawned:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()


def signal_and_wait(project: Project, runner: subprocess.Popen[str], sig: int,
                    what: str) -> str:
    """Send ``sig`` and wait for the exit (a hang fails the test); print the time it took."""
    sent = time.monotonic()
    runner.send_signal(sig)
    try:
        _, err = runner.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        runner.kill()
        runner.communicate()
        raise AssertionError(f"{what}: still running 90 s after {signal.Signals(sig).name}") \
            from None
    print(f"\n[shutdown] {what}, {signal.Signals(sig).name}: exit {runner.returncode} "
          f"{time.monotonic() - sent:.2f}s after the signal "
          f"(grace {project.env['FLAMINGOCK_GRACE_PERIOD']}s)")
    return err


def events(project: Project) -> list[dict[str, object]]:
    return [e["payload"] for e in json.loads(ok(project.cli("history", "--json")).stdout)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_unit_blocked_in_sleep_is_interrupted_when_the_grace_period_runs_out(
        blocking: Project, sig: int) -> None:
    blocking.flag("sleep-u2")
    runner = blocking.spawn("run")
    blocking.wait_for_effect("start u2")

    err = signal_and_wait(blocking, runner, sig, "a unit in time.sleep(3600)")

    name = signal.Signals(sig).name
    assert runner.returncode == CODES[sig], err
    acknowledged = err.index(f"{name}: stopping once u2 finishes (within 2s); a second "
                             "signal interrupts it")
    assert acknowledged < err.index("INTERRUPTED")  # said at once, not at the end
    payloads = events(blocking)
    assert [p["type"] for p in payloads][-4:] == [
        "ChangeStarted", "ChangeInterrupted", "RunFinished", "LockReleased"]
    assert (payloads[-3]["unit_id"], payloads[-3]["signal"], payloads[-3]["reason"]) == \
        ("u2", name, "the grace period of 2s ran out")
    assert payloads[-2]["not_started"] == ["u3"]
    assert blocking.effects() == ["start u1", "apply u1", "start u2"]  # u2 never finished
    assert "in doubt: interrupted by" in ok(blocking.cli("status"), 7).stdout


def test_a_second_signal_interrupts_the_unit_at_once(blocking: Project) -> None:
    blocking.env["FLAMINGOCK_GRACE_PERIOD"] = "3600"  # only the second signal can end it
    blocking.flag("sleep-u2")
    runner = blocking.spawn("run")
    blocking.wait_for_effect("start u2")
    runner.send_signal(signal.SIGTERM)
    read_until(runner, "SIGTERM: stopping once u2 finishes")  # the first one was heard

    err = signal_and_wait(blocking, runner, signal.SIGINT, "a second signal, grace 3600s")

    assert runner.returncode == 143, err
    interrupted = [p for p in events(blocking) if p["type"] == "ChangeInterrupted"]
    assert [(p["unit_id"], p["reason"]) for p in interrupted] == [
        ("u2", "a second signal (SIGINT) arrived")]


def test_a_step_that_never_returns_to_python_is_recorded_by_the_watchdog(
        blocking: Project) -> None:
    blocking.flag("stuck-u2")
    runner = blocking.spawn("run")
    blocking.wait_for_effect("start u2")

    err = signal_and_wait(blocking, runner, signal.SIGTERM, "a step that blocks signals")

    assert runner.returncode == 143, err
    payloads = events(blocking)
    assert [p["type"] for p in payloads][-4:] == [
        "ChangeStarted", "ChangeInterrupted", "RunFinished", "LockReleased"]
    assert payloads[-3]["reason"] == ("the grace period of 2s ran out; the step did not "
                                      "return within 3s of being interrupted, so the process "
                                      "ended")
    assert (payloads[-2]["outcome"], payloads[-2]["not_started"]) == ("FAILED", ["u3"])
    assert "INTERRUPTED (SIGTERM: the grace period of 2s ran out; the step" in err
    # The lock was released: a mark takes it at once, and the next run goes on.
    blocking.unflag("stuck-u2")
    ok(blocking.cli("mark", "u2", "--as", "rolled-back", "--reason", "checked: not done"))
    ok(blocking.cli("run"))
    assert blocking.effects()[-4:] == ["start u2", "apply u2", "start u3", "apply u3"]


def read_until(runner: subprocess.Popen[str], text: str, timeout: float = 30.0) -> str:
    """Read the runner's stderr as it comes (its descriptor, unbuffered) until ``text``
    shows, or fail; what follows is left for ``communicate``."""
    assert runner.stderr is not None
    fd, seen = runner.stderr.fileno(), b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        assert time.monotonic() < deadline, f"{text!r} never showed; so far: {seen!r}"
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"stderr closed before {text!r}; so far: {seen!r}"
            seen += chunk
    return seen.decode()


def test_the_first_signal_is_acknowledged_at_once_on_a_terminal(blocking: Project) -> None:
    blocking.flag("hold-u2")
    main, terminal = pty.openpty()
    runner = subprocess.Popen(blocking.command("run"), cwd=blocking.path,
                              env={**blocking.env, "TERM": "xterm"}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    try:
        blocking.wait_for_effect("start u2")
        runner.send_signal(signal.SIGINT)
        shown = b""
        deadline = time.monotonic() + 30
        while b"stopping once u2 finishes" not in shown:  # while u2 is still held
            assert time.monotonic() < deadline, shown.decode(errors="replace")
            if select.select([main], [], [], 0.5)[0]:
                shown += os.read(main, 4096)
        assert "apply u2" not in blocking.effects()
        blocking.flag("release-u2")
        runner.communicate(timeout=60)
        assert runner.returncode == 9
        with_rest = shown.decode(errors="replace")
        assert "SIGINT: stopping once u2 finishes (within 2s); a second signal interrupts " \
               "it, leaving it in doubt" in with_rest
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
        os.close(main)
    assert blocking.effects()[-1] == "apply u2"


def test_the_default_grace_period_fits_inside_kubernetes_default() -> None:
    from flamingock_es.definition.settings import Settings
    from flamingock_es.run.signals import BOUND, STUCK_AFTER

    kubernetes = 30.0  # terminationGracePeriodSeconds' default
    assert STUCK_AFTER < BOUND
    assert Settings().grace_period + BOUND < kubernetes
