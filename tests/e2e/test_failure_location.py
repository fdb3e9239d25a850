"""A failing Python unit says where it failed: its own file and line, everywhere it is shown.

The terminal, ``status``, ``history --json`` and the HTML report all name the line of the
unit's code that raised (not a line of flamingock-es); ``-v`` prints the whole traceback.
"""

from __future__ import annotations

import json

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

BROKEN = '''\
from flamingock_es import change_unit


def _lookup(config):
    return config["missing"]


@change_unit(id="broken", order=4, author="ana")
def broken(ctx):
    _lookup({})
'''


def test_a_failing_unit_names_its_own_line_everywhere(project: Project) -> None:
    project.write("changes/zz_broken.py", BROKEN)
    project.flag("fail-rollback-u3")  # its compensation fails too: where is that?
    units = (project.path / "changes" / "units.py").read_text().splitlines()
    rollback_line = next(i for i, line in enumerate(units, 1) if "raise OSError" in line)
    where = "changes/zz_broken.py:5"
    rollback_where = f"changes/units.py:{rollback_line}"

    result = ok(project.cli("run"), 8)

    assert f"KeyError: 'missing' (at {where})" in result.stderr
    assert f"OSError: rollback of u3 boom (at {rollback_where})" in result.stderr
    assert "Traceback" not in result.stderr  # without -v, one line each
    status = ok(project.cli("status"), 7)
    assert f"(at {where})" in status.stdout
    assert f"(at {rollback_where})" in status.stdout
    events = json.loads(ok(project.cli("history", "--json")).stdout)
    failed = [e["payload"] for e in events if e["payload"]["type"] == "ChangeFailed"]
    assert [f["error"]["where"] for f in failed] == [where]
    compensation = [e["payload"] for e in events
                    if e["payload"]["type"] == "CompensationFailed"]
    assert [c["error"]["where"] for c in compensation] == [rollback_where]
    ok(project.cli("replay", "--format", "html", "-o", "report.html"))
    html = (project.path / "report.html").read_text()
    assert f"(at {where})" in html
    assert f"(at {rollback_where})" in html


def test_verbose_shows_the_traceback_of_the_unit(project: Project) -> None:
    project.write("changes/zz_broken.py", BROKEN)

    result = ok(project.cli("run", "-v"), 8)

    assert "the apply of broken raised:" in result.stderr
    assert "Traceback (most recent call last):" in result.stderr
    assert 'zz_broken.py", line 10, in broken' in result.stderr
    assert 'zz_broken.py", line 5, in _lookup' in result.stderr
