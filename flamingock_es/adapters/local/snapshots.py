"""``LocalSnapshots``: the namespace's latest snapshot as one file beside its log, replaced
atomically (written aside, fsynced, renamed), so a reader sees the old one or the new one."""

from __future__ import annotations

from pathlib import Path

from ...errors import AppendError
from .frames import replace_durably

__all__ = ["LocalSnapshots"]


class LocalSnapshots:
    """``ROOT/snapshot`` (or ``ROOT/NAME``: the heads a runner remembers use it too)."""

    def __init__(self, root: Path, name: str = "snapshot") -> None:
        self.path = root / name

    def latest(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def save(self, data: bytes) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_durably(self.path, data)
        except OSError as exc:
            raise AppendError(f"could not write {self.path}: "
                              f"{exc.strerror or exc}") from exc

    def close(self) -> None:
        pass
