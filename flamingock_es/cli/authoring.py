"""The commands that write files a person then edits: ``init`` and ``new``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..core.recorder import local_actor
from ..definition.scaffold import new_unit, scaffold, scaffold_namespace
from ..definition.signing import set_up_signing
from .output import print_json, workflow

__all__ = ["register"]


def cmd_init(args: argparse.Namespace) -> int:
    """Create a flamingock.yaml, a changes/ folder with an example unit of each kind, and the
    runner's signing key with its trust entry, so the project is signed from its first event.

    The private key goes to .flamingock/keys/ (mode 0600, ignored by .gitignore), its public
    key and trust entry to trust/ (commit and publish those). --unsigned skips the key."""
    directory = Path(args.directory)
    created = scaffold(directory)
    keys = [] if args.unsigned else set_up_signing(directory, scaffold_namespace(directory))
    if args.json:
        print_json({"created": [str(path) for path in [*created, *keys]],
                    "signed": not args.unsigned})
        return 0
    for path in created:
        print(f"created {path}")
    for path in keys:
        print(f"wrote {path}")
    if not args.unsigned:
        print("signed: every append is signed with the runner's key; `flamingock-es verify` "
              "checks it (docs/compliance.md)")
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
    p.add_argument("--unsigned", action="store_true",
                   help="no signing key (anyone with write access to the log could then "
                        "append to it unnoticed)")
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
