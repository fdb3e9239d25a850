"""The unit cache: a start-up with nothing new imports no unit file, and notices every change
that would have changed a unit's definition without it."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from flamingock_es.core import changes
from flamingock_es.core.changes import ChangeContext, ChangeUnit
from flamingock_es.definition._speedups.unit_cache import CACHE_FILE
from flamingock_es.definition.settings import ENVIRONMENT
from flamingock_es.definition.workflow import Workflow, load_workflow
from flamingock_es.errors import ConfigError
from flamingock_es.run.planner import Action, make_plan

from .fakes import Journal
from .test_state import started, succeeded

SWITCH = ENVIRONMENT["unit_cache"]
Write = Callable[[str, str], Path]

WORKFLOW = "namespace: shop\nstages: [{name: main, units: [changes]}]\n"

UNITS = textwrap.dedent('''
    from pathlib import Path

    from flamingock_es import change_unit

    with open(Path(__file__).parent.parent / "imports.txt", "a") as f:
        f.write(f"{Path(__file__).name}\\n")  # what the cache must spare a no-op start-up


    def undo_add_tier(ctx):
        ctx.params["calls"].append(("rollback", ctx.unit_id))


    @change_unit(id="add-tier", order=1, author="ana", rollback=undo_add_tier)
    def add_tier(ctx):
        ctx.params["calls"].append(("apply", ctx.unit_id))


    @change_unit(id="seed-plans", order=2, author="bo", run_always=True,
                 parameters={"plans": ["free", "pro"], "limit": 3}, secrets=("token",))
    class SeedPlans:
        def apply(self, ctx):
            ctx.params["calls"].append(("apply", ctx.unit_id))
''')

YAML_UNIT = """
    id: flag-on
    order: 3
    author: cy
    template: python-call
    apply: {function: "json:dumps", args: {obj: 1}}
    rollback: {function: "json:dumps", args: {obj: 0}}
"""


@pytest.fixture(autouse=True)
def _cache_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SWITCH, raising=False)


@pytest.fixture
def project(tmp_path: Path, write: Write) -> Path:
    write("flamingock.yaml", WORKFLOW)
    write("changes/a_units.py", UNITS)
    return tmp_path


def _renamed(units: str, prefix: str) -> str:
    """``UNITS`` as two other units of the same stage: other ids, later orders."""
    return (units.replace('"add-tier", order=1', f'"{prefix}1", order=11')
            .replace('"seed-plans", order=2', f'"{prefix}2", order=12'))


def imports(project: Path) -> list[str]:
    path = project / "imports.txt"
    return path.read_text().splitlines() if path.exists() else []


def start(project: Path) -> Workflow:
    """Load the workflow as a fresh process would: no unit module imported yet."""
    for name in [n for n in sys.modules if n.startswith(("flamingock_units_", "helpers",
                                                          "shoppkg"))]:
        del sys.modules[name]
    importlib.invalidate_caches()
    changes._lines.cache_clear()  # the source lines a process read
    changes._spans.cache_clear()
    return load_workflow(project / "flamingock.yaml")


def described(workflow: Workflow) -> list[tuple[object, ...]]:
    """What planning and the audit read of each unit."""
    return [(u.id, u.order, u.author, u.description, u.run_always, u.recovery,
             u.accept_drift, u.template, u.source, u.checksum, u.rollback is None,
             u.audit_parameters(), u.secrets) for _, u in workflow.units()]


def test_a_no_op_start_up_imports_nothing_and_sees_the_same_units(project: Path) -> None:
    first = start(project)
    assert imports(project) == ["a_units.py"]
    assert (project / CACHE_FILE).exists()

    again = start(project)

    assert imports(project) == ["a_units.py"]
    assert described(again) == described(first)


def test_an_edited_file_is_imported_and_its_drift_refused(project: Path, write: Write) -> None:
    applied = start(project).unit("add-tier")
    assert applied is not None
    journal = Journal()
    journal.run("r1", started("add-tier", checksum=applied.checksum),
                succeeded("add-tier", checksum=applied.checksum))
    source = (project / "changes/a_units.py").read_text()
    write("changes/a_units.py", source.replace('append(("apply", ctx', 'append(("apply!", ctx', 1))

    edited = start(project)

    assert imports(project) == ["a_units.py", "a_units.py"]
    unit = edited.unit("add-tier")
    assert unit is not None
    assert unit.checksum != applied.checksum
    (planned,) = [p for p in make_plan(edited, journal.log.fold()).units
                  if p.unit.id == "add-tier"]
    assert planned.action is Action.BLOCKED
    assert planned.reason == "checksum drift"


def test_a_new_file_is_imported_the_others_are_not(project: Path, write: Write) -> None:
    start(project)
    write("changes/b_more.py", _renamed(UNITS, "b"))

    workflow = start(project)

    assert imports(project) == ["a_units.py", "b_more.py"]
    assert [u.id for _, u in workflow.units()] == ["add-tier", "seed-plans", "b1", "b2"]


def test_a_rollback_written_in_a_helper_is_covered(project: Path, write: Write) -> None:
    write("helpers.py", "def undo(ctx):\n    pass\n")
    write("changes/a_units.py", UNITS.replace(
        "rollback=undo_add_tier", "rollback=__import__('helpers').undo"))
    before = start(project).unit("add-tier")
    write("helpers.py", "def undo(ctx):\n    print('undone')\n")

    after = start(project).unit("add-tier")

    assert imports(project) == ["a_units.py", "a_units.py"]
    assert before is not None
    assert after is not None
    assert after.checksum != before.checksum  # the rollback's text is part of it


def test_a_value_imported_from_a_project_module_is_covered(project: Path, write: Write) -> None:
    write("helpers.py", 'OWNER = "ana"\n')
    write("changes/a_units.py", "from helpers import OWNER\n" + UNITS.replace(
        'author="ana"', "author=OWNER"))
    assert start(project).unit("add-tier").author == "ana"  # type: ignore[union-attr]
    start(project)
    assert imports(project) == ["a_units.py"]
    write("helpers.py", 'OWNER = "bruno"\n')

    assert start(project).unit("add-tier").author == "bruno"  # type: ignore[union-attr]
    assert imports(project) == ["a_units.py", "a_units.py"]


def test_a_value_read_from_the_environment_is_covered(project: Path, write: Write,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write("changes/a_units.py", "import os\n" + UNITS.replace(
        '"limit": 3', '"limit": int(os.environ.get("PLAN_LIMIT", "3"))'))
    monkeypatch.setenv("PLAN_LIMIT", "5")
    assert start(project).unit("seed-plans").parameters["limit"] == 5  # type: ignore[union-attr]
    start(project)
    assert imports(project) == ["a_units.py"]
    monkeypatch.setenv("PLAN_LIMIT", "7")

    assert start(project).unit("seed-plans").parameters["limit"] == 7  # type: ignore[union-attr]
    assert imports(project) == ["a_units.py", "a_units.py"]
    cache = (project / CACHE_FILE).read_text()
    assert "PLAN_LIMIT" in cache
    assert '"7"' not in cache  # the value is kept as a salted digest only


def test_a_variable_a_template_block_resolves_at_run_time_is_not_a_dependency(
        project: Path, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("changes/b_flag.yaml", YAML_UNIT.replace('"json:dumps"', '"${DUMPER}"', 1))
    monkeypatch.setenv("DUMPER", "json:dumps")
    start(project)
    monkeypatch.setenv("DUMPER", "json:loads")  # resolved when the unit runs, not loaded

    start(project)

    assert imports(project) == ["a_units.py"]
    assert "DUMPER" not in json.loads((project / CACHE_FILE).read_text())["environment"]


def test_a_deleted_cache_is_rebuilt(project: Path) -> None:
    start(project)
    (project / CACHE_FILE).unlink()

    start(project)
    start(project)

    assert imports(project) == ["a_units.py", "a_units.py"]
    assert (project / CACHE_FILE).exists()


@pytest.mark.parametrize("damage", [
    b"{not json",
    b'{"identity": 1}',
    b"[]",
    b"",
])
def test_a_damaged_cache_is_ignored_with_a_warning_and_rebuilt(
        project: Path, damage: bytes, caplog: pytest.LogCaptureFixture) -> None:
    start(project)
    (project / CACHE_FILE).write_bytes(damage)

    with caplog.at_level(logging.WARNING, logger="flamingock_es"):
        workflow = start(project)
    start(project)

    assert "ignoring the unit cache, it is damaged" in caplog.text
    assert str(project / CACHE_FILE) in caplog.text
    assert imports(project) == ["a_units.py", "a_units.py"]
    assert [u.id for _, u in workflow.units()] == ["add-tier", "seed-plans"]


def test_a_damaged_entry_is_ignored_with_a_warning(project: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    start(project)
    doc = json.loads((project / CACHE_FILE).read_text())
    (entry,) = doc["files"].values()
    entry["units"][0][1] = "first"  # an order that is not a number
    (project / CACHE_FILE).write_text(json.dumps(doc))

    with caplog.at_level(logging.WARNING, logger="flamingock_es"):
        start(project)

    assert "ignoring its damaged entry" in caplog.text
    assert imports(project) == ["a_units.py", "a_units.py"]


def context(unit: ChangeUnit, calls: list[tuple[str, str]]) -> ChangeContext:
    return ChangeContext("shop", "r1", unit.id, {"calls": calls})


def test_a_restored_unit_imports_its_file_when_it_is_needed(project: Path) -> None:
    start(project)
    workflow = start(project)
    assert imports(project) == ["a_units.py"]
    tier, seed = workflow.unit("add-tier"), workflow.unit("seed-plans")
    assert tier is not None
    assert seed is not None
    assert tier.check is not None
    assert tier.rollback is not None
    assert seed.rollback is None

    tier.check({})  # what the runner calls before it takes the lock
    assert imports(project) == ["a_units.py", "a_units.py"]
    calls: list[tuple[str, str]] = []
    tier.apply(context(tier, calls))
    tier.rollback(context(tier, calls))
    seed.apply(context(seed, calls))

    assert imports(project) == ["a_units.py", "a_units.py"]  # once, for the whole file
    assert calls == [("apply", "add-tier"), ("rollback", "add-tier"), ("apply", "seed-plans")]


def test_a_restored_unit_that_changed_meanwhile_is_refused(project: Path, write: Write) -> None:
    start(project)
    workflow = start(project)
    write("changes/a_units.py", UNITS.replace('author="bo"', 'author="cy"'))
    seed = workflow.unit("seed-plans")
    assert seed is not None
    assert seed.check is not None

    with pytest.raises(ConfigError, match=r"'seed-plans' changed since flamingock-es read it"):
        seed.check({})
    with pytest.raises(ConfigError, match="its author differs"):
        seed.apply(context(seed, []))


def test_yaml_units_are_restored_without_parsing_them(project: Path, write: Write,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write("changes/b_flag.yaml", YAML_UNIT)
    first = start(project)
    parsed: list[Path] = []
    real = importlib.import_module("flamingock_es.definition.loader").load_document
    monkeypatch.setattr("flamingock_es.definition.loader.load_document",
                        lambda path: parsed.append(path) or real(path))

    again = start(project)

    assert parsed == []
    assert described(again) == described(first)
    flag = again.unit("flag-on")
    assert flag is not None
    assert flag.check is not None
    flag.check(flag.parameters)  # the template's own check, after parsing it
    assert parsed == [project / "changes" / "b_flag.yaml"]


def test_parameters_that_json_cannot_hold_keep_their_file_uncached(project: Path,
                                                                   write: Write) -> None:
    write("changes/a_units.py", UNITS.replace('"limit": 3', '"limit": (3, 4)'))
    start(project)
    workflow = start(project)

    assert imports(project) == ["a_units.py", "a_units.py"]
    assert workflow.unit("seed-plans").parameters["limit"] == (3, 4)  # type: ignore[union-attr]


def test_units_in_a_package_are_restored_too(tmp_path: Path, write: Write) -> None:
    write("flamingock.yaml", "namespace: shop\nstages: [{name: main, units: [shoppkg.changes]}]\n")
    write("shoppkg/__init__.py", "")
    write("shoppkg/changes/__init__.py", "")
    write("shoppkg/changes/first.py", UNITS.replace("parent.parent", "parents[2]"))
    write("shoppkg/changes/more/__init__.py", "")
    write("shoppkg/changes/more/second.py",
          _renamed(UNITS, "p").replace("parent.parent", "parents[3]"))
    first = start(tmp_path)
    assert imports(tmp_path) == ["first.py", "second.py"]

    again = start(tmp_path)

    assert imports(tmp_path) == ["first.py", "second.py"]
    assert described(again) == described(first)
    p1 = again.unit("p1")
    assert p1 is not None
    calls: list[tuple[str, str]] = []
    p1.apply(context(p1, calls))
    assert calls == [("apply", "p1")]
    assert imports(tmp_path) == ["first.py", "second.py", "second.py"]


def test_the_cache_can_be_turned_off(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SWITCH, "off")
    start(project)
    start(project)
    assert imports(project) == ["a_units.py", "a_units.py"]
    assert not (project / CACHE_FILE).exists()


def test_a_package_module_that_fails_to_import_is_named(tmp_path: Path, write: Write) -> None:
    write("flamingock.yaml", "namespace: shop\nstages: [{name: main, units: [shoppkg.changes]}]\n")
    write("shoppkg/__init__.py", "")
    write("shoppkg/changes/__init__.py", "")
    path = write("shoppkg/changes/broken.py", "import no_such_module_here\n")

    with pytest.raises(ConfigError, match=f"{path}: importing shoppkg.changes.broken failed: "
                                          "ModuleNotFoundError"):
        start(tmp_path)


REGISTERING = '''
    from pathlib import Path

    from flamingock_es.definition.templates import Template, TemplateParams, register

    with open(Path(__file__).parent.parent / "imports.txt", "a") as f:
        f.write(f"{Path(__file__).name}\\n")


    class EchoParams(TemplateParams):
        text: str


    @register
    class Echo(Template):
        name = "echo-for-the-cache-test"
        Params = EchoParams

        def apply(self, params, ctx):
            ctx.params["calls"].append(("echo", params.text))
'''


def test_a_file_that_registers_a_template_is_imported_on_every_start_up(
        project: Path, write: Write) -> None:
    write("changes/b_templates.py", REGISTERING)
    start(project)  # a cold cache
    start(project)  # warm: a_units.py is restored, b_templates.py imported all the same
    start(project)

    assert imports(project) == ["a_units.py", "b_templates.py", "b_templates.py",
                                "b_templates.py"]
    cache = json.loads((project / CACHE_FILE).read_text())
    marked = {Path(k).name: v for k, v in cache["files"].items() if v == {"import": True}}
    assert marked == {"b_templates.py": {"import": True}}
