"""Helpers for the Kafka runner tests: a throw-away project, and a long-lived runner worker.

Units record their side effect by appending one line to ``effects.txt`` in the project
(``O_APPEND``, one ``write`` per line, so lines from concurrent processes never interleave
and "exactly once" can be counted). Flag files in the project steer a unit ``ID``:
``hold-ID`` parks its apply (after the ``start`` line) until ``release-ID`` exists.

Run as a script, this module is a *runner worker*: a process that, for every ``go N`` line
on stdin, calls :func:`flamingock_es.run` in-process (each call opens its own backend, so
its own lock-group member and transactional producer) and prints one JSON line with what
the run did. Several workers driven together are several real runners competing for the
Kafka lock, without paying the interpreter's start-up time for every round::

    python runner_support.py worker PROJECT_DIR BUS NAMESPACE
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flamingock_es.audit import ReplayReport
    from flamingock_es.core.events import AuditEvent

REPO = Path(__file__).resolve().parents[2]
KAFKA_TOOL = REPO / "scripts" / "kafka-tool"

WORKFLOW = """\
namespace: {namespace}
bus: {bus}
lock_timeout: {lock_timeout}
stages:
  - name: main
    units: [changes]
"""

UNIT = '''\
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flamingock_es.audit import ReplayReport
    from flamingock_es.core.events import AuditEvent

from flamingock_es import change_unit

PROJECT = Path({project!r})


def _note(line):
    fd = os.open(PROJECT / "effects.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


@change_unit(id={uid!r}, order={order}, author="it", recovery={recovery!r})
def {uid}(ctx):
    _note(f"start {{ctx.unit_id}} {{os.getpid()}}")
    if (PROJECT / f"hold-{{ctx.unit_id}}").exists():
        # Longer than a test may take to act while the unit is held (a broker stopped and
        # started again through scripts/services: up to 180 s, plus 120 s to answer).
        deadline = time.monotonic() + 360
        while not (PROJECT / f"release-{{ctx.unit_id}}").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{{ctx.unit_id}} was never released")
            time.sleep(0.02)
    _note(f"apply {{ctx.unit_id}} {{os.getpid()}}")
'''


def unit_id(n: int) -> str:
    return f"u{n:04d}"


class RunnerProject:
    """A project directory: ``flamingock.yaml`` and one Python file per unit in changes/."""

    def __init__(self, path: Path, bus: str, namespace: str, *,
                 recovery: str = "manual-intervention", lock_timeout: float = 60.0) -> None:
        self.path, self.bus, self.namespace, self.recovery = path, bus, namespace, recovery
        (path / "changes").mkdir(parents=True, exist_ok=True)
        (path / "flamingock.yaml").write_text(WORKFLOW.format(
            namespace=namespace, bus=bus, lock_timeout=lock_timeout))
        self.env = {**os.environ, "FLAMINGOCK_PRINCIPAL": "it-runner", "PYTHONUNBUFFERED": "1"}
        self.env.pop("PYTHONWARNINGS", None)

    @property
    def config(self) -> Path:
        return self.path / "flamingock.yaml"

    def add_unit(self, n: int) -> str:
        """Write unit ``u{n:04d}`` (order ``n``); it is pending until a run applies it."""
        uid = unit_id(n)
        source = UNIT.format(project=str(self.path), uid=uid, order=n, recovery=self.recovery)
        tmp = self.path / "changes" / f".{uid}.tmp"
        tmp.write_text(source)
        tmp.rename(self.path / "changes" / f"{uid}.py")  # never seen half-written
        return uid

    def flag(self, *names: str) -> None:
        for name in names:
            (self.path / name).touch()

    def effects(self) -> list[str]:
        path = self.path / "effects.txt"
        return path.read_text().splitlines() if path.exists() else []

    def applied_effects(self) -> list[str]:
        """The unit ids of every ``apply`` line, in order (pids dropped)."""
        return [line.split()[1] for line in self.effects() if line.startswith("apply ")]

    def started_effects(self) -> list[str]:
        return [line.split()[1] for line in self.effects() if line.startswith("start ")]

    def wait_for_effect(self, prefix: str, timeout: float = 30.0) -> str:
        """The first effect line starting with ``prefix``; waits for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.effects() if line.startswith(prefix)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"{prefix!r} never appeared; effects: {self.effects()}")
            time.sleep(0.02)

    # The CLI -------------------------------------------------------------------------------

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flamingock_es.cli", *args, "--bus", self.bus,
                "--namespace", self.namespace, "-c", str(self.config)]

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``flamingock-es ARGS``; text output; never raises on the exit code."""
        return subprocess.run(self.command(*args), cwd=self.path, env=self.env, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Start ``flamingock-es ARGS`` without waiting; finish it with ``communicate()``."""
        return subprocess.Popen(self.command(*args), cwd=self.path, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def worker(self) -> subprocess.Popen[str]:
        """Start a runner worker (see the module docstring) on this project."""
        return subprocess.Popen(
            [sys.executable, __file__, "worker", str(self.path), self.bus, self.namespace],
            cwd=self.path, env=self.env, text=True, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@dataclass
class Audit:
    """A namespace's audit log as ``flamingock-es verify`` sees it, and checks over it."""

    report: ReplayReport

    @property
    def events(self) -> list[AuditEvent]:
        return [record.event for record in self.report.records]

    def kinds(self, kind: str) -> list[AuditEvent]:
        return [event for event in self.events if event.kind == kind]

    def unit_events(self, unit: str, kind: str) -> list[AuditEvent]:
        return [e for e in self.kinds(kind) if getattr(e.payload, "unit_id", None) == unit]

    def assert_intact(self) -> None:
        """Chain and hashes hold, seq is gap-free from 0, and no ChangeStarted has two
        outcomes (nothing lost, nothing duplicated)."""
        assert self.report.ok, f"audit chain broken: {self.report.breaks}"
        seqs = [event.seq for event in self.events]
        assert seqs == list(range(len(seqs))), f"seq not gap-free: {seqs}"
        assert len({event.event_id for event in self.events}) == len(seqs), "duplicate event"
        open_starts: dict[str, int] = {}
        for event in self.events:
            uid = getattr(event.payload, "unit_id", None)
            if event.kind == "ChangeStarted":
                open_starts[uid] = event.seq
            elif event.kind in ("ChangeSucceeded", "ChangeFailed"):
                assert open_starts.pop(uid, None) is not None, (
                    f"{event.kind} of {uid} at seq {event.seq} without an open ChangeStarted")


def read_audit(bus: str, namespace: str) -> Audit:
    from flamingock_es import api

    return Audit(api.verify(bus=bus, namespace=namespace))


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    """Assert the exit code, showing the output when it is not the expected one."""
    assert result.returncode == code, (
        f"exit {result.returncode}, expected {code}\n--- stdout\n{result.stdout}"
        f"--- stderr\n{result.stderr}")
    return result


# The worker --------------------------------------------------------------------------------


def _worker(project: str, bus: str, namespace: str) -> int:
    import flamingock_es
    from flamingock_es.errors import FlamingockError
    from flamingock_es.run.progress import Progress

    class Waits(Progress):
        waited = False

        def waiting(self, seconds: float, holder: str) -> None:
            self.waited = True

    config = str(Path(project) / "flamingock.yaml")
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] != "go":
            break
        progress = Waits()
        started = time.monotonic()
        answer: dict[str, object] = {"round": int(words[1]), "pid": os.getpid()}
        try:
            result = flamingock_es.run(config, bus=bus, namespace=namespace, progress=progress,
                                       trigger="it-worker")
        except FlamingockError as exc:
            answer |= {"error": f"{type(exc).__name__}: {exc}"}
        else:
            answer |= {"run_id": result.run_id, "applied": result.applied,
                       "outcome": result.outcome.value if result.outcome else None}
        answer |= {"ms": round((time.monotonic() - started) * 1000), "waited": progress.waited}
        print(json.dumps(answer), flush=True)
    return 0


def kafka_tool(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``scripts/kafka-tool ARGS`` (Kafka's own tools), with the bootstrap of the environment."""
    return subprocess.run([str(KAFKA_TOOL), *args], cwd=REPO, text=True, capture_output=True,
                          timeout=timeout, check=False)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "worker":
        sys.exit(_worker(*sys.argv[2:]))
    print(textwrap.dedent(__doc__ or ""), file=sys.stderr)
    sys.exit(2)

