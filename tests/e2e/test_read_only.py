"""A project on a read-only file system, for real (a read-only bind mount: EROFS even as
root): what only speeds things up is skipped, and what must be written says where."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

NEW_UNIT = """\
from flamingock_es import change_unit


@change_unit(id="u4", order=4, author="ana")
def u4(ctx):
    with open("effects.txt", "a") as f:
        f.write("apply u4\\n")
"""


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"mount {' '.join(args)} failed (the fault tests need root, as CI has): "
                    f"{done.stderr.strip()}", pytrace=False)


@pytest.fixture
def read_only(project: Project, tmp_path: Path) -> Iterator[Project]:
    """The project, with a log and a unit it has not applied, seen through a read-only
    bind mount."""
    project.env.pop("FLAMINGOCK_UNIT_CACHE", None)
    ok(project.cli("run"))
    project.write("changes/u4.py", NEW_UNIT)
    (project.path / ".flamingock" / "unit-cache.json").unlink()  # a cache that must be written
    view = tmp_path / "view"
    view.mkdir()
    _mount("--bind", str(project.path), str(view))
    try:
        _mount("-o", "remount,ro,bind", str(view))
        seen = Project(view)
        seen.env = project.env
        yield seen
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_a_cache_that_cannot_be_written_is_skipped_with_one_debug_line(
        read_only: Project) -> None:
    assert ok(read_only.cli("plan")).stderr == ""  # nothing to say: the cache is only speed
    planned = ok(read_only.cli("plan", "-v")).stderr
    said = [line for line in planned.splitlines() if "unit cache" in line]

    assert len(said) == 1, planned
    assert said[0].startswith("DEBUG ")
    assert "cannot write the unit cache" in said[0]
    assert "Read-only file system" in said[0]


def test_a_run_fails_where_the_namespace_must_be_written_with_exit_5_and_the_path(
        read_only: Project) -> None:
    result = ok(read_only.cli("run"), 5)

    assert "Traceback" not in result.stderr
    assert "OSError" not in result.stderr
    assert ".flamingock/shop/" in result.stderr  # the namespace's folder: its lock and log
    assert "Read-only file system" in result.stderr
    assert "apply u4" not in read_only.effects()
