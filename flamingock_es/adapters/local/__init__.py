"""The embedded default: an fsynced local event log, an OS file lock, a framed request file."""

from __future__ import annotations

from .checkpoints import LocalCheckpoints
from .event_log import LocalEventLog
from .file_lock import FileLock
from .requests import LocalRequestChannel
from .snapshots import LocalSnapshots

__all__ = ["FileLock", "LocalCheckpoints", "LocalEventLog", "LocalRequestChannel", "LocalSnapshots"]
