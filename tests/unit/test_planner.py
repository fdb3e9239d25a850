"""The planner: each unit's action from its last recorded status, and what blocks a run."""

from __future__ import annotations

import pytest

from flamingock_es.cli.remedies import command
from flamingock_es.core.changes import ChangeContext, ChangeUnit, Recovery
from flamingock_es.core.events import (
    ChangeFailed,
    CompensationFailed,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    ManualMark,
    MarkedAs,
)
from flamingock_es.core.state import State
from flamingock_es.definition.workflow import Workflow
from flamingock_es.run.planner import Action, Blocker, Plan, make_plan

from .fakes import Journal
from .test_state import started, succeeded

BOOM = ErrorInfo(type="RuntimeError", message="boom")


def _commands(blocker: Blocker) -> str:
    """The blocker's remedies as the CLI writes them, one command per line."""
    return "\n".join(command(remedy) for remedy in blocker.remedies)


def noop(ctx: ChangeContext) -> None:
    pass


def unit(unit_id: str = "u1", order: int = 1, **options: object) -> ChangeUnit:
    return ChangeUnit(id=unit_id, order=order, author="ana", apply=noop, rollback=noop,
                      source=f"changes/{unit_id}.py:3", **options)  # type: ignore[arg-type]


def plan_for(units: list[ChangeUnit], journal: Journal, accept_drift: bool = False) -> Plan:
    return make_plan(Workflow.of("shop", {"main": units}), journal.log.fold(), accept_drift)


def applied(journal: Journal, u: ChangeUnit, run_id: str = "r1", checksum: str = "") -> None:
    checksum = checksum or u.checksum
    journal.run(run_id, started(u.id, checksum=checksum), succeeded(u.id, checksum=checksum))


@pytest.fixture
def journal() -> Journal:
    return Journal()


def test_everything_is_pending_on_an_empty_log(journal: Journal) -> None:
    units = [unit("b", 2), unit("a", 1)]
    plan = make_plan(Workflow.of("shop", {"data": units[:1], "flags": units[1:]}), State())

    assert [(p.stage, p.unit.id, p.action, p.reason) for p in plan.units] == [
        ("data", "b", Action.RUN, "pending"), ("flags", "a", Action.RUN, "pending")]
    assert plan.has_work
    assert not plan.up_to_date
    assert plan.blockers == ()


def test_stages_keep_their_order_and_units_run_in_order(journal: Journal) -> None:
    wf = Workflow.of("shop", {"first": [unit("z", 2), unit("y", 1)], "second": [unit("a", 1)]})
    assert [p.unit.id for p in make_plan(wf, State()).to_run] == ["y", "z", "a"]


def test_applied_units_are_skipped(journal: Journal) -> None:
    u1, u2 = unit("u1", 1), unit("u2", 2)
    applied(journal, u1)

    plan = plan_for([u1, u2], journal)

    assert [(p.unit.id, p.action) for p in plan.units] == [("u1", Action.SKIP), ("u2", Action.RUN)]
    assert plan.units[0].reason == "applied in run r1"
    assert plan.units[0].previous is not None
    assert [p.unit.id for p in plan.to_run] == ["u2"]

    applied(journal, u2)
    assert plan_for([u1, u2], journal).up_to_date


def test_run_always_units_run_again(journal: Journal) -> None:
    u = unit(run_always=True)
    applied(journal, u)
    (entry,) = plan_for([u], journal).units
    assert (entry.action, entry.reason) == (Action.RUN, "run-always")


def test_marked_applied_is_skipped(journal: Journal) -> None:
    u = unit()
    journal.run("r1", started())
    journal.run("m1", ManualMark(unit_id="u1", marked_as=MarkedAs.APPLIED, reason="checked",
                                 checksum=u.checksum))
    assert plan_for([u], journal).units[0].action is Action.SKIP


@pytest.mark.parametrize(("history", "reason"), [
    ("rolled-back", "pending again: rolled back"),
    ("marked-rolled-back", "pending again: manual marked as rolled back"),
])
def test_rolled_back_units_are_pending_again(journal: Journal, history: str, reason: str
                                             ) -> None:
    u = unit()
    applied(journal, u)
    if history == "rolled-back":
        journal.run("r2", CompensationStarted(unit_id="u1", reason="undo"),
                    CompensationSucceeded(unit_id="u1", duration_ms=1.0))
    else:
        journal.run("m1", ManualMark(unit_id="u1", marked_as=MarkedAs.ROLLED_BACK, reason="x"))
    (entry,) = plan_for([u], journal).units
    assert (entry.action, entry.reason) == (Action.RUN, reason)


def test_in_doubt_under_manual_intervention_blocks_with_the_mark_command(journal: Journal
                                                                        ) -> None:
    u = unit()
    journal.run("r1", started())

    plan = plan_for([u], journal)

    (entry,) = plan.units
    assert entry.action is Action.BLOCKED
    assert entry.reason == ("in doubt: started, no outcome recorded (the process died, or was cut "
                            "off from the bus and its side effect may still land)")
    (blocker,) = plan.blockers
    assert blocker.unit_id == "u1"
    assert blocker.kind == "manual-intervention"
    assert _commands(blocker).splitlines() == [  # one concrete command for each decision
        'flamingock-es mark u1 --as applied --reason "..." --seen 0',
        'flamingock-es mark u1 --as rolled-back --reason "..." --seen 0']
    assert "in run r1" in blocker.message
    assert "manual-intervention" in blocker.message
    assert not plan.has_work
    assert not plan.up_to_date


def test_failed_under_manual_intervention_blocks_and_names_the_error(journal: Journal) -> None:
    journal.run("r1", started(), ChangeFailed(unit_id="u1", checksum="a" * 64,
                                              duration_ms=1.0, error=BOOM))
    (blocker,) = plan_for([unit()], journal).blockers
    assert 'flamingock-es mark u1 --as rolled-back --reason "..." --seen 100' in _commands(blocker)
    assert "is failed in run r1 (RuntimeError: boom)" in blocker.message


@pytest.mark.parametrize("crash", ["in-doubt", "failed"])
def test_always_retry_runs_a_failed_or_in_doubt_unit_again(journal: Journal, crash: str) -> None:
    journal.run("r1", started())
    if crash == "failed":
        journal.run("r1", ChangeFailed(unit_id="u1", checksum="a" * 64, duration_ms=1.0,
                                       error=BOOM))
    (entry,) = plan_for([unit(recovery=Recovery.ALWAYS_RETRY)], journal).units
    assert entry.action is Action.RUN
    assert entry.reason.startswith("retry (")
    assert entry.previous is not None
    assert entry.previous.attempts == 1


@pytest.mark.parametrize("recovery", list(Recovery))
def test_a_failed_rollback_always_needs_a_person(journal: Journal, recovery: Recovery) -> None:
    journal.run("r1", started(), ChangeFailed(unit_id="u1", checksum="a" * 64, duration_ms=1.0,
                                              error=BOOM),
                CompensationStarted(unit_id="u1", reason="x"),
                CompensationFailed(unit_id="u1", duration_ms=1.0, original_error=BOOM,
                                   error=ErrorInfo(type="OSError", message="undo boom")))

    plan = plan_for([unit(recovery=recovery)], journal)

    (blocker,) = plan.blockers
    assert 'flamingock-es mark u1 --as rolled-back --reason "..." --seen 300' in _commands(blocker)
    assert "(RuntimeError: boom)" in blocker.message
    assert "its rollback failed too (OSError: undo boom)" in blocker.message


def test_drift_of_an_applied_unit_blocks(journal: Journal) -> None:
    u = unit()
    applied(journal, u, checksum="0" * 64)

    plan = plan_for([u], journal)

    (entry,) = plan.units
    assert (entry.action, entry.reason) == (Action.BLOCKED, "checksum drift")
    (blocker,) = plan.blockers
    assert blocker.kind == "drift"
    assert blocker.message.startswith("changes/u1.py:3: unit 'u1' changed after it was applied "
                                      f"(checksum 000000000000 -> {u.checksum[:12]})")
    assert "--accept-drift" in _commands(blocker)
    assert not plan.has_work


def test_drift_blocks_even_run_always_units(journal: Journal) -> None:
    u = unit(run_always=True)
    applied(journal, u, checksum="0" * 64)
    assert plan_for([u], journal).units[0].action is Action.BLOCKED


@pytest.mark.parametrize("how", ["flag", "unit"])
def test_accepted_drift_is_planned_as_a_mark(journal: Journal, how: str) -> None:
    u = unit(accept_drift=how == "unit")
    applied(journal, u, checksum="0" * 64)

    plan = plan_for([u], journal, accept_drift=how == "flag")

    (entry,) = plan.units
    assert entry.action is Action.ACCEPT_DRIFT
    assert plan.drift_to_accept == [entry]
    assert plan.to_run == []
    assert plan.has_work
    assert plan.blockers == ()


def test_units_the_workflow_no_longer_has_are_reported(journal: Journal) -> None:
    applied(journal, unit("gone"))
    plan = plan_for([unit("u1")], journal)
    assert plan.unknown == ("gone",)
    assert [p.unit.id for p in plan.units] == ["u1"]
