"""The e2e harness: a throw-away project directory and the CLI run in it as a user runs it.

Units record their side effects by appending a line to ``effects.txt`` in the project, so a
test can count how often each one really ran. Flag files steer them: ``fail-<id>`` makes an
apply raise, ``fail-rollback-<id>`` its rollback, ``hold-<id>`` parks the apply until
``release-<id>`` exists, ``slow-<id>`` makes it take 1.5 s, ``fill-disk-<id>`` fills the
filesystem named in the file ``disk`` until one page is left, ``fail-big-<id>`` raises with a
20 kB message, ``not-started-<id>`` raises ``StepNotStarted`` before doing anything. The
environment variable ``PAD_U2`` makes u2's parameters that many bytes long.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .browser import INSTALL, Browser, chromium_path

WORKFLOW = """\
namespace: shop
stages:
  - name: main
    units: [changes]
"""

UNITS = '''\
import os
import time
from pathlib import Path

from flamingock_es import change_unit
from flamingock_es.errors import StepNotStarted

RECOVERY = "{recovery}"
PAD = {{"pad": "x" * int(os.environ.get("PAD_U2", "0"))}}


def _note(line):
    with open("effects.txt", "a") as f:
        f.write(line + "\\n")


def _fill_disk():
    """Fill the log's filesystem for real, until one page is free."""
    where = Path(Path("disk").read_text().strip())
    with open(where / "filler", "ab") as f:
        while True:
            stat = os.statvfs(where)
            free = stat.f_bavail * stat.f_frsize
            if free <= stat.f_frsize:
                return
            f.write(bytes(min(free - stat.f_frsize, 1 << 20)))
            f.flush()
            os.fsync(f.fileno())


def _apply(uid):
    if Path(f"not-started-{{uid}}").exists():
        raise StepNotStarted(f"{{uid}}: its precondition does not hold")
    _note(f"start {{uid}}")
    if Path(f"fill-disk-{{uid}}").exists():
        _fill_disk()
    if Path(f"fail-big-{{uid}}").exists():
        raise RuntimeError(f"{{uid}} boom " + "y" * 20000)
    if Path(f"slow-{{uid}}").exists():
        time.sleep(1.5)
    if Path(f"hold-{{uid}}").exists():
        deadline = time.monotonic() + 60
        while not Path(f"release-{{uid}}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    if Path(f"fail-{{uid}}").exists():
        raise RuntimeError(f"{{uid}} boom")
    _note(f"apply {{uid}}")


def _rollback(uid):
    if Path(f"fail-rollback-{{uid}}").exists():
        raise OSError(f"rollback of {{uid}} boom")
    _note(f"rollback {{uid}}")


def undo_u1(ctx):
    _rollback(ctx.unit_id)


@change_unit(id="u1", order=1, author="ana", rollback=undo_u1, recovery=RECOVERY)
def u1(ctx):
    _apply(ctx.unit_id)


def undo_u2(ctx):
    _rollback(ctx.unit_id)


@change_unit(id="u2", order=2, author="ana", rollback=undo_u2, recovery=RECOVERY,
             parameters=PAD)
def u2(ctx):
    _apply(ctx.unit_id)


def undo_u3(ctx):
    _rollback(ctx.unit_id)


@change_unit(id="u3", order=3, author="ana", rollback=undo_u3, recovery=RECOVERY)
def u3(ctx):
    _apply(ctx.unit_id)
'''

_FRAME = struct.Struct(">II")


class Project:
    """A project directory with a ``flamingock.yaml`` and three Python units u1, u2, u3."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {**os.environ, "FLAMINGOCK_PRINCIPAL": "e2e-user", "PYTHONUNBUFFERED": "1"}
        self.env.pop("PYTHONWARNINGS", None)

    # Files ---------------------------------------------------------------------------------

    def write(self, relative: str, text: str) -> Path:
        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def units(self, recovery: str = "manual-intervention") -> None:
        self.write("changes/units.py", UNITS.format(recovery=recovery))

    def flag(self, *names: str) -> None:
        for name in names:
            (self.path / name).touch()

    def unflag(self, *names: str) -> None:
        for name in names:
            (self.path / name).unlink()

    def effects(self) -> list[str]:
        path = self.path / "effects.txt"
        return path.read_text().splitlines() if path.exists() else []

    @property
    def log(self) -> Path:
        return self.path / ".flamingock" / "shop" / "audit.log"

    @property
    def lock(self) -> Path:
        return self.path / ".flamingock" / "shop" / "lock"

    def frames(self, log: Path | None = None) -> list[tuple[int, bytes]]:
        """``(offset, record)`` of every frame of a local log file."""
        data = (log or self.log).read_bytes()
        frames, offset = [], 0
        while offset < len(data):
            length, _ = _FRAME.unpack_from(data, offset)
            frames.append((offset, data[offset + 8 : offset + 8 + length]))
            offset += 8 + length
        return frames

    # The CLI -------------------------------------------------------------------------------

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flamingock_es.cli", *args]

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``flamingock-es ARGS`` in the project; text output, never raises on exit code."""
        return subprocess.run(self.command(*args), cwd=self.path, env=self.env, text=True,
                              capture_output=True, timeout=timeout, check=False)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Start ``flamingock-es ARGS`` without waiting; finish it with ``communicate()``."""
        return subprocess.Popen(self.command(*args), cwd=self.path, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait_for_effect(self, line: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.effects():
            if time.monotonic() > deadline:
                raise AssertionError(f"{line!r} never appeared; effects: {self.effects()}")
            time.sleep(0.02)


def reseal(record: bytes) -> bytes:
    """A frame for ``record`` with a correct length and CRC."""
    return _FRAME.pack(len(record), zlib.crc32(record)) + record


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs mounted for the test: a filesystem that truly fills up."""
    yield from _mounted(tmp_path / "disk", "size=1m")


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A real read-only tmpfs: every write to it fails with EROFS, even as root."""
    yield from _mounted(tmp_path / "ro", "size=64k,ro")


def _mounted(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {where} (the fault tests need root, as CI has): "
                    f"{done.stderr.strip()}", pytrace=False)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path / "proj")
    project.write("flamingock.yaml", WORKFLOW)
    project.units()
    return project


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    """Assert the exit code, showing the output when it is not the expected one."""
    assert result.returncode == code, (
        f"exit {result.returncode}, expected {code}\n--- stdout\n{result.stdout}"
        f"--- stderr\n{result.stderr}")
    return result


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A headless Chromium with one page. Chromium is a requirement of the browser tests,
    not an option: without it the test fails and says how to install it."""
    executable = chromium_path()
    if executable is None:
        pytest.fail(f"Chromium is not installed; the browser tests need it: `{INSTALL}` (as "
                    "root; scripts/test does it), then run again.")
    with Browser(executable, tmp_path / "chromium-profile") as browser:
        yield browser
