"""Lock handover times on Kafka: clean (release -> next acquires) and crash (kill -9).

Clean: the holder releases (leaves the group); we time until a waiting runner holds it.
Crash: a holder process is killed with SIGKILL; we time from the kill until the waiter
holds it, which the broker's ``group.consumer.session.timeout.ms`` bounds.

    eval "$(scripts/services env)"; python bench/lock_handover.py [ROUNDS]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

from flamingock_es.namespace import open_backend

BOOTSTRAP = os.environ.get("FLAMINGOCK_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
BUS = f"kafka://{BOOTSTRAP}"
HOLDER = """
import sys, time
from flamingock_es.namespace import open_backend
lease = open_backend(sys.argv[1], sys.argv[2]).lock.acquire("doomed", 60)
print("held", flush=True)
time.sleep(600)
"""


def clean(namespace: str) -> float:
    first, second = open_backend(BUS, namespace), open_backend(BUS, namespace)
    lease = first.lock.acquire("first", 30)
    acquired: list[float] = []

    def wait() -> None:
        next_lease = second.lock.acquire("second", 60)
        acquired.append(time.monotonic())
        next_lease.release()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)  # the waiter has joined the group
    released = time.monotonic()
    lease.release()
    waiter.join()
    first.close()
    second.close()
    return acquired[0] - released


def crash(namespace: str) -> float:
    survivor = open_backend(BUS, namespace)
    with subprocess.Popen([sys.executable, "-c", HOLDER, BUS, namespace],
                          stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        killed = time.monotonic()
        os.kill(holder.pid, signal.SIGKILL)
        lease = survivor.lock.acquire("survivor", 60)
        took = time.monotonic() - killed
        holder.wait()
    lease.release()
    survivor.close()
    return took


def report(name: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"{name:6} n={len(times):3}  median {statistics.median(times):6.2f}s  "
          f"p95 {p95:6.2f}s  max {times[-1]:6.2f}s")


def main() -> None:
    namespace = f"bench-lock-{uuid.uuid4().hex[:8]}"
    clean_times = [clean(namespace) for _ in range(ROUNDS)]
    crash_times = [crash(namespace) for _ in range(ROUNDS)]
    print(f"lock handover on {BOOTSTRAP} ({ROUNDS} rounds each)")
    report("clean", clean_times)
    report("crash", crash_times)
    print("goals: clean median <= 1.5s; crash <= session timeout (3s on scripts/services) + 2s")


if __name__ == "__main__":
    main()
