"""Integrity findings, tied to the report rows they make untrustworthy.

The replay reports each place where the log does not hold as a
:class:`~flamingock_es.core.state.Finding` (position, kind, reason): a chain break, a record that
cannot be decoded, a signature the trust store refuses, events no trusted signature covers,
a checkpoint the log no longer holds. A finding taints everything recorded at or after its
position: from there on the log cannot prove it is what was written. This module says which
rows that is, and what each finding means in words. Positions, not sequence numbers, order
the log here: a tampered record's ``seq`` may be the forged part.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from ..replay import ChangeRow, ReplayReport, RunRow

__all__ = ["Finding", "Findings", "meaning"]

# What each kind of break (the reasons the fold writes, in state.py) tells a reader.
_MEANINGS = (
    ("hash mismatch", "This event's content no longer matches the hash it was sealed with: "
                      "it was altered after it was written, or the storage damaged it."),
    ("events dropped", "The sequence numbers skip here: events were removed from the log, "
                       "or moved from where they were written."),
    ("duplicated or reordered", "The sequence numbers go backwards here: events were "
                                "duplicated or reordered."),
    ("prev_hash", "This event does not link to the one before it: events were removed, "
                  "inserted or reordered just before it."),
)
_AFTERMATH = ("Nothing recorded at or after this point can be proven to be what was "
              "written: the rows marked unverified below depend on it.")


_KINDS = {
    "unreadable": "This record cannot be decoded as an audit event: something other than "
                  "flamingock-es wrote it, or the storage damaged it. It changes nothing in "
                  "the history, but until an operator quarantines it no runner decides.",
    "untrusted": "The signature here is not one the trust store accepts: the events it "
                 "should vouch for may have been written by someone without a trusted key.",
    "unsigned": "No trusted signature covers these events: they were appended by someone "
                "without a trusted key (or before signing was configured).",
    "checkpoint": "A checkpoint published earlier is no longer in the log as it was: "
                  "events were cut off its end, or it was rewritten.",
}


def meaning(reason: str, kind: str = "break") -> str:
    """What a finding means for a reader of the report, in words."""
    if kind in _KINDS:
        return f"{_KINDS[kind]} {_AFTERMATH}"
    for needle, text in _MEANINGS:
        if needle in reason:
            return f"{text} {_AFTERMATH}"
    return f"The log's integrity does not hold here. {_AFTERMATH}"


@dataclass(frozen=True)
class Finding:
    """One break, numbered from 1 in log order, and the first rows it taints."""

    number: int
    position: int
    seq: int
    reason: str
    kind: str
    first_step: ChangeRow | None
    first_run: RunRow | None

    @property
    def anchor(self) -> str:
        """The ``id`` of the finding in the verdict, for the rows that link back to it."""
        return f"finding-{self.number}"

    @property
    def meaning(self) -> str:
        """What the finding means, in words."""
        return meaning(self.reason, self.kind)


class Findings:
    """The report's findings, numbered, and which finding taints which row (``steps`` in
    log order: the report's rows and the interrupted steps)."""

    def __init__(self, report: ReplayReport, steps: list[ChangeRow]) -> None:
        breaks = sorted(report.findings, key=lambda b: b.position)
        self._positions = [b.position for b in breaks]
        self._run_end = _last_position_of_each_run(report)
        self.items = [
            Finding(number, b.position, b.seq, b.reason, b.kind,
                    first_step=next((c for c in steps if c.position >= b.position), None),
                    first_run=next((r for r in report.runs
                                    if self._run_end.get(r.run_id, -1) >= b.position), None))
            for number, b in enumerate(breaks, start=1)]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def at(self, position: int) -> Finding | None:
        """The latest finding at or before ``position``: the one that taints it, if any."""
        index = bisect_right(self._positions, position)
        return self.items[index - 1] if index else None

    def of_step(self, row: ChangeRow) -> Finding | None:
        """The finding that leaves this step unverified, if any."""
        return self.at(row.position)

    def of_run(self, row: RunRow) -> Finding | None:
        """A run is tainted when any of its events comes at or after a break."""
        return self.at(self._run_end.get(row.run_id, -1))


def _last_position_of_each_run(report: ReplayReport) -> dict[str, int]:
    # Derived here, not in RunRow: a killed run's last event is a ChangeStarted, which
    # the run's own state does not point at.
    last: dict[str, int] = {}
    for record in report.records:
        run_id = record.event.run_id
        last[run_id] = max(last.get(run_id, -1), record.position)
    return last
