"""The fields every ChangeUnit has, however it is written, validated strictly.

:class:`UnitFields` is what ``@change_unit(...)`` checks its arguments against, and what the
model of a YAML/JSON unit file (:mod:`flamingock_es.definition.models`) builds on: one
definition of what ``order`` or ``run_always`` may be, whoever writes it. Imported only when
a unit is defined (its file imported), never by a start-up the unit cache serves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from ..errors import ConfigError
from .strict import StrictModel, problem_text

__all__ = ["RECOVERIES", "PythonUnitArguments", "UnitFields", "check_arguments"]

RECOVERIES = ("manual-intervention", "always-retry")

RecoveryName = Literal["manual-intervention", "always-retry"]


class UnitFields(StrictModel):
    """What identifies a unit, orders it, and says how it recovers."""

    id: str = Field(min_length=1, description="Unique in the namespace; its identity in the "
                    "audit log (renaming it makes another unit).")
    order: int = Field(description="Its place in its stage: units of a stage run in "
                       "ascending order, and two may not share one.")
    author: str = Field(min_length=1, description="Who wrote it; in its checksum.")
    description: str = Field("", description="One sentence on what it changes.")
    run_always: bool = Field(False, description="Apply it on every run, not once.")
    recovery: RecoveryName = Field(
        "manual-intervention", description="After a failure or a crash mid-change: "
        "manual-intervention (a person decides) or always-retry.")
    accept_drift: bool = Field(False, description="Accept that its definition changed "
                               "after it was applied (recorded as a manual mark).")
    secrets: list[str] = Field(default_factory=list, description="More parameter names "
                               "whose values are written as *** in the audit log.")
    requires: list[str] = Field(default_factory=list, description="Ids of the units that "
                                "must be applied before it, in its stage or an earlier one.")
    when: str | None = Field(None, min_length=1, description="A CEL condition over env, "
                             "labels, settings and units: false, the unit is skipped this run "
                             "(and looked at again on the next).")
    on_fail: Literal["halt", "skip", "mark-applied"] = Field(
        "halt", description="What a precondition that does not hold does: halt the run, skip "
        "the unit this run, or count it as applied without running it.")


class PythonUnitArguments(UnitFields):
    """``@change_unit``'s arguments: the fields, and what only Python can give."""

    rollback: Callable[..., Any] | None = None
    parameters: Mapping[str, Any] | None = None
    precondition: Callable[..., Any] | None = None


def check_arguments(where: str, arguments: Mapping[str, Any]) -> None:
    """Refuse ``@change_unit`` arguments that are not what they say (``order="13"``,
    ``run_always="nope"``); the error names ``where`` (the decorator's file:line)."""
    given = dict(arguments)
    if isinstance(given.get("recovery"), str):  # a Recovery is a str: check its value
        given["recovery"] = str(given["recovery"])
    for name in ("secrets", "requires"):
        if isinstance(given.get(name), tuple):  # the signature's type; a list is as good
            given[name] = list(given[name])
    try:
        PythonUnitArguments.model_validate(given)
    except ValidationError as exc:
        problems = [problem_text(err, "argument", path=[str(p) for p in err["loc"]],
                                 secret=err["loc"][:1] == ("parameters",))
                    for err in exc.errors()]
        raise ConfigError(f"{where}: change_unit(...): " + "; ".join(problems)) from exc
