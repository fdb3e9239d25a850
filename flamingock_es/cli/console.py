"""One stderr that the progress and the log share.

A progress line is often left open (``[1/3] main/u1 ... `` until `` applied (3 ms)``); a log
record emitted meanwhile starts on a fresh line, and the progress line is stated again when
it completes. On a terminal a transient status line (a counter, the elapsed time, an ETA) is
redrawn in place and cleared before anything else is written. A reader that went away
(``2>&1 | head``) silences the console instead of raising: a run must never fail, or stop
halfway, because nobody reads its progress.
"""

from __future__ import annotations

import logging
import threading
from typing import TextIO

__all__ = ["Console", "ConsoleLogHandler", "console_for"]

_CLEAR_LINE = "\r\x1b[K"


class Console:
    """Writes to ``stream`` under one lock, keeping track of the line the cursor is on."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False
        """True once a write failed (the reader went away): later writes are dropped."""
        self._lock = threading.RLock()
        self._open: str | None = None  # the text of an unfinished progress line
        self._interrupted = False  # a log record was written since it was opened
        self._at_line_start = True
        self._status = ""  # the transient status line (terminals only)
        self._status_shown = False

    def say(self, text: str, end: str = "\n") -> None:
        """Progress text. ``end=""`` leaves the line open; a text starting with a space
        continues the open line (stated again if a log record came in between)."""
        with self._lock:
            self._hide_status()
            if self._open is not None and text.startswith(" "):
                if self._interrupted:
                    self._write(self._open)
                opening = self._open + text
            else:
                if not self._at_line_start:
                    self._write("\n")
                opening = text
            self._write(text + end)
            self._open, self._interrupted = (opening if end != "\n" else None), False
            self._show_status()

    def log(self, text: str) -> None:
        """A log record, always on lines of its own."""
        with self._lock:
            self._hide_status()
            if not self._at_line_start:
                self._write("\n")
            self._interrupted = self._open is not None
            self._write(text if text.endswith("\n") else text + "\n")
            self._show_status()

    def status(self, text: str) -> None:
        """Show ``text`` as the transient status line (replacing the previous one); ``""``
        removes it."""
        with self._lock:
            self._hide_status()
            self._status = text
            self._show_status()

    def _hide_status(self) -> None:
        if self._status_shown:
            self._write(_CLEAR_LINE)
            self._status_shown, self._at_line_start = False, True

    def _show_status(self) -> None:
        if self._status and self._at_line_start and self._open is None:
            self._write(self._status)
            self._status_shown, self._at_line_start = True, True

    def _write(self, text: str) -> None:
        if self.closed or not text:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # EPIPE, a closed file, an encoding it cannot write
            self.closed = True
            return
        self._at_line_start = text.endswith(("\n", _CLEAR_LINE))


_CONSOLES: dict[int, Console] = {}
_REGISTRY_LOCK = threading.Lock()


def console_for(stream: TextIO) -> Console:
    """The one :class:`Console` of ``stream``, so the progress and the log share it."""
    with _REGISTRY_LOCK:
        console = _CONSOLES.get(id(stream))
        if console is None or console.stream is not stream:
            console = _CONSOLES[id(stream)] = Console(stream)
        return console


class ConsoleLogHandler(logging.Handler):
    """A logging handler that writes through a :class:`Console`, never into an open line."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.log(self.format(record))
        except Exception:  # a handler must not raise into the code that logged
            self.handleError(record)
