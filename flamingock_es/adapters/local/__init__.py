"""The embedded default: an fsynced local event log and an OS file lock."""

from __future__ import annotations

from .event_log import LocalEventLog
from .file_lock import FileLock

__all__ = ["FileLock", "LocalEventLog"]
