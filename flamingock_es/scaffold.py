"""``flamingock-es init``: a workflow file and one example unit of each kind."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

__all__ = ["scaffold"]

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


def scaffold(directory: Path) -> list[Path]:
    """Write the files; refuse to overwrite anything."""
    files = {
        directory / "flamingock.yaml": _WORKFLOW.format(namespace=directory.resolve().name
                                                        or "default"),
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
