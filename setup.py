"""Compiles the audit log's hot path with mypyc where it can; pure Python everywhere else.

Everything about the package is in ``pyproject.toml``; this file only adds the optional C
extension. ``pip install .`` and ``pip install -e .`` compile :data:`COMPILED` with mypyc (a
build requirement) and write ``flamingock_es/_compiled.py`` beside the extensions they
built: the SHA-256 of each source that was compiled, so that the package never runs an
extension that no longer matches its source (``flamingock_es/compiled.py``; an editable
install keeps its extension beside a source that may be edited after). Without a C compiler,
if mypyc fails, or with ``FLAMINGOCK_PURE_PYTHON=1`` set at install time, the package
installs as pure Python: the codec then decodes with fastavro; nothing else changes.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

COMPILED = ["flamingock_es/avro_reader.py"]
RECORD = "_compiled.py"


def extensions() -> list[Any]:
    if os.environ.get("FLAMINGOCK_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify

        # Not mypy's configuration for the project (pyproject.toml: the pydantic plugin, the
        # whole package, all in `mypy --strict` anyway): the build environment has none of
        # the package's dependencies, and the compiled modules import none of them.
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
        for source in COMPILED:  # all in flamingock_es/: one record
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


setup(ext_modules=extensions(),
      cmdclass={"build_ext": BuildExtRecordingSources, "build_py": BuildPyWithoutRecord})
