"""A lock session, uncontended: acquire, read what is new, release, as a runner that finds
nothing to do after the lock does it (the transactional writer is opened, and only opened:
it starts a producer on its first append, so an idle session never pays for one).

    eval "$(scripts/services env)"; python bench/lock_session.py [SESSIONS]

Every session of one backend, kept open as ``serve`` keeps it; the first session of a process
(the lock consumer's first join, the reader's first connection) is printed apart. Beside it,
the same on the embedded ``local:`` bus. Goal: Kafka median under 250 ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid

from flamingock_es.core.state import State
from flamingock_es.namespace import Backend, open_backend

BOOTSTRAP = os.environ.get("FLAMINGOCK_KAFKA_BOOTSTRAP", "127.0.0.1:19092").split(",")[0]
SESSIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 50
PHASES = ("acquire", "settle", "read", "release")


def session(backend: Backend, state: State) -> dict[str, float]:
    """One session's phases, in seconds."""
    marks = [time.perf_counter()]
    lease = backend.lock.acquire("bench", 30)
    marks.append(time.perf_counter())
    writer = backend.log.writer(lease)  # settles a dead holder's open transaction, if any
    marks.append(time.perf_counter())
    backend.reader.catch_up(backend.log, state)
    marks.append(time.perf_counter())
    writer.close()
    lease.release()
    marks.append(time.perf_counter())
    return {phase: end - start for phase, start, end in zip(PHASES, marks[:-1], marks[1:],
                                                             strict=True)}


def measure(bus: str) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The first session of a process, and the median phases of the next ``SESSIONS``."""
    namespace = f"bench-session-{uuid.uuid4().hex[:8]}"
    with open_backend(bus, namespace) as backend:
        state = State()
        first = session(backend, state)
        return first, [session(backend, state) for _ in range(SESSIONS)]


def row(label: str, sessions: list[dict[str, float]]) -> str:
    totals = sorted(sum(s.values()) for s in sessions)
    p95 = totals[min(len(totals) - 1, round(0.95 * (len(totals) - 1)))]
    phases = "  ".join(f"{p} {statistics.median(s[p] for s in sessions) * 1000:6.1f}"
                       for p in PHASES)
    return (f"{label:<28} median {statistics.median(totals) * 1000:7.1f} ms  "
            f"p95 {p95 * 1000:7.1f} ms   ({phases} ms)")


def main() -> None:
    print(f"lock session (acquire, settle, read what is new, release), {SESSIONS} sessions "
          "each, uncontended")
    with tempfile.TemporaryDirectory() as tmp:
        local_first, local = measure(f"local:{tmp}")
    kafka_first, kafka = measure(f"kafka://{BOOTSTRAP}")
    print(row(f"kafka://{BOOTSTRAP}", kafka))
    print(row("  its first session", [kafka_first]))
    print(row("local: (embedded)", local))
    print(row("  its first session", [local_first]))
    print("goal: Kafka median < 250 ms (before: ~1 s, a transactional producer and a claim "
          "record every session)")


if __name__ == "__main__":
    main()
