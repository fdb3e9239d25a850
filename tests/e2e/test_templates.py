"""Custom templates as a user registers them: through ``templates:`` in the workflow file, or
in a Python file among the units; either way a warm unit cache never loses them."""

from __future__ import annotations

import json

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

TEMPLATE = '''\
from flamingock_es.definition.templates import Template, TemplateParams, register


class NoteParams(TemplateParams):
    text: str


@register
class Note(Template):
    """Writes a line to effects.txt: a stand-in for a call to a real service."""

    name = "note"
    Params = NoteParams

    def apply(self, params, ctx):
        with open("effects.txt", "a") as f:
            f.write(f"note {params.text}\\n")
'''

UNIT = """\
id: {id}
order: {order}
author: ana
template: note
apply: {{text: {id}}}
"""

WORKFLOW = """\
namespace: shop
templates: [{module}]
stages:
  - name: main
    units: [changes]
"""


@pytest.mark.parametrize("module", ["shop_templates", "lib/note_template.py"],
                         ids=["dotted-name", "file"])
def test_a_template_named_under_templates_runs_with_a_cold_and_a_warm_cache(
        project: Project, module: str) -> None:
    project.env.pop("FLAMINGOCK_UNIT_CACHE", None)
    project.write("shop_templates.py" if module == "shop_templates" else module, TEMPLATE)
    project.write("flamingock.yaml", WORKFLOW.format(module=module))
    project.write("changes/u4.yaml", UNIT.format(id="u4", order=4))

    ok(project.cli("plan", "--check"))  # a cold cache: everything imported, then kept
    ok(project.cli("run"))
    project.write("changes/u5.yaml", UNIT.format(id="u5", order=5))
    ok(project.cli("plan"))
    ok(project.cli("run"))  # a warm cache: u4 restored, u5 read, the template imported

    assert [e for e in project.effects() if e.startswith("note")] == ["note u4", "note u5"]


def test_a_units_file_that_registers_a_template_is_never_skipped_by_the_cache(
        project: Project) -> None:
    project.env.pop("FLAMINGOCK_UNIT_CACHE", None)
    project.write("changes/a_templates.py", TEMPLATE)  # sorted before the unit using it
    project.write("changes/u4.yaml", UNIT.format(id="u4", order=4))

    ok(project.cli("plan"))  # writes the cache: until now, without a_templates.py's templates
    result = ok(project.cli("run"))

    assert "main/u4 (pending) ... applied" in result.stderr
    assert "note u4" in project.effects()
    cache = json.loads((project.path / ".flamingock" / "unit-cache.json").read_text())
    (entry,) = [v for k, v in cache["files"].items() if k.endswith("a_templates.py")]
    assert entry == {"import": True}


def test_an_unknown_template_names_both_ways_to_register_one(project: Project) -> None:
    project.write("changes/u4.yaml", UNIT.format(id="u4", order=4))

    result = ok(project.cli("plan"), 2)

    assert "u4.yaml:4: unknown template 'note'" in result.stderr
    assert "`templates:` in the workflow file" in result.stderr
    assert "'flamingock_es.templates' entry point" in result.stderr


def test_a_templates_module_that_cannot_be_imported_is_named_at_its_line(
        project: Project) -> None:
    project.write("flamingock.yaml", WORKFLOW.format(module="no_such_templates"))

    result = ok(project.cli("run"), 2)

    assert "flamingock.yaml:2: the templates module 'no_such_templates' cannot be found" \
        in result.stderr
    assert "Traceback" not in result.stderr
    assert project.effects() == []
