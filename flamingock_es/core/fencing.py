"""Fencing that reaches the target: what a step hands to the systems it changes.

The lock keeps one runner per namespace, and a runner that lost it (paused, partitioned) is
refused the next time it appends to the audit log. That does not stop a side effect it is
already sending. Two values let the target itself tell:

* a :class:`FencingToken`, the lock's generation (it grows with every acquisition) with the
  run and unit writing. A target that keeps the highest generation it has seen can refuse a
  write with a lower one: it comes from a holder that lost the lock and does not know yet
  (the ``couchbase-document`` template does that with the document's metadata);
* an :func:`idempotency_key`, the same for every attempt of one application of a unit and
  different for the next application, so a target that remembers keys applies an
  ``always-retry`` unit re-run after a crash once (``http-request`` sends it as the
  ``Idempotency-Key`` header). An application ends when it is undone (compensated, or marked
  rolled back) or, for a unit run again once applied (``run_always``), when it completed;
  the fold counts them (``UnitState.application``), so the key survives any restart.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["FencingToken", "idempotency_key"]

_KEYS = uuid.UUID("6f1c0a52-3f0e-5b7e-9a55-f1a2c0c0ffee")
"""The UUIDv5 namespace of idempotency keys: any other name-based UUID differs."""


@dataclass(frozen=True, slots=True)
class FencingToken:
    """Which lock holder a write comes from. Compare ``generation`` within one ``lock``."""

    lock: str
    """The lock, e.g. ``file:/path/lock`` or ``kafka-group:flamingock.lock.shop``."""
    generation: int
    """Grows with every acquisition of ``lock``: a lower one is an older holder's."""
    run_id: str
    unit_id: str

    def __str__(self) -> str:
        return f"{self.lock}#{self.generation}/{self.run_id}/{self.unit_id}"

    def as_dict(self) -> dict[str, Any]:
        """The token as plain values, to store beside what it wrote."""
        return {"lock": self.lock, "generation": self.generation, "run_id": self.run_id,
                "unit_id": self.unit_id}


def idempotency_key(namespace: str, unit_id: str, checksum: str, application: int,
                    step: str = "apply") -> str:
    """A UUID (version 5) naming one application of a unit's ``step`` (``apply`` or
    ``rollback``): equal across retries of it, different for the next application, for a
    changed definition (``checksum``), and between a unit's apply and its rollback."""
    name = "\x00".join((namespace, unit_id, checksum, str(application), step))
    return str(uuid.uuid5(_KEYS, name))
