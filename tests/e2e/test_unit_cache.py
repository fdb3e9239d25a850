"""The unit cache as a user meets it: a no-op start-up imports no unit file, a unit that runs
again is imported for its run, and a lost or damaged cache only costs one slower start-up."""

from __future__ import annotations

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

NOTED = '''\
from flamingock_es import change_unit

with open("effects.txt", "a") as f:
    f.write("import {name}\\n")  # a side effect of importing this file


@change_unit(id="{name}", order={order}, author="ana", run_always={always})
def {name}(ctx):
    with open("effects.txt", "a") as f:
        f.write("apply {name}\\n")
'''

CACHE = ".flamingock/unit-cache.json"
APPLIED_ALL = ["start u1", "apply u1", "start u2", "apply u2", "start u3", "apply u3"]


@pytest.fixture
def noted(project: Project) -> Project:
    """u1..u3, a unit ``quiet`` applied once, and a run-always unit ``always``; each file
    notes in effects.txt when it is imported."""
    project.env.pop("FLAMINGOCK_UNIT_CACHE", None)
    project.write("changes/quiet.py", NOTED.format(name="quiet", order=4, always=False))
    project.write("changes/v_always.py", NOTED.format(name="always", order=5, always=True))
    ok(project.cli("run"))
    assert project.effects() == ["import quiet", "import always", *APPLIED_ALL, "apply quiet",
                                 "apply always"]
    project.path.joinpath("effects.txt").unlink()
    return project


def test_a_no_op_start_up_imports_only_what_runs(noted: Project) -> None:
    ok(noted.cli("run"))
    ok(noted.cli("plan"))
    ok(noted.cli("status"))

    # units.py (u1..u3) and quiet.py were not imported; v_always.py only for its run
    assert noted.effects() == ["import always", "apply always"]


def test_an_edited_file_is_imported_again(noted: Project) -> None:
    quiet = noted.path / "changes" / "quiet.py"
    quiet.write_text(quiet.read_text() + "\n# reviewed\n")  # not in the unit: no drift

    ok(noted.cli("run"))

    assert noted.effects() == ["import quiet", "import always", "apply always"]


def test_a_deleted_cache_is_rebuilt(noted: Project) -> None:
    (noted.path / CACHE).unlink()

    ok(noted.cli("run"))
    ok(noted.cli("run"))

    assert noted.effects() == ["import quiet", "import always", "apply always",
                               "import always", "apply always"]
    assert (noted.path / CACHE).exists()


def test_a_damaged_cache_is_ignored_with_a_warning(noted: Project) -> None:
    (noted.path / CACHE).write_text('{"files": ')

    warned = ok(noted.cli("run"))
    ok(noted.cli("run"))

    assert "ignoring the unit cache, it is damaged" in warned.stderr
    assert "Traceback" not in warned.stderr
    assert noted.effects() == ["import quiet", "import always", "apply always",
                               "import always", "apply always"]
