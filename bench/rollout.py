"""A rollout on Kafka: fleet throughput, per-tenant overhead, and what the layout costs.

    eval "$(scripts/services env)"   # best on the 3-node cluster: scripts/services up --brokers 3
    python bench/rollout.py [--tenants 60] [--fleets 1,2,4] [--layout 100,1000] [--only ...]

- **fleet**: ``--tenants`` tenants x 3 units, each an ``http-request`` to a local HTTP server
  that answers after 50 ms, rolled out with ``rollout --fleet`` by fleets of 1, 2 and 4
  ``serve --fleet`` workers (separate processes), each fleet on a fresh topic prefix (so
  every run creates its tenants' topics, as a first rollout does). Throughput is tenants per
  second from the coordinator's start to its end. Goal: 4 workers >= 3x 1 worker.
- **overhead**: with 1 worker, the wall time per tenant minus its units' own time (3 x the
  server's latency): the tenant's topic creation, lock session, reads and appends, the
  result's round trip. Printed with and without the topics' creation (a second rollout of
  the same tenants, with a new unit). Goal <= 150 ms.
- **restart**: the coordinator killed with SIGKILL while a tenant of its second wave is
  held at the server, then started again (2 workers): seconds until it says it resumed and
  until the rollout ends, and how many unit calls reached the server twice. Goal: resumes
  within 5 s, none twice.
- **layout**: the current layout gives each namespace (each tenant) 6 topics of one
  partition. For 100, 1,000 (and 10,000 with ``--layout 100,1000,10000``) tenants: the time
  to create their topics, the cluster's metadata (topics, partitions, a full ``list_topics``
  and its time), the brokers' resident memory, and one lock session of one tenant at that
  scale.

Conditions (cluster size, cores, load) are printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._measure import environment, load  # noqa: E402
from tests.e2e.http_server import recording_server  # noqa: E402

BOOTSTRAP = os.environ.get("FLAMINGOCK_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
LATENCY = 0.05
UNITS = 3
UNIT = """\
id: call{n}
order: {n}
author: bench
template: http-request
apply: {{method: POST, url: "{url}/apply/${{tenant.id}}/{n}"}}
"""


def project(root: Path, prefix: str, tenants: int, url: str, units: int = UNITS) -> Path:
    root.mkdir(parents=True)
    (root / "changes").mkdir()
    ids = ", ".join(f"c{i:05d}" for i in range(tenants))
    (root / "flamingock.yaml").write_text(textwrap.dedent(f"""\
        namespace: bench
        bus: kafka://{BOOTSTRAP}
        kafka: {{topic_prefix: {prefix}}}
        lock_timeout: 120
        tenants: [{ids}]
        stages:
          - name: main
            units: [changes]
        """))
    for n in range(1, units + 1):
        (root / "changes" / f"{n:03d}_call.yaml").write_text(UNIT.format(n=n, url=url))
    return root


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "flamingock_es.cli", *args]


def rollout(root: Path, workers: int, reason: str) -> float:
    """Seconds from the coordinator's start to its end, with ``workers`` fleet workers."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    fleet = [subprocess.Popen(cli("serve", "--fleet", "-q"), cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    try:
        time.sleep(3)  # the workers join the group before the first wave
        started = time.perf_counter()
        done = subprocess.run(cli("rollout", "--fleet", "-q", "--reason", reason, "--canary",
                                  "1", "--partitions", "12"), cwd=root, env=env, text=True,
                              capture_output=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"rollout failed ({done.returncode}): {done.stderr[-2000:]}")
        return elapsed
    finally:
        for process in fleet:
            process.terminate()
        for process in fleet:
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def fleet_figures(tenants: int, fleets: list[int]) -> None:
    print(f"\n## fleet: {tenants} tenants x {UNITS} units (HTTP, {LATENCY * 1000:.0f} ms each), "
          "canary 1, then one wave")
    rates: dict[int, float] = {}
    with recording_server() as server, tempfile.TemporaryDirectory() as tmp:
        server.latency = LATENCY
        for workers in fleets:
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            root = project(Path(tmp) / f"fleet-{workers}", prefix, tenants, server.url)
            elapsed = rollout(root, workers, f"bench fleet of {workers}")
            rates[workers] = tenants / elapsed
            print(f"fleet of {workers}: {elapsed:7.1f} s, {rates[workers]:6.2f} tenants/s "
                  f"({elapsed / tenants * 1000:6.0f} ms a tenant)   [{load()}]")
            if workers == 1:
                own = UNITS * LATENCY
                print(f"  per-tenant overhead, 1 worker, first rollout (topics created): "
                      f"{(elapsed / tenants - own) * 1000:6.0f} ms beyond the units' "
                      f"{own * 1000:.0f} ms")
                (root / "changes" / f"{UNITS + 1:03d}_call.yaml").write_text(
                    UNIT.format(n=UNITS + 1, url=server.url))
                again = rollout(root, 1, "bench second rollout")
                print(f"  per-tenant overhead, 1 worker, topics existing (1 new unit): "
                      f"{(again / tenants - LATENCY) * 1000:6.0f} ms beyond the unit's "
                      f"{LATENCY * 1000:.0f} ms ({again:.1f} s)")
    if 1 in rates and 4 in rates:
        print(f"4 workers / 1 worker: {rates[4] / rates[1]:.2f}x (goal >= 3x)")


def restart_figures(tenants: int) -> None:
    """The coordinator killed (SIGKILL) while a tenant of its second wave is in progress,
    then started again: how long until it says it resumed, until the rollout ends, and how
    many tenants were applied twice (counted at the HTTP server)."""
    import signal
    import threading

    print(f"\n## coordinator restart: {tenants} tenants x {UNITS} units, 2 workers, canary 2, "
          "waves of 50%; SIGKILL while a second-wave tenant's call is held")
    with recording_server() as server, tempfile.TemporaryDirectory() as tmp:
        server.latency = LATENCY
        root = project(Path(tmp) / "restart", f"bench-{uuid.uuid4().hex[:8]}", tenants,
                       server.url)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        fleet = [subprocess.Popen(cli("serve", "--fleet", "-q"), cwd=root, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(2)]
        held = f"/apply/c{tenants // 2:05d}/1"
        server.held[held] = threading.Event()
        try:
            time.sleep(3)
            first = subprocess.Popen(cli("rollout", "--fleet", "--reason", "bench restart",
                                         "--canary", "2", "--wave", "50%"), cwd=root, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
            while not any(r.path == held for r in list(server.received)):
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=30)
            server.held[held].set()
            started = time.perf_counter()
            again = subprocess.Popen(cli("rollout", "--fleet", "--reason", "bench: host died"),
                                     cwd=root, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
            assert again.stderr is not None
            resumed = None
            for line in again.stderr:
                if resumed is None and "resumed" in line:
                    resumed = time.perf_counter() - started
            again.wait(timeout=600)
            ended = time.perf_counter() - started
        finally:
            for process in fleet:
                process.terminate()
                process.wait(timeout=60)
        applies = [r.path.split("?")[0] for r in server.received
                   if r.path.startswith("/apply/")]
        twice = len(applies) - len(set(applies))
        said = f"{resumed:.1f} s" if resumed is not None else "never said"
        print(f"restarted coordinator: resumed after {said}, rollout ended after {ended:.1f} s "
              f"(exit {again.returncode}); calls made twice: {twice} of {len(applies)} "
              f"(goal: resumes within 5 s, none twice)   [{load()}]")


def brokers_rss() -> str:
    """Resident memory of the local Kafka nodes (scripts/services' pid files)."""
    root = Path(os.environ.get("FLAMINGOCK_SERVICES_DIR", REPO / ".services")) / "kafka"
    sizes = []
    for pidfile in sorted(root.glob("node-*/pid")) or [root / "pid"]:
        try:
            pid = pidfile.read_text().split()[0]
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kb = next(int(line.split()[1]) for line in status.splitlines()
                  if line.startswith("VmRSS"))
        sizes.append(kb / 1024)
    return " + ".join(f"{s:.0f}" for s in sizes) + " MB" if sizes else "unknown"


def layout_figures(counts: list[int]) -> None:
    from confluent_kafka.admin import AdminClient

    from flamingock_es.adapters.kafka import ensure_topics, parse_bus
    from flamingock_es.core.state import State
    from flamingock_es.namespace import open_backend

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    brokers = len(admin.list_topics(timeout=30).brokers)
    print(f"\n## layout: 6 one-partition topics a namespace (a tenant), {brokers} broker(s)")
    base = f"bench-layout-{uuid.uuid4().hex[:6]}"
    settings = parse_bus(f"kafka://{BOOTSTRAP}", {"topic_prefix": base})
    created = 0
    for count in counts:
        started = time.perf_counter()
        failed = None
        for i in range(created, count):
            try:
                ensure_topics(settings, settings.topics(f"t{i:05d}"))
            except Exception as exc:  # the figure is where the layout stops holding
                failed = f"tenant {i + 1}'s topics could not be created: {exc}"[:400]
                count = i
                break
        took = time.perf_counter() - started
        new = count - created
        created = count
        listed = time.perf_counter()
        metadata = admin.list_topics(timeout=120)
        list_took = time.perf_counter() - listed
        topics = len(metadata.topics)
        partitions = sum(len(t.partitions) for t in metadata.topics.values())
        sessions = []
        with open_backend(f"kafka://{BOOTSTRAP}", "t00000", {"topic_prefix": base},
                          create=False) as backend:
            state = State()
            for _ in range(5):
                began = time.perf_counter()
                lease = backend.lock.acquire("bench", 60)
                backend.reader.catch_up(backend.log, state)
                lease.release()
                sessions.append(time.perf_counter() - began)
        print(f"{count:>6} tenants: created {new * 6} topics in {took:7.1f} s "
              f"({took / max(new, 1) * 1000:6.0f} ms a tenant); cluster now {topics} topics, "
              f"{partitions} partitions (x{min(3, brokers)} replicas); list_topics "
              f"{list_took * 1000:6.0f} ms; brokers' RSS {brokers_rss()}; one lock session "
              f"median {statistics.median(sessions) * 1000:5.0f} ms   [{load()}]")
        if failed is not None:
            print(f"  STOPPED HERE: {failed}")
            break
    print(f"(topics left on the cluster under the prefix {base}; scripts/services down "
          "removes them)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=60)
    parser.add_argument("--fleets", default="1,2,4")
    parser.add_argument("--layout", default="100,1000")
    parser.add_argument("--only", choices=["fleet", "restart", "layout"])
    args = parser.parse_args()
    print(f"bench/rollout.py on kafka://{BOOTSTRAP}\n{environment()}")
    print(json.dumps({"tenants": args.tenants, "fleets": args.fleets,
                      "layout": args.layout}))
    if args.only in (None, "fleet"):
        fleet_figures(args.tenants, [int(n) for n in args.fleets.split(",")])
    if args.only in (None, "restart"):
        restart_figures(min(args.tenants, 24))
    if args.only in (None, "layout"):
        layout_figures([int(n) for n in args.layout.split(",")])


if __name__ == "__main__":
    main()
