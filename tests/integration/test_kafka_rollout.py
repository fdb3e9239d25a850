"""Rollouts on a real Kafka: a fleet of ``serve --fleet`` workers sharing a rollout's tenants
through one consumer group, a worker and a coordinator killed with SIGKILL mid-wave.

Every tenant's unit is an ``http-request`` to a real local HTTP server (not ours to fake:
it only records what reaches it). A call carries the unit's idempotency key, the same for
every retry of one application, as a real idempotent API expects; a side effect is one
distinct key, so "every side effect counted once" is: one key per tenant, and every tenant.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..e2e.http_server import RecordingServer, recording_server
from .test_kafka_cluster import NODES, SERVICES, Cluster, _run

pytestmark = pytest.mark.kafka

UNIT = """\
id: call
order: 1
author: it
template: http-request
recovery: always-retry
apply: {{method: POST, url: "{url}/apply/${{tenant.id}}?worker=${{WORKER:-coordinator}}",
        timeout: 90}}  # a held call outlasts what the test does meanwhile, on a busy machine
rollback: {{method: POST, url: "{url}/rollback/${{tenant.id}}"}}
"""


class Rollout:
    """A project on Kafka with ``count`` tenants, and its processes."""

    def __init__(self, path: Path, bootstrap: str, prefix: str, server: RecordingServer,
                 count: int) -> None:
        self.path, self.server = path, server
        self.tenants = [f"c{i:03d}" for i in range(count)]
        path.mkdir(parents=True)
        (path / "changes").mkdir()
        (path / "flamingock.yaml").write_text(
            f"namespace: shop\nbus: kafka://{bootstrap}\nkafka: {{topic_prefix: {prefix}}}\n"
            f"lock_timeout: 90\ntenants: [{', '.join(self.tenants)}]\n"
            "stages:\n  - name: main\n    units: [changes]\n")
        (path / "changes" / "001_call.yaml").write_text(UNIT.format(url=server.url))
        self.env = {**os.environ, "FLAMINGOCK_PRINCIPAL": "it", "PYTHONUNBUFFERED": "1"}
        self.processes: list[subprocess.Popen[str]] = []

    def spawn(self, *args: str, worker: str | None = None) -> subprocess.Popen[str]:
        env = {**self.env, **({"WORKER": worker} if worker else {})}
        process = subprocess.Popen([sys.executable, "-m", "flamingock_es.cli", *args],
                                   cwd=self.path, env=env, text=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        self.processes.append(process)
        return process

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flamingock_es.cli", *args], cwd=self.path,
                              env=self.env, text=True, capture_output=True, timeout=timeout,
                              check=False)

    def effects(self) -> dict[str, set[str]]:
        """Per tenant, the distinct idempotency keys its apply calls carried."""
        keys: dict[str, set[str]] = defaultdict(set)
        for got in list(self.server.received):
            if got.path.startswith("/apply/"):
                keys[got.path.split("/")[2].partition("?")[0]].add(
                    got.header("Idempotency-Key") or "")
        return keys

    def calls(self, tenant: str) -> list[str]:
        """The workers whose calls for ``tenant``'s apply reached the server."""
        return [got.path.partition("worker=")[2] for got in list(self.server.received)
                if got.path.startswith(f"/apply/{tenant}?")]

    def wait_for_call(self, tenant: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while not self.calls(tenant):
            assert time.monotonic() < deadline, f"no call for {tenant}"
            time.sleep(0.05)
        return self.calls(tenant)[0]

    def status(self) -> dict[str, object]:
        done = self.cli("rollout", "status", "--json")
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        return found[-1]  # type: ignore[no-any-return]


@pytest.fixture
def rollout(request: pytest.FixtureRequest, tmp_path: Path, kafka_bootstrap: str,
            unique_name: str) -> Iterator[Rollout]:
    """24 tenants; a test marked ``tenants(N)`` gets N."""
    marked = request.node.get_closest_marker("tenants")
    count = marked.args[0] if marked else 24
    with recording_server() as server:
        project = Rollout(tmp_path / "proj", kafka_bootstrap, unique_name, server, count)
        try:
            yield project
        finally:
            for process in project.processes:
                if process.poll() is None:
                    process.kill()
                _, err = process.communicate(timeout=30)
                lines = [line for line in (err or "").splitlines() if "created Kafka" not in line]
                print(f"--- {process.args[3:]} exit {process.returncode}:\n"  # shown on failure
                      + "\n".join(lines[-15:]))


def test_a_fleet_shares_a_rollout_and_a_killed_workers_tenants_finish_on_another(
        rollout: Rollout) -> None:
    workers = {name: rollout.spawn("serve", "--fleet", worker=name)
               for name in ("w1", "w2", "w3")}
    held = rollout.tenants[10]
    rollout.server.held[f"/apply/{held}"] = threading.Event()
    coordinator = rollout.spawn("rollout", "--fleet", "--reason", "release 7", "--canary", "2",
                                "--wave", "50%", "--max-failures", "0", "--partitions", "6")
    victim = rollout.wait_for_call(held)
    workers[victim].send_signal(signal.SIGKILL)  # mid-wave, in the middle of the unit
    workers[victim].communicate(timeout=30)
    rollout.server.held[f"/apply/{held}"].set()

    _, err = coordinator.communicate(timeout=300)
    assert coordinator.returncode == 0, err

    effects = rollout.effects()
    assert sorted(effects) == rollout.tenants  # every tenant applied
    assert all(len(keys) == 1 for keys in effects.values()), effects  # each once
    again = [w for w in rollout.calls(held) if w != victim]
    assert again, "the killed worker's tenant was finished by another worker"
    found = rollout.status()
    assert found["result"] == "SUCCEEDED"
    assert found["counts"] == {"SUCCEEDED": len(rollout.tenants)}
    # the work was shared: more than one worker applied tenants
    by = {rollout.calls(t)[-1] for t in rollout.tenants}
    assert len(by) >= 2, by
    for name, process in workers.items():
        if name != victim:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
            assert process.returncode == 0


def test_a_killed_coordinator_resumes_on_kafka_without_running_a_tenant_again(
        rollout: Rollout) -> None:
    workers = [rollout.spawn("serve", "--fleet", worker=name) for name in ("w1", "w2")]
    held = rollout.tenants[12]
    rollout.server.held[f"/apply/{held}"] = threading.Event()
    coordinator = rollout.spawn("rollout", "--fleet", "--reason", "release 8", "--canary", "2",
                                "--wave", "50%")
    rollout.wait_for_call(held)
    coordinator.send_signal(signal.SIGKILL)
    coordinator.communicate(timeout=30)
    rollout.server.held[f"/apply/{held}"].set()

    started = time.monotonic()
    again = rollout.spawn("rollout", "--fleet", "--reason", "the coordinator's host died")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "resumed;" in err
    assert time.monotonic() - started < 60

    effects = rollout.effects()
    assert sorted(effects) == rollout.tenants
    assert all(len(keys) == 1 for keys in effects.values()), effects
    assert all(len(rollout.calls(t)) == 1 for t in rollout.tenants)  # none run again
    assert rollout.status()["result"] == "SUCCEEDED"
    for process in workers:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


def test_two_coordinators_on_kafka_one_proceeds_the_other_names_the_holder(
        rollout: Rollout) -> None:
    held = rollout.tenants[0]
    rollout.server.held[f"/apply/{held}"] = threading.Event()
    first = rollout.spawn("rollout", "--reason", "first")
    rollout.wait_for_call(held)
    second = rollout.cli("rollout", "--reason", "second", "--wait", "4", timeout=120)
    assert second.returncode == 3, second.stderr
    assert f":{first.pid}:" in second.stderr
    rollout.server.held[f"/apply/{held}"].set()
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err


def test_a_failing_canary_on_kafka_stops_before_wave_one_compensated_alone(
        rollout: Rollout) -> None:
    rollout.server.statuses[f"/apply/{rollout.tenants[1]}?worker=coordinator"] = 500
    done = rollout.cli("rollout", "--reason", "release 9", "--canary", "3", "--wave", "10")
    assert done.returncode == 8, done.stderr
    assert "STOPPED before wave 1" in done.stderr
    assert sorted(rollout.effects()) == rollout.tenants[:3]
    rollbacks = [g.path for g in rollout.server.received if g.path.startswith("/rollback/")]
    assert rollbacks == [f"/rollback/{rollout.tenants[1]}"]
    found = rollout.status()
    assert found["status"] == "STOPPED"
    assert [f["tenant"] for f in found["failed"]] == [rollout.tenants[1]]  # type: ignore[union-attr]


@pytest.fixture
def cluster(kafka_bootstrap: str) -> Iterator[Cluster]:
    """The three-node cluster of scripts/services; every node is running again after."""
    found = Cluster(kafka_bootstrap)
    assert len(found.nodes()) == NODES, "run scripts/services up --brokers 3"
    yield found
    _run(SERVICES, "start", "kafka")


@pytest.mark.cluster
@pytest.mark.tenants(60)
def test_a_ci_sized_rollout_on_the_cluster_survives_a_worker_and_the_controller_killed(
        rollout: Rollout, cluster: Cluster) -> None:
    """60 tenants, three workers; mid-wave, the worker inside a tenant's unit and the
    cluster's active controller are killed with SIGKILL; every side effect happens once."""
    workers = {name: rollout.spawn("serve", "--fleet", worker=name)
               for name in ("w1", "w2", "w3")}
    held = rollout.tenants[20]
    rollout.server.held[f"/apply/{held}"] = threading.Event()
    started = time.monotonic()
    coordinator = rollout.spawn("rollout", "--fleet", "--reason", "release 10", "--canary", "2",
                                "--wave", "50%", "--partitions", "6")
    victim = rollout.wait_for_call(held)
    workers[victim].send_signal(signal.SIGKILL)  # inside the unit: its tenant is in doubt
    workers[victim].communicate(timeout=30)
    node = cluster.active_controller()  # a node that matters: the quorum's leader
    cluster.kill(node)
    rollout.server.held[f"/apply/{held}"].set()
    time.sleep(5)
    cluster.start(node)

    _, err = coordinator.communicate(timeout=600)
    assert coordinator.returncode == 0, err
    effects = rollout.effects()
    assert sorted(effects) == rollout.tenants
    assert all(len(keys) == 1 for keys in effects.values()), effects
    assert [w for w in rollout.calls(held) if w != victim], "another worker finished it"
    assert rollout.status()["result"] == "SUCCEEDED"
    print(f"\n[cluster rollout] {len(rollout.tenants)} tenants, worker {victim} and node {node} "
          f"killed mid-wave: {time.monotonic() - started:.1f}s, every side effect once")
    cluster.wait_in_sync()
    for name, process in workers.items():
        if name != victim:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)


@pytest.mark.drill
@pytest.mark.tenants(300)
def test_a_few_hundred_tenants_with_a_worker_and_the_coordinator_killed_and_one_failing(
        rollout: Rollout, cluster: Cluster) -> None:
    """The drill at the scale the rollout is meant for: 300 tenants on the three-node
    cluster, three workers, a canary and waves of 25% with a budget of 2%. One tenant's
    target answers 500 (it is compensated alone, within the budget); the worker inside a
    first-wave tenant's unit is killed with SIGKILL; later the coordinator is killed with
    SIGKILL and started again. Every side effect is counted at the HTTP server."""
    workers = {name: rollout.spawn("serve", "--fleet", worker=name)
               for name in ("w1", "w2", "w3")}
    failing, in_doubt, resumed_at = rollout.tenants[150], rollout.tenants[40], rollout.tenants[200]
    rollout.server.statuses[f"/apply/{failing}"] = 500
    for held in (in_doubt, resumed_at):
        rollout.server.held[f"/apply/{held}"] = threading.Event()
    started = time.monotonic()
    args = ("rollout", "--fleet", "--canary", "3", "--wave", "25%", "--max-failures", "2%",
            "--partitions", "12")
    first = rollout.spawn(*args, "--reason", "release 11")

    victim = rollout.wait_for_call(in_doubt, timeout=600)
    workers[victim].send_signal(signal.SIGKILL)  # inside the unit: its tenant is in doubt
    workers[victim].communicate(timeout=30)
    rollout.server.held[f"/apply/{in_doubt}"].set()

    rollout.wait_for_call(resumed_at, timeout=900)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    rollout.server.held[f"/apply/{resumed_at}"].set()
    again = rollout.spawn(*args, "--reason", "the coordinator's host died")
    _, err = again.communicate(timeout=1800)
    took = time.monotonic() - started

    assert again.returncode == 0, err  # PARTIAL: one tenant failed, within the budget
    assert "resumed;" in err, err
    effects = rollout.effects()
    assert sorted(effects) == rollout.tenants
    assert all(len(keys) == 1 for keys in effects.values()), {
        t: k for t, k in effects.items() if len(k) != 1}
    calls = {t: rollout.calls(t) for t in rollout.tenants}
    twice = sorted(t for t, by in calls.items() if len(by) > 1)
    assert set(twice) <= {in_doubt}, twice  # only the killed worker's tenant was retried
    assert [w for w in calls[in_doubt] if w != victim], "another worker finished it"
    rollbacks = [g.path for g in rollout.server.received if g.path.startswith("/rollback/")]
    assert rollbacks == [f"/rollback/{failing}"]
    found = rollout.status()
    assert found["result"] == "PARTIAL", found
    assert [f["tenant"] for f in found["failed"]] == [failing]  # type: ignore[union-attr]
    print(f"\n[drill] {len(rollout.tenants)} tenants, 3 workers (worker {victim} killed in "
          f"{in_doubt}'s unit), coordinator killed and resumed, {failing} failing: "
          f"{took:.0f} s; {sum(len(by) for by in calls.values())} apply calls, "
          f"{len(effects)} side effects, each once; rollback of {failing} only; PARTIAL")
    for name, process in workers.items():
        if name != victim:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)
