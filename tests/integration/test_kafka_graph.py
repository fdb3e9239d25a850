"""Graphs on the real broker: four runner processes contending for one namespace whose units
run side by side, and a runner killed while two branches are mid-change.

The graph: ``a``; ``b``, ``c``, ``d`` and ``e`` require ``a``; ``f`` requires all four;
``max_parallel: 4``. Side effects are ``O_APPEND`` lines of ``effects.txt`` (one ``write``
each, so lines from concurrent processes and threads never interleave) and are counted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from .runner_support import ok, read_audit

pytestmark = pytest.mark.kafka

UNITS = '''\
import os
import time
from pathlib import Path

from flamingock_es import change_unit

PROJECT = Path({project!r})


def _note(line):
    fd = os.open(PROJECT / "effects.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


def _apply(uid):
    _note(f"start {{uid}} {{os.getpid()}}")
    if (PROJECT / f"hold-{{uid}}").exists():
        deadline = time.monotonic() + 120
        while not (PROJECT / f"release-{{uid}}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    time.sleep(0.2)  # long enough for the branches to overlap
    _note(f"apply {{uid}} {{os.getpid()}}")


@change_unit(id="a", order=1, author="it")
def a(ctx):
    _apply("a")

'''

BRANCH = '''
@change_unit(id="{uid}", order={order}, author="it", requires={requires!r})
def {uid}(ctx):
    _apply("{uid}")
'''

GRAPH = {"b": ["a"], "c": ["a"], "d": ["a"], "e": ["a"], "f": ["b", "c", "d", "e"]}


class GraphProject:
    def __init__(self, path: Path, bootstrap: str) -> None:
        self.path, self.namespace = path, f"graph-{uuid.uuid4().hex[:12]}"
        self.bus = f"kafka://{bootstrap}"
        (path / "changes").mkdir(parents=True)
        (path / "flamingock.yaml").write_text(textwrap.dedent(f"""\
            namespace: {self.namespace}
            bus: {self.bus}
            max_parallel: 4
            lock_timeout: 120
            stages:
              - name: main
                units: [changes]
            """))
        source = UNITS.format(project=str(path)) + "".join(
            BRANCH.format(uid=uid, order=n, requires=needs)
            for n, (uid, needs) in enumerate(GRAPH.items(), start=2))
        (path / "changes" / "graph.py").write_text(source)
        self.env = {**os.environ, "FLAMINGOCK_PRINCIPAL": "it-runner", "PYTHONUNBUFFERED": "1"}

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "flamingock_es.cli", *args], cwd=self.path,
                                env=self.env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flamingock_es.cli", *args], cwd=self.path,
                              env=self.env, text=True, capture_output=True, timeout=180,
                              check=False)

    def effects(self, kind: str) -> list[str]:
        path = self.path / "effects.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line.split()[1] for line in lines if line.startswith(kind + " ")]

    def wait_for(self, kind: str, uid: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while uid not in self.effects(kind):
            assert time.monotonic() < deadline, f"{kind} {uid} never happened"
            time.sleep(0.02)


def test_four_runners_contending_for_a_graph_apply_every_unit_once(
        tmp_path: Path, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    project = GraphProject(tmp_path / "proj", kafka_bootstrap)
    started = time.monotonic()

    runners = [project.spawn("run") for _ in range(4)]
    outputs = [runner.communicate(timeout=300) for runner in runners]

    codes = [runner.returncode for runner in runners]
    assert codes == [0, 0, 0, 0], outputs
    units = ["a", *GRAPH]
    assert Counter(project.effects("apply")) == dict.fromkeys(units, 1)
    assert Counter(project.effects("start")) == dict.fromkeys(units, 1)
    applied = project.effects("apply")
    assert applied[0] == "a"
    assert applied[-1] == "f"
    audit = read_audit(project.bus, project.namespace)
    audit.assert_intact()
    starts = [e.payload.unit_id for e in audit.kinds("ChangeStarted")]  # type: ignore[attr-defined]
    assert sorted(starts) == sorted(units)
    # the branches overlapped in the log: a start came before an earlier start's outcome
    kinds = [(type(e.payload).__name__, getattr(e.payload, "unit_id", "")) for e in audit.events]
    branch = [k for k in kinds if k[1] in "bcde" and k[0] in ("ChangeStarted", "ChangeSucceeded")]
    assert [k[0] for k in branch[:2]] == ["ChangeStarted", "ChangeStarted"], branch
    assert len(audit.kinds("RunStarted")) == 1  # one runner applied; three found it done
    ok(project.cli("verify"))
    with capsys.disabled():
        print(f"\n[graph] 4 runners on one graph of {len(units)} units, max_parallel 4: "
              f"{time.monotonic() - started:.1f}s, every side effect once, "
              f"{len(audit.events)} audit events, chain intact")


def test_a_runner_killed_with_two_branches_mid_change_leaves_exactly_those_in_doubt(
        tmp_path: Path, kafka_bootstrap: str) -> None:
    project = GraphProject(tmp_path / "proj", kafka_bootstrap)
    for uid in ("b", "c"):
        (project.path / f"hold-{uid}").touch()
    runner = project.spawn("run")
    try:
        project.wait_for("start", "b")
        project.wait_for("start", "c")
        project.wait_for("apply", "d")
        project.wait_for("apply", "e")
        time.sleep(1.0)  # d's and e's outcomes are appended as they come
        os.kill(runner.pid, signal.SIGKILL)
        runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()

    state = read_audit(project.bus, project.namespace).report.state
    statuses = {uid: unit.status.value for uid, unit in state.units.items()}
    assert statuses == {"a": "APPLIED", "b": "STARTED", "c": "STARTED", "d": "APPLIED",
                        "e": "APPLIED"}
    assert "f" not in project.effects("start")
    refused = project.cli("run")
    assert refused.returncode == 7, refused.stderr
    assert "'b'" in refused.stderr
