"""Compiles the audit log's hot path with mypyc where it can; pure Python everywhere else.

Everything about the package is in ``pyproject.toml``; this file only adds the optional C
extension. ``pip install .`` and ``pip install -e .`` compile :data:`COMPILED` with mypyc (a
build requirement) and write ``flamingock_es/_compiled.py``, the SHA-256 of each source that
was compiled, so that the package never runs an extension that no longer matches its source
(see ``flamingock_es/compiled.py``). Without a C compiler, if mypyc fails, or with
``FLAMINGOCK_PURE_PYTHON=1`` set at install time, the package installs as pure Python: the
codec then decodes with fastavro, everything else is the same.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup

COMPILED = ["flamingock_es/avro_reader.py"]
ROOT = Path(__file__).resolve().parent
RECORD = ROOT / "flamingock_es" / "_compiled.py"


def extensions() -> list[Any]:
    RECORD.unlink(missing_ok=True)
    if os.environ.get("FLAMINGOCK_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify

        # mypy's own configuration (pyproject.toml) loads the pydantic plugin, which the
        # build environment does not have: these modules need no configuration.
        modules = mypycify(["--config-file=", *COMPILED], opt_level="3")
    except (Exception, SystemExit) as exc:  # no mypyc; or it failed (it exits to report)
        print(f"flamingock-es: not compiling with mypyc ({exc!r}); pure Python",
              file=sys.stderr)
        return []
    for module in modules:
        module.optional = True  # no C compiler: a pure-Python install, not a failed one
    digests = {path.removesuffix(".py").replace("/", "."):
               hashlib.sha256((ROOT / path).read_bytes()).hexdigest() for path in COMPILED}
    RECORD.write_text(
        '"""Written by setup.py: the sources the mypyc extensions were compiled from."""\n\n'
        f"SOURCES = {digests!r}\n")
    return modules


setup(ext_modules=extensions())
