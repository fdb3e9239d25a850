"""``scripts/quickstart`` as a newcomer runs it, twice: pip runs only the first time, and the
example leaves no temporary directory behind.

The virtual environment it is given is a stand-in whose ``python`` records each call and
skips pip (this test's own environment already has the package): what is checked is
whether the script asks pip, not pip itself (tests/e2e/test_install.py installs for real).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

RECORDING_PYTHON = """\
#!/usr/bin/env bash
echo "$*" >> "{calls}"
if [ "$1 $2" = "-m pip" ]; then exit 0; fi
exec "{python}" "$@"
"""


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    root = tmp_path / "venv"
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    python.write_text(RECORDING_PYTHON.format(calls=tmp_path / "calls", python=sys.executable))
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return root


def quickstart(venv: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHON"))}
    env.update(FLAMINGOCK_VENV=str(venv), TMPDIR=str(tmp))
    return subprocess.run([str(REPO / "scripts" / "quickstart")], env=env, text=True,
                          capture_output=True, timeout=300, check=False)


def pip_calls(tmp_path: Path) -> int:
    return sum(line.startswith("-m pip") for line in (tmp_path / "calls").read_text()
               .splitlines())


def test_a_second_quickstart_skips_pip_and_neither_leaves_temporary_files(
        venv: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()

    first = quickstart(venv, tmp)
    assert first.returncode == 0, first.stderr
    assert pip_calls(tmp_path) == 1
    assert "SUCCEEDED; applied 3" in first.stderr
    assert "chain intact" in first.stdout

    second = quickstart(venv, tmp)
    assert second.returncode == 0, second.stderr
    assert pip_calls(tmp_path) == 1  # nothing changed: no reinstall
    assert "up to date (pyproject.toml unchanged)" in second.stdout
    assert list(tmp.iterdir()) == []

    (venv / ".flamingock-quickstart").write_text("an older pyproject.toml\n")
    assert quickstart(venv, tmp).returncode == 0
    assert pip_calls(tmp_path) == 2  # a changed project is installed again
