"""A ``flamingock-es run`` held inside one unit's apply step while a test acts on the world."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .runner_support import RunnerProject


@dataclass
class Finished:
    """How the parked run ended (filled in when the ``with`` block is left)."""

    pid: int = 0
    code: int | None = None
    err: str = ""


@contextmanager
def parked_run(project: RunnerProject, unit: str, timeout: float = 180.0) -> Iterator[Finished]:
    """Start ``run``; the block runs while ``unit`` is parked after its ``start`` effect.
    Leaving the block releases the unit and waits for the run (killed if it never ends)."""
    project.flag(f"hold-{unit}")
    runner = project.spawn("run")
    finished = Finished(runner.pid)
    try:
        try:
            project.wait_for_effect(f"start {unit}", timeout=90)
        except AssertionError as exc:  # say where the run is stuck
            runner.kill()
            raise AssertionError(f"{exc}\nthe run's stderr:\n{runner.communicate()[1]}") \
                from None
        yield finished
        project.flag(f"release-{unit}")
        _, finished.err = runner.communicate(timeout=timeout)
    finally:
        if runner.returncode is None:
            runner.kill()
            _, finished.err = runner.communicate()
        finished.code = runner.returncode
