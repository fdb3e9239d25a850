"""``undo --to``, ``--count`` and ``--all`` as a user runs them: what is compensated, the
summary line, and the refusals in plain words."""

from __future__ import annotations

import json

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e


def statuses(project: Project) -> dict[str, str]:
    rows = json.loads(project.cli("status", "--json").stdout)["rows"]
    return {row["unit_id"]: row["status"] for row in rows}


def test_count_compensates_the_newest_units_and_says_so(project: Project) -> None:
    ok(project.cli("run"))

    result = ok(project.cli("undo", "--count", "2"))

    assert project.effects()[-2:] == ["rollback u3", "rollback u2"]
    assert result.stdout.startswith("undid 2 unit(s), newest first: u3, u2 (run ")
    assert "compensated 2" in result.stderr  # the progress tells the same story
    assert statuses(project) == {"u1": "APPLIED", "u2": "ROLLED_BACK", "u3": "ROLLED_BACK"}


def test_all_goes_back_to_before_the_first_unit(project: Project) -> None:
    ok(project.cli("run"))
    ok(project.cli("undo", "--count", "1"))

    result = ok(project.cli("undo", "--all"))

    assert project.effects()[-3:] == ["rollback u3", "rollback u2", "rollback u1"]
    assert result.stdout.startswith("undid 2 unit(s), newest first: u2, u1")
    assert set(statuses(project).values()) == {"ROLLED_BACK"}
    again = ok(project.cli("undo", "--all"))
    assert again.stdout.strip() == "nothing to undo: no unit is applied"


def test_a_failed_rollback_ends_the_undo_with_one_clear_line(project: Project) -> None:
    ok(project.cli("run"))
    project.flag("fail-rollback-u2")

    result = ok(project.cli("undo", "--all"), 8)

    assert project.effects()[-1] == "rollback u3"  # u1 was not attempted
    line = result.stdout.strip()
    assert line.startswith("undo FAILED in run ")
    assert "undid 1 unit(s): u3; then the rollback of u2 failed: rollback of u2 boom " \
           "(OSError); not attempted: u1" in line
    assert "FAILED; applied 0, compensated 1" in result.stderr
    refused = ok(project.cli("undo", "--all"), 7)
    assert "cannot undo --all: u2 is ROLLBACK_FAILED, and undo would reach past it" \
        in refused.stderr
    assert "flamingock-es mark u2 --as rolled-back" in refused.stderr


def test_a_unit_without_rollback_is_named_in_plain_words(project: Project) -> None:
    project.write("changes/norollback.py", """\
        from flamingock_es import change_unit


        @change_unit(id="u4", order=4, author="ana")
        def u4(ctx):
            pass
    """)
    ok(project.cli("run"))

    result = ok(project.cli("undo", "--count", "2"), 2)

    assert "cannot undo --count 2: u4 has no rollback" in result.stderr
    assert "ha(s/ve)" not in result.stderr
    assert project.effects()[-1] == "apply u3"  # nothing was compensated


@pytest.mark.parametrize("args", [("--count", "0"), ("--to", "u1", "--all"), ()])
def test_a_scope_is_needed_and_checked(project: Project, args: tuple[str, ...]) -> None:
    ok(project.cli("run"))
    assert ok(project.cli("undo", *args), 2).stderr
    assert "rollback" not in " ".join(project.effects())
