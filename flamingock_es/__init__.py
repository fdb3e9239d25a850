"""flamingock-es: event-sourced, audit-first change management."""

from __future__ import annotations

__version__ = "0.1.0"
