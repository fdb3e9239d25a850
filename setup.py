"""Which packages the distribution holds, and the optional mypyc build of the log's decoder.

Everything else about the package is in ``pyproject.toml``. This file says two things that
static configuration cannot:

* **Where the read side and the contract come from.** ``projections/`` and ``schemas/`` sit
  at the top of the repository (the project's layout names them) and are installed as
  ``flamingock_es.projections`` and ``flamingock_es.schemas`` through setuptools'
  ``package_dir``: the same mapping serves wheels and editable installs, with no link in the
  tree.
* **Whether to compile.** A plain ``pip install .`` is pure Python and needs no C compiler.
  ``FLAMINGOCK_COMPILE=1 pip install .`` (or ``-e .``) also compiles :data:`COMPILED` with
  mypyc, which setuptools then installs into the build environment, and writes
  ``_compiled.py`` beside the extension: the SHA-256 of the source it was built from, so
  that the package never runs an extension that no longer matches its source
  (``flamingock_es/core/_speedups/compiled.py``). If mypyc or the C compiler fails, the
  install is pure Python all the same. What the extension buys is measured in
  ``bench/README.md``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

COMPILED = ["flamingock_es/core/_speedups/avro_reader.py"]
RECORD = "_compiled.py"
COMPILE = os.environ.get("FLAMINGOCK_COMPILE", "") not in ("", "0")

PACKAGES = [
    *find_packages(include=["flamingock_es", "flamingock_es.*"]),
    "flamingock_es.projections",
    *(f"flamingock_es.projections.{name}" for name in find_packages("projections")),
    "flamingock_es.schemas",
]
PACKAGE_DIR = {"flamingock_es.projections": "projections", "flamingock_es.schemas": "schemas"}


def extensions() -> list[Any]:
    if not COMPILE:
        return []
    try:
        from mypyc.build import mypycify

        # Not mypy's configuration for the project (pyproject.toml: the pydantic plugin, the
        # whole package): the build environment has none of the package's dependencies, and
        # the compiled module imports none of them.
        modules = mypycify(["--config-file=", "--follow-imports=silent",
                            "--ignore-missing-imports", *COMPILED], opt_level="3")
    except (Exception, SystemExit) as exc:  # no mypyc; or it failed (it exits to report)
        print(f"flamingock-es: not compiling with mypyc ({exc!r}); pure Python",
              file=sys.stderr)
        return []
    for module in modules:
        module.optional = True  # no C compiler: a pure-Python install, not a failed one
    return modules


class BuildExtRecordingSources(build_ext):  # type: ignore[misc]
    """``build_ext`` that also records what its extensions were compiled from, beside them
    (in the source tree for an editable install, in the wheel otherwise)."""

    def run(self) -> None:
        super().run()
        for source in COMPILED:  # all in one folder: one record
            name = source.removesuffix(".py").replace("/", ".")
            extension = Path(self.get_ext_fullpath(name))  # in the tree when inplace
            record = extension.parent / RECORD
            if not extension.exists():  # optional, and not built: pure Python
                record.unlink(missing_ok=True)
                continue
            digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
            record.write_text(
                '"""Written by setup.py: the sources the mypyc extensions beside it were '
                f'compiled from."""\n\nSOURCES = {{{name!r}: {digest!r}}}\n')


class BuildPyWithoutRecord(build_py):  # type: ignore[misc]
    """``build_py`` that leaves out a record an editable install left in the tree: only the
    ``build_ext`` that built the extensions writes one."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, ...]]:
        modules: list[tuple[str, ...]] = super().find_package_modules(package, package_dir)
        return [m for m in modules if m[1] != RECORD.removesuffix(".py")]


setup(packages=PACKAGES, package_dir=PACKAGE_DIR, ext_modules=extensions(),
      setup_requires=["mypy[mypyc]>=1.10"] if COMPILE else [],
      cmdclass={"build_ext": BuildExtRecordingSources, "build_py": BuildPyWithoutRecord})
