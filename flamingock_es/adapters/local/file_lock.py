"""``FileLock``: the namespace lock as an OS advisory lock (``flock``) on a file.

The kernel drops the lock when its holder dies, so a killed runner never leaves it stuck. The
file also says who holds it and keeps a generation counter, bumped at each acquisition, for
the audit trail: ``7 laptop:4242:20261127T103015-abcdef01``.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ...core.ports import WaitCallback
from ...errors import AppendError, LockLostError, LockTimeoutError

__all__ = ["FileLease", "FileLock"]

_POLL = 0.05
_REPORT_EVERY = 1.0


class FileLease:
    """Holding ``FileLock``: an open descriptor with ``LOCK_EX`` on it."""

    def __init__(self, path: Path, fd: int, holder: str, generation: int) -> None:
        self.path, self._fd = path, fd
        self.holder, self.generation = holder, generation
        self.lock = f"file:{path}"
        self._inode = os.fstat(fd).st_ino

    @property
    def lost(self) -> bool:
        if self._fd < 0:
            return True
        try:  # someone removed or replaced the lock file: our flock guards nothing now
            return os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            return True

    def check(self) -> None:
        if self.lost:
            raise LockLostError(
                f"the lock {self.path} was released or its file replaced while this runner "
                "held it; stopping before the next step. Rerun to continue."
            )

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


class FileLock:
    """Lock on ``path``; waiters poll so that they can time out and report progress."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def acquire(
        self, holder: str, timeout: float, on_wait: WaitCallback | None = None
    ) -> FileLease:
        started = time.monotonic()
        next_report = started + _REPORT_EVERY
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
            else:
                if os.fstat(fd).st_ino == _inode(self.path):
                    return FileLease(self.path, fd, holder, _claim(fd, holder))
                os.close(fd)  # the file was replaced between open and flock: retry
                continue
            now = time.monotonic()
            if now - started >= timeout:
                raise LockTimeoutError(
                    f"the lock {self.path} is still held after {timeout:g}s; giving up."
                )
            if on_wait is not None and now >= next_report:
                on_wait(now - started)
                next_report = now + _REPORT_EVERY
            time.sleep(_POLL)

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise AppendError(f"cannot create the lock file {self.path}: "
                              f"{exc.strerror or exc}. Check that its directory exists and is "
                              "writable.") from exc

    def holder(self) -> str | None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:  # a shared lock is granted only while nobody holds the exclusive one
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                claim = os.pread(fd, 1024, 0).decode(errors="replace").split(maxsplit=1)
                return claim[1].strip() if len(claim) > 1 else "an unnamed holder"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def close(self) -> None:
        pass


def _inode(path: Path) -> int:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return -1


def _claim(fd: int, holder: str) -> int:
    """Write who holds the lock, with the next generation; return the generation."""
    raw = os.pread(fd, 32, 0).split(maxsplit=1)
    generation = int(raw[0]) + 1 if raw and raw[0].isdigit() else 1
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{generation} {holder}\n".encode(), 0)
    return generation
