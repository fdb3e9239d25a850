"""Checksums: what counts as a changed definition, and what does not."""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from flamingock_es.core.changes import ChangeUnit
from flamingock_es.core.state import UnitStatus
from flamingock_es.definition.loader import load_units
from flamingock_es.definition.workflow import Workflow
from flamingock_es.run.planner import Action, make_plan

from .fakes import Journal
from .test_state import started, succeeded

Write = Callable[[str, str], Path]

UNIT = '''
    from flamingock_es import change_unit


    def drop_tier(ctx):
        ctx.log.info("dropping tier")


    @change_unit(id="add-tier", order=1, author="ana", description="adds tier",
                 rollback=drop_tier, parameters={"field": "tier"})
    def add_tier(ctx):
        total = 0
        for row in range(3):
            total += row
        ctx.log.info("added tier %s", total)
'''

CLASS_UNIT = '''
    from flamingock_es import change_unit


    @change_unit(id="seed", order=1, author="ana")
    class Seed:
        def apply(self, ctx):
            ctx.log.info("seeding")

        def rollback(self, ctx):
            ctx.log.info("unseeding")
'''

YAML_UNIT = '''
    id: flag-on
    order: 1
    author: ana
    template: python-call
    apply: {function: "json:dumps", args: {obj: 1, indent: 2}}
'''

_dirs = itertools.count()


@pytest.fixture
def load(tmp_path: Path, write: Write) -> Callable[..., ChangeUnit]:
    """Load one unit from ``text``, each time from a fresh folder (a fresh checkout)."""

    def load(text: str, *edits: tuple[str, str], name: str = "u.py") -> ChangeUnit:
        text = textwrap.dedent(text)
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new)
        folder = f"v{next(_dirs)}"
        write(f"{folder}/{name}", text)
        (unit,) = load_units(folder, tmp_path)
        return unit

    return load


def test_checksum_is_a_stable_sha256(load: Callable[..., ChangeUnit]) -> None:
    first, second = load(UNIT), load(UNIT)
    assert first.checksum == second.checksum
    assert re.fullmatch(r"[0-9a-f]{64}", first.checksum), first.checksum  # SHA-256, in hex
    assert first.source != second.source  # where it lives is not part of it


@pytest.mark.parametrize("edit", [
    ("total += row", "total += row * 2"),
    ('"added tier %s"', '"added the tier %s"'),
    ('ctx.log.info("dropping tier")', 'ctx.log.info("dropping the tier")'),
    ('author="ana"', 'author="bo"'),
    ('description="adds tier"', 'description="adds the tier"'),
    ("order=1", "order=2"),
    ('parameters={"field": "tier"}', 'parameters={"field": "plan"}'),
    ("rollback=drop_tier, ", ""),
], ids=["code", "string-in-code", "rollback-code", "author", "description", "order",
        "parameters", "rollback-removed"])
def test_checksum_changes_with_the_definition(load: Callable[..., ChangeUnit],
                                              edit: tuple[str, str]) -> None:
    assert load(UNIT, edit).checksum != load(UNIT).checksum


def test_checksum_ignores_whitespace_at_line_ends(load: Callable[..., ChangeUnit]) -> None:
    padded = "\n".join(line + "   \t" if line.strip() else line for line in UNIT.splitlines())
    assert load(padded).checksum == load(UNIT).checksum


def test_checksum_ignores_code_outside_the_unit(load: Callable[..., ChangeUnit]) -> None:
    extra = textwrap.dedent(UNIT) + "\n\ndef unrelated_helper():\n    return 1\n"
    assert load(extra).checksum == load(UNIT).checksum


@pytest.mark.parametrize("edit", [
    ('ctx.log.info("seeding")', 'ctx.log.info("seeding more")'),
    ('ctx.log.info("unseeding")', 'ctx.log.info("unseeding more")'),
    ('author="ana"', 'author="bo"'),
])
def test_class_units_cover_the_whole_class(load: Callable[..., ChangeUnit],
                                           edit: tuple[str, str]) -> None:
    assert load(CLASS_UNIT).checksum == load(CLASS_UNIT).checksum
    assert load(CLASS_UNIT, edit).checksum != load(CLASS_UNIT).checksum


def test_yaml_checksum_follows_the_values_not_the_layout(load: Callable[..., ChangeUnit]
                                                        ) -> None:
    base = load(YAML_UNIT, name="u.yaml")
    reformatted = load(YAML_UNIT, ('apply: {function: "json:dumps", args: {obj: 1, indent: 2}}',
                                   "apply:\n  args:\n    indent: 2\n    obj: 1\n"
                                   "  function: json:dumps   "), name="u.yaml")
    changed = load(YAML_UNIT, ("indent: 2", "indent: 4"), name="u.yaml")
    assert reformatted.checksum == base.checksum
    assert changed.checksum != base.checksum


def test_identity_is_the_id_alone(load: Callable[..., ChangeUnit]) -> None:
    """A changed author is drift of the same unit, never a new unit that runs again."""
    applied = load(UNIT)
    edited = load(UNIT, ('author="ana"', 'author="bo"'))
    journal = Journal()
    journal.run("r1", started("add-tier", checksum=applied.checksum),
                succeeded("add-tier", checksum=applied.checksum))
    state = journal.log.fold()

    (before,) = make_plan(Workflow.of("shop", {"main": [applied]}), state).units
    (after,) = make_plan(Workflow.of("shop", {"main": [edited]}), state).units

    assert before.action is Action.SKIP
    assert after.action is Action.BLOCKED
    assert after.reason == "checksum drift"
    assert after.previous is not None
    assert after.previous.status is UnitStatus.APPLIED
    assert edited.id == applied.id
    assert edited.checksum != applied.checksum
