"""Files a person starts from: ``init`` (a workflow file and one example unit of each kind)
and ``new`` (the next unit of a stage, from a template or in Python)."""

from __future__ import annotations

import json
import re
import textwrap
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .settings import Settings
from .workflow import Stage, Workflow

if TYPE_CHECKING:
    from .templates import Template

__all__ = ["new_unit", "scaffold", "scaffold_namespace", "slug_of"]

_WORKFLOW = """\
# flamingock-es workflow: see docs/concepts.md
namespace: {namespace}
bus: local:.flamingock            # kafka://127.0.0.1:19092 for the real thing
stages:
  - name: main
    units: [changes]
"""

_PY_UNIT = '''\
"""An example ChangeUnit in Python."""

from flamingock_es import ChangeContext, change_unit


def undo_hello(ctx: ChangeContext) -> None:
    ctx.log.info("compensating %s", ctx.unit_id)


@change_unit(id="hello-python", order=1, author="you", rollback=undo_hello,
             description="Replace with your first real change.")
def hello(ctx: ChangeContext) -> None:
    ctx.log.info("hello from %s in run %s", ctx.unit_id, ctx.run_id)
'''

_YAML_UNIT = """\
# An example declarative ChangeUnit: a template plus its apply and rollback blocks.
id: hello-yaml
order: 2
author: you
description: Calls a Python function through the python-call template.
template: python-call
apply:
  function: changes._steps:greet
  args: {name: "${USER:-world}"}     # resolved from the environment when the unit runs
rollback:
  function: changes._steps:farewell
  args: {name: "${USER:-world}"}
"""

_STEPS = '''\
"""Functions the YAML units call through python-call (files starting with _ hold no units)."""

from flamingock_es import ChangeContext


def greet(ctx: ChangeContext, name: str) -> None:
    ctx.log.info("hello, %s, from %s", name, ctx.unit_id)


def farewell(ctx: ChangeContext, name: str) -> None:
    ctx.log.info("goodbye, %s, from %s", name, ctx.unit_id)
'''


def scaffold_namespace(directory: Path) -> str:
    """The namespace ``init`` gives a project: its folder's name."""
    return directory.resolve().name or "default"


def scaffold(directory: Path) -> list[Path]:
    """Write the files; refuse to overwrite anything."""
    files = {
        directory / "flamingock.yaml": _WORKFLOW.format(namespace=scaffold_namespace(directory)),
        directory / "changes" / "u001_hello.py": _PY_UNIT,
        directory / "changes" / "u002_hello.yaml": _YAML_UNIT,
        directory / "changes" / "_steps.py": _STEPS,
    }
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise ConfigError(f"init would overwrite {', '.join(existing)}; nothing was written")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)


# `flamingock-es new`: the next unit of a stage --------------------------------------------

_NOTE = ("Created by `flamingock-es new`. Its checksum covers the id, order, author, "
         "description and {what}: edit freely until it is applied; after that, write a new "
         "unit instead (a changed applied unit is refused as drift).")

_SKELETONS = {
    "http-request": """\
apply:
  method: PUT
  url: "${SERVICE_URL}/replace/me"
  headers: {Authorization: "Bearer ${SERVICE_TOKEN}"}
  json: {enabled: true}
rollback:
  method: PUT
  url: "${SERVICE_URL}/replace/me"
  headers: {Authorization: "Bearer ${SERVICE_TOKEN}"}
  json: {enabled: false}
""",
    "kafka-topic": """\
apply: {topic: replace-me, action: create, partitions: 1, replication_factor: 1}
rollback: {topic: replace-me, action: delete}
""",
    "couchbase-document": """\
apply: {action: upsert, key: "replace::me", document: {created_by: flamingock-es}}
rollback: {action: delete, key: "replace::me"}
""",
    "python-call": """\
apply: {function: "replace.me:change", args: {}}
rollback: {function: "replace.me:undo_change", args: {}}
""",
}

_PY_SKELETON = '''\
"""{description}

{note}
"""

from flamingock_es import ChangeContext, change_unit
from flamingock_es.errors import StepNotStarted


def rollback_{name}(ctx: ChangeContext) -> None:
    """Undo what the apply step did: a later unit of the run failed, or `undo` asked."""
    raise NotImplementedError("{unit_id}: write its rollback, or remove it")


@change_unit(id="{unit_id}", order={order}, author="{author}", rollback=rollback_{name},
             description={literal})
def apply_{name}(ctx: ChangeContext) -> None:
    # A skeleton must not be recorded as applied: nothing was changed, the next run retries.
    raise StepNotStarted("{unit_id} is a skeleton: write its apply step")
'''


def slug_of(name: str) -> str:
    """``"Enable new checkout!"`` -> ``enable_new_checkout``: a file name and Python name.
    Letters with accents keep their letter (``"Añadir índice"`` -> ``anadir_indice``): NFKD
    splits each into its ASCII letter and its marks, and the marks are left out."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    if not slug or slug[0].isdigit():
        raise ConfigError(f"new: {name!r} gives no usable name; start it with a letter")
    return slug


def new_unit(workflow: Workflow, name: str, *, template: str | None, author: str,
             stage: str | None = None, unit_id: str | None = None,
             description: str = "") -> Path:
    """Write the skeleton of the next unit of ``stage`` (default: the last one) in the stage's
    folder: ``uNNN_<slug>.yaml`` through ``template``, else ``uNNN_<slug>.py``; ``NNN`` is
    its order, one past the stage's highest. Refuses to overwrite a file or reuse an id."""
    slug = slug_of(name)
    unit_id = unit_id or slug.replace("_", "-")
    target = _stage(workflow, stage)
    if (existing := workflow.unit(unit_id)) is not None:
        raise ConfigError(f"new: unit id {unit_id!r} is taken ({existing.source}); give "
                          "another name or --id")
    order = max((u.order for u in target.units), default=0) + 1
    folder = _folder(workflow.settings, target.name)
    if template is None:
        path = folder / f"u{order:03d}_{slug}.py"
        text = _PY_SKELETON.format(description=_oneline(description or f"{name}."),
                                   literal=repr(_oneline(description)),
                                   note=_note("the source of both functions"),
                                   name=slug, unit_id=unit_id, order=order, author=author)
    else:
        path = folder / f"u{order:03d}_{slug}.yaml"
        text = _yaml_unit(template, unit_id, order, author, description or name)
    if path.exists():
        raise ConfigError(f"new: {path} exists; nothing was written")
    path.write_text(text)
    return path


def _stage(workflow: Workflow, name: str | None) -> Stage:
    if not workflow.stages:
        raise ConfigError(f"{workflow.source}: no stages to add a unit to")
    if name is None:
        return workflow.stages[-1]
    for stage in workflow.stages:
        if stage.name == name:
            return stage
    raise ConfigError(f"new: no stage {name!r} in {workflow.source}; stages: "
                      f"{', '.join(s.name for s in workflow.stages)}")


def _folder(settings: Settings, stage: str) -> Path:
    """The first folder the stage takes its units from."""
    source = next(s for s in settings.stages if s.name == stage)
    for entry in source.units:
        if (settings.base / entry).is_dir():
            return settings.base / entry
    raise ConfigError(f"{source.where}: stage {stage!r} takes no folder of units (only files "
                      "or packages); add a folder to its units, or write the unit by hand")


def _yaml_unit(template_name: str, unit_id: str, order: int, author: str,
               description: str) -> str:
    from .templates import get_template  # pydantic: only a template unit needs it

    template = get_template(template_name, "new --template")
    blocks = _SKELETONS.get(template.name) or _required_fields(template)
    note = "\n".join(f"# {line}" for line in
                     _note(f"the {template.name} blocks").splitlines())
    return (f"{note}\nid: {unit_id}\norder: {order}\nauthor: {json.dumps(author)}\n"
            f"description: {json.dumps(_oneline(description))}\n"
            f"template: {template.name}\n{blocks}")


def _required_fields(template: Template) -> str:
    """A block naming the template's required fields, for a template without a skeleton."""
    fields = [n for n, f in template.Params.model_fields.items() if f.is_required()]
    body = "".join(f"  {name}: TODO\n" for name in fields) or "  {}\n"
    return f"# fill in the fields of template {template.name!r}\napply:\n{body}"


def _note(what: str) -> str:
    return textwrap.fill(_NOTE.format(what=what), 88)


def _oneline(text: str) -> str:
    return " ".join(text.split()).replace('"', "'")
