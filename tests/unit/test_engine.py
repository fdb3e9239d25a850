"""The runner on the embedded log, in-process: the cases a CLI test cannot pin down in time."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from flamingock_es import api
from flamingock_es.core.changes import ChangeContext, ChangeUnit
from flamingock_es.definition.workflow import Workflow
from flamingock_es.errors import ConfigError, FlamingockError
from flamingock_es.run.progress import Progress
from flamingock_es.run.results import RunResult


def test_a_unit_in_progress_elsewhere_is_waited_for_not_called_in_doubt(tmp_path: Path) -> None:
    inside, release = threading.Event(), threading.Event()
    applied: list[str] = []

    def slow(ctx: ChangeContext) -> None:
        inside.set()
        release.wait(10)
        applied.append(ctx.run_id)

    unit = ChangeUnit(id="u1", order=1, author="ana", apply=slow)
    workflow = Workflow.of("shop", {"main": [unit]}, bus=f"local:{tmp_path}", lock_timeout=10)
    results: list[RunResult | FlamingockError] = []

    def run() -> None:
        try:
            results.append(api.run(workflow, progress=Progress()))
        except FlamingockError as exc:
            results.append(exc)

    first = threading.Thread(target=run)
    first.start()
    assert inside.wait(10)
    # u1 is STARTED in the log and its runner holds the lock: a second runner must wait
    second = threading.Thread(target=run)
    second.start()
    second.join(0.5)
    assert second.is_alive()
    release.set()
    first.join(10)
    second.join(10)

    assert len(applied) == 1
    outcomes = sorted(str(r.outcome) if isinstance(r, RunResult) else repr(r) for r in results)
    assert outcomes == ["None", "SUCCEEDED"]


def test_a_missing_variable_stops_the_run_before_anything_is_applied(tmp_path: Path) -> None:
    applied: list[str] = []
    units = [ChangeUnit(id=f"u{i}", order=i, author="ana",
                        apply=lambda ctx: applied.append(ctx.unit_id),
                        parameters={"url": f"${{NOT_SET_{i}}}"} if i == 2 else {})
             for i in (1, 2)]
    workflow = Workflow.of("shop", {"main": units}, bus=f"local:{tmp_path}")

    with pytest.raises(ConfigError, match=r"unit 'u2' uses \$\{NOT_SET_2\}"):
        api.run(workflow, progress=Progress())

    assert applied == []
    assert api.read_state(workflow).events == 0
