"""ChangeUnits restored from the unit cache, whose code is imported only when it is needed.

A restored unit carries everything planning reads (id, order, checksum, recovery, ...), as it
was when its file was last imported. Its ``apply``, ``rollback`` and ``check`` import the
file on first use and hand over to the unit found there, after checking that it is still the
one that was planned with: a definition that changed meanwhile is refused, never run.

The runner calls ``check`` for every unit it is about to run before it takes the lock, so the
import happens there: outside any unit's audited step, and an import that fails stops the run
before anything starts. Only ``undo`` reaches a rollback without that check; its import then
happens inside the compensation, which records the failure like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...core.changes import ChangeContext, ChangeUnit
from ...errors import ConfigError

__all__ = ["DeferredFile"]

_COMPARED = ("order", "author", "description", "run_always", "recovery", "parameters",
             "secrets", "template", "accept_drift", "source", "checksum", "requires", "when",
             "on_fail")


class DeferredFile:
    """The restored units of one file, and how to import the real ones."""

    def __init__(self, path: str, load: Callable[[], list[ChangeUnit]]) -> None:
        self.path = path
        self._load = load
        self._restored: dict[str, ChangeUnit] = {}
        self._real: dict[str, ChangeUnit] | None = None

    def restore(self, fields: dict[str, Any], checksum: str, has_rollback: bool,
                has_precondition: bool = False) -> ChangeUnit:
        """A unit with ``fields`` (used up) and ``checksum``, whose steps import this file
        when they run."""
        unit_id = fields["id"]
        fields["apply"] = _Step(self, unit_id, "apply")
        fields["rollback"] = _Step(self, unit_id, "rollback") if has_rollback else None
        fields["precondition"] = _Step(self, unit_id, "precondition") \
            if has_precondition else None
        fields["check"] = _Check(self, unit_id)
        unit = self._restored[unit_id] = ChangeUnit.restored(checksum, fields)
        return unit

    def real(self, unit_id: str) -> ChangeUnit:
        """The unit as its file defines it now; refused unless it is the restored one."""
        if self._real is None:
            self._real = {u.id: u for u in self._load()}
        restored, unit = self._restored[unit_id], self._real.get(unit_id)
        changed = "it is no longer there" if unit is None else _difference(restored, unit)
        if changed:
            raise ConfigError(
                f"{self.path}: unit {unit_id!r} changed since flamingock-es read it at start-up "
                f"({changed}), so it was not run. Run the command again.")
        assert unit is not None
        return unit


def _difference(restored: ChangeUnit, unit: ChangeUnit) -> str:
    for name in _COMPARED:
        if getattr(restored, name) != getattr(unit, name):
            return f"its {name} differs"
    if (restored.rollback is None) != (unit.rollback is None):
        return "its rollback was added or removed"
    if (restored.precondition is None) != (unit.precondition is None):
        return "its precondition was added or removed"
    return ""


class _Step:
    """``apply`` or ``rollback`` of a restored unit: the real unit's, imported on first call."""

    def __init__(self, file: DeferredFile, unit_id: str, phase: str) -> None:
        self.file, self.unit_id, self.phase = file, unit_id, phase

    def __call__(self, ctx: ChangeContext) -> object:
        step = getattr(self.file.real(self.unit_id), self.phase)
        return step(ctx)


class _Check:
    """``check`` of a restored unit: import it (and check it is unchanged), then run the real
    unit's own check, if it has one."""

    def __init__(self, file: DeferredFile, unit_id: str) -> None:
        self.file, self.unit_id = file, unit_id

    def __call__(self, params: Mapping[str, Any]) -> None:
        check = self.file.real(self.unit_id).check
        if check is not None:
            check(params)
