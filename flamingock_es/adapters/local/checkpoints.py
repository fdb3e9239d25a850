"""``LocalCheckpoints``: a namespace's published checkpoints as files beside its log, one per
tree size (``checkpoints/00000000000000001234.json``), each written aside, fsynced and renamed,
so a reader sees a whole checkpoint or none."""

from __future__ import annotations

from pathlib import Path

from ...errors import AppendError
from .frames import replace_durably

__all__ = ["LocalCheckpoints"]

_SUFFIX = ".json"


class LocalCheckpoints:
    """``ROOT/checkpoints/SIZE.json``: the zero-padded size sorts them by name."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "checkpoints"
        self.where = str(self.folder)

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.folder.iterdir()
                          if p.suffix == _SUFFIX and p.stem.isdigit())
        except FileNotFoundError:
            return []

    def publish(self, size: int, data: bytes) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            replace_durably(self.folder / f"{size:020d}{_SUFFIX}", data)
        except OSError as exc:
            raise AppendError(f"could not publish the checkpoint in {self.folder}: "
                              f"{exc.strerror or exc}") from exc

    def latest(self) -> bytes | None:
        files = self._files()
        return files[-1].read_bytes() if files else None

    def history(self) -> list[bytes]:
        return [path.read_bytes() for path in self._files()]

    def close(self) -> None:
        pass
