"""Example 1, end to end on the embedded default: ``python examples/release_1/demo.py``.

Starts the local flag service, seeds the document store, then runs the release exactly as a
user would: ``flamingock-es run``, a second ``run`` (nothing to do), ``status``, ``history``,
``verify``, then projects the audit state into a SQLite store and reads it back with
``state``. Everything it writes lives in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from docstore import documents, seed  # noqa: E402
from flag_service import FlagService  # noqa: E402


def cli(*args: str, env: dict[str, str]) -> None:
    print(f"\n$ flamingock-es {' '.join(args)}", flush=True)
    bus = [] if args[0] in ("state", "keys", "verify-proof") else \
        ["--bus", env["FLAMINGOCK_EXAMPLE_BUS"]]
    command = [sys.executable, "-m", "flamingock_es.cli", *args, "-c",
               env["FLAMINGOCK_EXAMPLE_PROJECT"], *bus]
    subprocess.run(command, env=env, check=False)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="flamingock-example-") as tmp:
        release(Path(tmp))


def release(workdir: Path) -> None:
    project = workdir / "release_1"  # a copy, signed by its own new key: signed by default
    shutil.copytree(HERE, project, ignore=shutil.ignore_patterns("__pycache__", ".flamingock"))
    db = str(workdir / "shop.db")
    seed(db, "users", {"u1": {"name": "Ada"}, "u2": {"name": "Grace"}, "u3": {"name": "Linus"}})
    with FlagService(token="s3cret") as flags:
        env = {**os.environ, "DOCSTORE_DB": db, "FLAGS_URL": flags.url, "FLAGS_TOKEN": "s3cret",
               "FLAMINGOCK_EXAMPLE_BUS": f"local:{workdir / '.flamingock'}",
               "FLAMINGOCK_EXAMPLE_PROJECT": str(project)}
        print(f"flag service on {flags.url}; document store {db}")
        cli("keys", "init", env=env)
        cli("run", env=env)
        cli("run", env=env)
        cli("status", env=env)
        cli("history", env=env)
        cli("verify", env=env)
        proof = str(workdir / "u002.proof.json")
        cli("prove", "enable-new-checkout", "-o", proof, env=env)
        cli("verify-proof", proof, env=env)
        cli("project", "--once", "--store", f"sqlite:{workdir / 'projections.db'}", env=env)
        cli("state", "--store", f"sqlite:{workdir / 'projections.db'}", env=env)
        print("\nusers now:", documents(db, "users"))
        print("flags now:", flags.flags, "config now:", flags.config)
    print("\nThe audit log, the document store and the projections were in a temporary "
          "directory, now removed; run `flamingock-es init` for a project of your own.")


if __name__ == "__main__":
    main()
