"""A real network partition: the lock holder's process alone is cut off from the broker while
its unit runs, and the network heals later.

How the partition is made (the ``isolated`` fixture, ``netns.py``): the holder runs in a
network namespace of its own whose only way to the broker is one veth link (two plain TCP
forwarders carry ``127.0.0.1:PORT``, the address the broker advertises, across it). Cutting
takes the host's end of the link down: from then on the kernel drops every packet the holder
sends, nothing is refused or reset, and every connection stays open, silent, on both sides,
as when a switch or a cable fails. The broker and every other client on the host are
untouched: the successor runs on the host and talks to the broker directly. Healing brings
the link up again. No process is paused, no client is told anything: only the packets stop.

Side effects are counted (``runner_support.py``): each unit writes ``start ID PID`` and
``apply ID PID`` lines, so who ran what, and how often, is read from the world, not from the
audit log. Costs about 10 s.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from .netns import Isolated
from .runner_support import RunnerProject, ok, read_audit

pytestmark = pytest.mark.kafka

EXIT_BOUND = 120.0
"""Seconds the healed holder gets to exit; longer means it hangs (it takes about 1 s)."""


@pytest.fixture
def project(tmp_path: Path, kafka_bootstrap: str) -> RunnerProject:
    project = RunnerProject(tmp_path / "proj", f"kafka://{kafka_bootstrap}",
                            f"partition-{uuid.uuid4().hex[:12]}")
    for n in (1, 2, 3):
        project.add_unit(n)
    return project


def _pids(project: RunnerProject, kind: str, unit: str) -> list[int]:
    return [int(line.split()[2]) for line in project.effects()
            if line.startswith(f"{kind} {unit} ")]


def test_a_partitioned_holder_is_fenced_and_never_starts_another_unit(
        project: RunnerProject, isolated: Isolated, capsys: pytest.CaptureFixture[str]) -> None:
    """While the holder is cut off, the rest of the world goes on without it: a successor
    decides, a person marks, a run applies the next unit. Once healed, the holder finds
    itself fenced, writes nothing and starts nothing more."""
    project.flag("hold-u0002")
    holder = subprocess.Popen(isolated.command(project.command("run")), cwd=project.path,
                              env=project.env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        project.wait_for_effect("start u0002", timeout=90)
        (holder_pid,) = _pids(project, "start", "u0002")
        isolated.cut()  # u0002 is running: its ChangeStarted is durable, its outcome is not

        # The group evicts the silent holder after its session timeout; a successor then
        # holds the lock and decides under it what u0002 is: in doubt, a person decides.
        successor = ok(project.cli("run"), 7)
        assert "unit 'u0002' is in doubt" in successor.stderr
        (seen,) = re.findall(r"mark u0002 --as applied --reason \"...\" --seen (\d+)",
                             successor.stderr)

        project.flag("release-u0002")  # the holder's unit ends while it is still cut off
        project.wait_for_effect("apply u0002", timeout=60)
        # A person sees u0002's effect in the target system and records it, as the successor
        # said to; the next run applies u0003. Both write under the lock: the holder has
        # lost it, and its producer epoch is now stale too.
        ok(project.cli("mark", "u0002", "--as", "applied", "--reason", "applied before the cut",
                       "--seen", seen))
        ok(project.cli("run"))
        assert project.applied_effects() == ["u0001", "u0002", "u0003"]

        isolated.heal()
        try:
            _, err = holder.communicate(timeout=EXIT_BOUND)
        except subprocess.TimeoutExpired:
            holder.kill()
            _, err = holder.communicate()
            raise AssertionError(f"the healed holder did not exit within {EXIT_BOUND:g}s:\n"
                                 f"{err[-3000:]}") from None
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate()

    # The holder learns it lost the lock and says so; it wrote nothing after the cut.
    assert holder.returncode == 3, err
    assert "LOCK LOST" in err, err
    assert "flamingock-es: error:" in err, err
    assert "another runner" in err, err
    assert "Traceback" not in err, err
    assert project.started_effects() == ["u0001", "u0002", "u0003"]  # each exactly once
    assert project.applied_effects() == ["u0001", "u0002", "u0003"]
    assert set(_pids(project, "start", "u0001") + _pids(project, "apply", "u0002")) \
        == {holder_pid}
    assert _pids(project, "start", "u0003") != [holder_pid]
    audit = read_audit(project.bus, project.namespace)
    audit.assert_intact()
    holders_run = audit.events[0].run_id
    assert [(e.kind, getattr(e.payload, "unit_id", None)) for e in audit.events
            if e.run_id == holders_run] == [
        ("RunStarted", None), ("LockAcquired", None), ("ChangeStarted", "u0001"),
        ("ChangeSucceeded", "u0001"), ("ChangeStarted", "u0002")]  # nothing after the cut
    assert audit.unit_events("u0002", "ChangeSucceeded") == []
    assert audit.report.state.counts() == {"APPLIED": 2, "MANUAL_MARKED_AS_APPLIED": 1}
    ok(project.cli("verify"))
    with capsys.disabled():
        print(f"\n[partition] holder cut off inside u0002; meanwhile a successor decided, a "
              f"mark and a run went on; healed, the holder exited {holder.returncode}: "
              f"{err.strip().splitlines()[-1][:160]}")
