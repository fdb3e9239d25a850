"""The commands that write files a person then edits: ``init`` and ``new``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.recorder import local_actor
from ..definition.scaffold import new_unit, scaffold
from .output import print_json, workflow

__all__ = ["register"]


def cmd_init(args: argparse.Namespace) -> int:
    """Create a flamingock.yaml and a changes/ folder with an example unit of each kind."""
    created = scaffold(Path(args.directory))
    if args.json:
        print_json({"created": [str(path) for path in created]})
        return 0
    for path in created:
        print(f"created {path}")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    """Create the next unit of a stage, from a template or in Python (like `alembic revision`).

    Writes uNNN_<slug>.yaml through a template (--template), else uNNN_<slug>.py, in the
    stage's folder; NNN is its order, one past the stage's highest. Never overwrites a file
    or reuses an id."""
    wf = workflow(args)
    path = new_unit(wf, args.name, template=args.template, stage=args.stage, unit_id=args.id,
                    author=args.author or local_actor(principal=wf.settings.principal).principal,
                    description=args.description or "")
    if args.json:
        print_json({"created": str(path)})
    else:
        print(f"created {path}")
    return 0


def register(add: Any) -> None:
    """Add the authoring commands through ``add(name, handler) -> parser``."""
    p = add("init", cmd_init)
    p.add_argument("directory", nargs="?", default=".",
                   help="where to create the project (default: here)")
    p = add("new", cmd_new)
    p.add_argument("name", help="what the unit does, in a few words; it gives the file name "
                                "(uNNN_<slug>) and the default id")
    p.add_argument("--template", metavar="NAME",
                   help="a template unit in YAML (http-request, kafka-topic, "
                        "couchbase-document, python-call, or a registered one) with a skeleton "
                        "block; default: a Python unit")
    p.add_argument("--stage", help="the stage to add it to (default: the last one)")
    p.add_argument("--id", help="the unit id (default: the name, in-words-like-this)")
    p.add_argument("--author",
                   help="the author (default: FLAMINGOCK_PRINCIPAL or the OS user)")
    p.add_argument("--description", help="one sentence for the unit's description")
