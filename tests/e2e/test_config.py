"""Broken configuration: exit code 2 and a message naming the file and the line."""

from __future__ import annotations

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("name", "text", "where", "what"), [
    ("changes/broken.yaml", "id: broken\norder: 1\napply: {function: x\nauthor: ana\n",
     "broken.yaml:4", "not valid YAML"),
    ("changes/typo.yaml", "id: typo\norder: 1\nauthor: ana\ntemplate: python-call\n"
     "aply: {function: 'json:dumps'}\n", "typo.yaml:5", "unknown field 'aply'"),
    ("changes/tpl.json", '{\n  "id": "t",\n  "order": 1,\n  "author": "ana",\n'
     '  "template": "carrier-pigeon",\n  "apply": {}\n}\n', "tpl.json:5",
     "unknown template 'carrier-pigeon'"),
    ("flamingock.yaml", "namespace: shop\nstages:\n  - name: main\n    units: [changes]\n"
     "colour: blue\n", "flamingock.yaml:5", "unknown key 'colour'"),
    ("changes/drift.yaml", "id: d\norder: 4\nauthor: ana\ntemplate: python-call\n"
     "apply: {function: 'json:dumps'}\naccept_drift: \"false\"\n", "drift.yaml:6",
     "accept_drift must be a boolean (true or false), not 'false' (text)"),
    ("changes/always.py", "from flamingock_es import change_unit\n\n"
     "@change_unit(id='a', order=4, author='ana', run_always='nope')\ndef a(ctx):\n    pass\n",
     "always.py:3", "run_always must be a boolean (true or false), not 'nope'"),
    ("flamingock.yaml", "namespace: shop\nlock_timeout: '60'\nstages:\n  - name: main\n"
     "    units: [changes]\n", "flamingock.yaml:2", "lock_timeout must be a number, not '60'"),
], ids=["yaml-syntax", "unknown-field", "unknown-template", "workflow-key", "quoted-boolean",
        "python-argument", "quoted-number"])
def test_malformed_files_exit_2_naming_file_and_line(project: Project, name: str, text: str,
                                                     where: str, what: str) -> None:
    project.write(name, text)

    for command in ("run", "plan", "status"):
        result = ok(project.cli(command), 2)
        assert where in result.stderr, command
        assert what in result.stderr, command
        assert "Traceback" not in result.stderr
    assert project.effects() == []
    assert not project.log.exists()


def test_a_missing_variable_stops_before_the_unit_runs(project: Project) -> None:
    project.write("changes/call.yaml", """\
        id: u4
        order: 4
        author: ana
        template: python-call
        apply: {function: "${NOT_SET_ANYWHERE}"}
    """)

    result = ok(project.cli("run"), 2)

    assert "call.yaml:1: unit 'u4' uses ${NOT_SET_ANYWHERE}" in result.stderr
    assert project.effects() == []  # checked before anything ran: no half-applied run
    assert not project.log.exists() or project.log.stat().st_size == 0


def test_no_workflow_file_says_how_to_make_one(project: Project) -> None:
    (project.path / "flamingock.yaml").unlink()
    assert "flamingock-es init" in ok(project.cli("run"), 2).stderr
