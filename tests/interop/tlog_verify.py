"""Build and run the outsider's verifier: ``tlog_verify/``, Go, on the checksum database's code.

The program is built once per version of its sources into
``$FLAMINGOCK_CACHE/tlog-verify-<hash>/`` (``~/.cache/flamingock-es`` when the variable is
unset), where ``<hash>`` covers ``go.mod``, ``go.sum`` and ``main.go``; later runs reuse it.
A missing Go toolchain or a failed build raises ``VerifierBuildError`` with Go's output, so
a test that needs the verifier fails loudly instead of skipping.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SOURCE", "Verdict", "VerifierBuildError", "build", "cache_dir", "run"]

SOURCE = Path(__file__).with_name("tlog_verify")
_SOURCES = ("go.mod", "go.sum", "main.go")
_BINARY = "tlog-verify"


class VerifierBuildError(RuntimeError):
    """The Go verifier could not be built; the message holds what Go said."""


def cache_dir(source: Path = SOURCE) -> Path:
    """Where the build of these sources lives: one folder per version of them."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update(name.encode() + b"\0" + (source / name).read_bytes() + b"\0")
    base = os.environ.get("FLAMINGOCK_CACHE") or Path.home() / ".cache" / "flamingock-es"
    return Path(base) / f"tlog-verify-{digest.hexdigest()[:16]}"


def _go() -> str:
    known = ("/usr/local/go/bin/go", "/usr/lib/go/bin/go")
    go = shutil.which("go") or next((path for path in known if os.access(path, os.X_OK)), None)
    if go is None:
        raise VerifierBuildError(
            f"the Go toolchain (go 1.26 or later) is needed to build {SOURCE}; none is on PATH"
        )
    return go


def build(source: Path = SOURCE) -> Path:
    """The verifier's executable, built now if this version of the sources was never built."""
    target = cache_dir(source) / _BINARY
    if os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{_BINARY}.{os.getpid()}")
    env = dict(os.environ)
    env["GOFLAGS"] = " ".join(filter(None, [env.get("GOFLAGS", ""), "-mod=mod"]))
    try:
        done = subprocess.run(
            [_go(), "build", "-o", str(partial), "."],
            cwd=source, env=env, capture_output=True, text=True, timeout=900, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise VerifierBuildError(f"go build in {source} did not run: {error}") from error
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise VerifierBuildError(
            f"go build in {source} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
        )
    os.replace(partial, target)  # atomic: a concurrent build of the same sources is harmless
    return target


@dataclass(frozen=True)
class Verdict:
    """What the verifier said about one bundle."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def checks(self) -> list[str]:
        """The "ok ..." lines: one per check that held."""
        return [line for line in self.stdout.splitlines() if line.startswith("ok ")]


def run(bundle: Mapping[str, object], *, source: Path = SOURCE) -> Verdict:
    """Run the verifier on ``bundle`` (the JSON object main.go documents), given on stdin."""
    done = subprocess.run(
        [str(build(source)), "-"],
        input=json.dumps(bundle), capture_output=True, text=True, timeout=60, check=False,
    )
    return Verdict(done.returncode, done.stdout, done.stderr)


if __name__ == "__main__":  # scripts/test builds it before any test runs: python -m ...
    import sys

    try:
        print(build())
    except VerifierBuildError as error:
        sys.exit(f"tlog-verify: {error}")
