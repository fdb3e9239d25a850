"""Runners on a three-node KRaft cluster (``scripts/services up --brokers 3``) while nodes die.

Every fault is real: ``kill -9`` of a node's JVM, found by pid through ``scripts/services
status --json``; the node is started again with ``scripts/services start kafka-N``. Side
effects are counted (``runner_support.py``): each unit's ``start``/``apply`` lines, and the
audit log's chain, sequence and outcomes.

Selected only with ``-m cluster`` (scripts/test's cluster phase), since the rest of the suite
runs on one broker. ``FLAMINGOCK_SERVICES_DIR`` must name the cluster's services dir.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
)

from flamingock_es.adapters.kafka.admin import topic_specs
from flamingock_es.adapters.kafka.config import parse_bus

from .parked import Finished, parked_run
from .runner_support import Audit, RunnerProject, ok, read_audit, unit_id
from .test_kafka_runners import MARK

pytestmark = [pytest.mark.kafka, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "scripts" / "services"
KAFKA_TOOL = REPO / "scripts" / "kafka-tool"
NODES = 3


def _run(*command: str | Path, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in command], cwd=REPO, text=True,
                            capture_output=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stderr}"
    return result


@dataclass
class Cluster:
    """The cluster of ``scripts/services``: its nodes' pids, leaders, and kill/restart."""

    bootstrap: str

    def __post_init__(self) -> None:
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})

    def nodes(self) -> list[dict[str, Any]]:
        status = json.loads(_run(SERVICES, "status", "--json").stdout)
        nodes: list[dict[str, Any]] = status["kafka"]["nodes"]
        return nodes

    def pid(self, node_id: int) -> int:
        (node,) = [n for n in self.nodes() if n["node_id"] == node_id]
        assert node["up"], node
        return int(node["pid"])

    def leader(self, topic: str) -> int:
        """The node that leads the topic's only partition; -1 while the node that answered
        has not yet learned of the partition (just after the topic's creation)."""
        metadata = self.admin.list_topics(topic, timeout=15).topics[topic]
        partition = metadata.partitions.get(0)
        return -1 if partition is None else int(partition.leader)

    def leaders(self, *topics: str) -> set[int]:
        """The nodes that lead the only partition of each of ``topics``."""
        return {self.leader(topic) for topic in topics}

    def active_controller(self) -> int:
        """The KRaft quorum's leader, as Kafka's own metadata-quorum tool reports it."""
        described = _run(KAFKA_TOOL, "metadata-quorum", "--bootstrap-server", self.bootstrap,
                         "describe", "--status")
        found = re.search(r"^LeaderId:\s+(\d+)", described.stdout, re.MULTILINE)
        assert found, described.stdout
        return int(found[1])

    def kill(self, node_id: int) -> float:
        """``kill -9`` the node's JVM; returns when it is gone (the kill's time)."""
        pid = self.pid(node_id)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            time.sleep(0.05)
        return killed

    def start(self, node_id: int) -> None:
        _run(SERVICES, "start", f"kafka-{node_id}")

    def wait_in_sync(self, timeout: float = 120.0) -> None:
        """Until every node is back in the in-sync replicas of every partition (the
        coordinators' internal topics too): the next test starts on a healthy cluster."""
        deadline = time.monotonic() + timeout
        while True:
            lagging = [f"{topic.topic}[{p.id}]: ISR {p.isrs}"
                       for topic in self.admin.list_topics(timeout=15).topics.values()
                       for p in topic.partitions.values()
                       if len(p.replicas) == NODES and len(p.isrs) < NODES]
            if not lagging:
                return
            assert time.monotonic() < deadline, lagging[:5]
            time.sleep(0.5)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.fixture(scope="module")
def cluster(kafka_bootstrap: str) -> Iterator[Cluster]:
    """The cluster; fails unless three nodes answer. Every node is running again after."""
    cluster = Cluster(kafka_bootstrap)
    brokers = cluster.admin.list_topics(timeout=15).brokers
    if len(brokers) < NODES or len(cluster.nodes()) != NODES:
        pytest.fail(f"{kafka_bootstrap} is not the {NODES}-node cluster of this services dir "
                    f"({len(brokers)} broker(s)): run scripts/services up --brokers 3 with "
                    "FLAMINGOCK_SERVICES_DIR set, and eval its env", pytrace=False)
    yield cluster
    _run(SERVICES, "start", "kafka")


@pytest.fixture
def project(tmp_path: Path, cluster: Cluster) -> RunnerProject:
    return RunnerProject(tmp_path / "proj", f"kafka://{cluster.bootstrap}",
                         f"cluster-{uuid.uuid4().hex[:12]}")


def test_topics_default_to_three_replicas_and_two_in_sync(
        project: RunnerProject, cluster: Cluster) -> None:
    ok(project.cli("run"))  # creates the namespace's topics, nothing configured
    topics = [f"flamingock.{kind}.{project.namespace}" for kind in ("audit", "lock")]
    metadata = cluster.admin.list_topics(timeout=15).topics
    for topic in topics:
        assert len(metadata[topic].partitions[0].replicas) == NODES
    futures = cluster.admin.describe_configs([ConfigResource("topic", t) for t in topics])
    for future in futures.values():
        assert future.result(timeout=15)["min.insync.replicas"].value == "2"


def _kill_mid_unit(project: RunnerProject, cluster: Cluster, victim: str) -> Finished:
    """Run three units; while u0002 is parked, kill -9 the ``victim`` node ("leader" of the
    audit partition, or the active "controller"), then release u0002. The node is started
    again before this returns."""
    for n in (1, 2, 3):
        project.add_unit(n)
    audit_topic = f"flamingock.audit.{project.namespace}"
    with parked_run(project, "u0002") as run:
        node = cluster.leader(audit_topic) if victim == "leader" else cluster.active_controller()
        cluster.kill(node)
    cluster.start(node)
    cluster.wait_in_sync()
    return run


COORDINATORS = ("__consumer_offsets", "__transaction_state")
"""One partition each here (scripts/services): their leaders are the group coordinator of
every group, the lock's included, and the transaction coordinator of every writer."""


def _place_topics_away_from(project: RunnerProject, cluster: Cluster) -> int:
    """A node that a run on ``project`` needs only as a follower, and the namespace's topics
    created (as an operator may, before the first run) so that it leads none of them: it
    leads neither coordinator, nor, if there is a choice, the controller quorum."""
    coordinators = cluster.leaders(*COORDINATORS)
    followers = [n for n in range(1, NODES + 1) if n not in coordinators]
    assert followers, f"both coordinators cannot be on all {NODES} nodes: {coordinators}"
    controller = cluster.active_controller()
    victim = next((n for n in followers if n != controller), followers[0])
    leader = min(coordinators)
    settings = parse_bus(project.bus)
    specs = topic_specs(settings, settings.topics(project.namespace), NODES)
    assignment = [[leader, *(n for n in range(1, NODES + 1) if n != leader)]]
    futures = cluster.admin.create_topics(
        [NewTopic(spec.topic, 1, replica_assignment=assignment, config=spec.config)
         for spec in specs], operation_timeout=30)
    for future in futures.values():
        future.result(timeout=30)
    names = [spec.topic for spec in specs]
    deadline = time.monotonic() + 30
    while cluster.leaders(*names) != {leader}:  # elected once the topics are created
        assert time.monotonic() < deadline, {name: cluster.leader(name) for name in names}
        time.sleep(0.1)
    return victim


def test_kill_a_follower_mid_run_and_the_run_finishes(
        project: RunnerProject, cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    """kill -9 a node that leads nothing the run uses: every write still has two in-sync
    replicas, so the run must not even fail cleanly; it finishes, each unit once."""
    victim = _place_topics_away_from(project, cluster)
    for n in (1, 2, 3):
        project.add_unit(n)
    with parked_run(project, "u0002") as run:
        names = [f"flamingock.{kind}.{project.namespace}" for kind in ("audit", "lock")]
        assert victim not in cluster.leaders(*names, *COORDINATORS)
        cluster.kill(victim)
    cluster.start(victim)
    cluster.wait_in_sync()

    assert run.code == 0, run.err
    assert "Traceback" not in run.err
    assert project.started_effects() == ["u0001", "u0002", "u0003"]
    assert project.applied_effects() == ["u0001", "u0002", "u0003"]
    audit = read_audit(project.bus, project.namespace)
    audit.assert_intact()
    assert Counter(e.payload.unit_id for e in audit.kinds("ChangeSucceeded")) == {  # type: ignore[attr-defined]
        "u0001": 1, "u0002": 1, "u0003": 1}
    assert audit.report.state.counts() == {"APPLIED": 3}
    ok(project.cli("verify"))
    with capsys.disabled():
        print(f"\n[cluster] kill -9 of follower node {victim} mid-run: runner exit {run.code}, "
              f"{len(audit.events)} events")


def _assert_finished_or_failed_cleanly(project: RunnerProject, code: int, err: str) -> Audit:
    """Nothing lost, nothing duplicated, the chain intact, whichever way the run ended."""
    audit = read_audit(project.bus, project.namespace)
    audit.assert_intact()
    assert project.started_effects().count("u0002") == 1
    if code == 0:
        assert project.applied_effects() == ["u0001", "u0002", "u0003"]
        assert project.started_effects() == ["u0001", "u0002", "u0003"]
        assert Counter(e.payload.unit_id for e in audit.kinds("ChangeSucceeded")) == {  # type: ignore[attr-defined]
            "u0001": 1, "u0002": 1, "u0003": 1}
        assert audit.report.state.counts() == {"APPLIED": 3}
    else:  # a clear error; what was durable stays, nothing after it ran
        assert code in (3, 5), err
        assert "flamingock-es: error:" in err
        assert "Traceback" not in err
        assert project.applied_effects()[:1] == ["u0001"]
        assert "u0003" not in project.started_effects()
        rerun = project.cli("run")
        assert rerun.returncode in (0, 7), rerun.stderr
        if rerun.returncode == 7:
            assert MARK in rerun.stderr
    ok(project.cli("verify"))
    return audit


@pytest.mark.parametrize("victim", ["leader", "controller"])
def test_kill_a_node_mid_run(project: RunnerProject, cluster: Cluster, victim: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """kill -9 the audit partition's leader, or the active controller, inside a unit."""
    started = time.monotonic()
    run = _kill_mid_unit(project, cluster, victim)
    assert run.code is not None
    audit = _assert_finished_or_failed_cleanly(project, run.code, run.err)
    with capsys.disabled():
        print(f"\n[cluster] kill -9 of the {victim} mid-run: runner exit {run.code}, "
              f"{len(audit.events)} events, {time.monotonic() - started:.1f}s with the restart")


class Contenders:
    """Runner workers (``runner_support.py``) of one project, driven round by round."""

    def __init__(self, project: RunnerProject, count: int) -> None:
        self.project = project
        self.procs = [project.worker() for _ in range(count)]
        for proc in self.procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr

    def round(self, n: int) -> list[dict[str, Any]]:
        """Pend unit ``n`` and start every worker at once; their answers."""
        self.project.add_unit(n)
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"go {n}\n")
            proc.stdin.flush()
        answers = []
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, f"worker {proc.pid} died: {proc.stderr.read() if proc.stderr else ''}"
            answers.append(json.loads(line))
        return answers

    def close(self) -> None:
        for proc in self.procs:
            proc.communicate(input="", timeout=60)


def test_contention_while_a_node_is_down_and_comes_back(
        project: RunnerProject, cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    contenders = Contenders(project, 4)
    answers: list[dict[str, Any]] = []
    rounds = iter(range(1, 100))
    try:
        answers += contenders.round(next(rounds))  # creates the topics, every node up
        victim = cluster.leader(f"flamingock.audit.{project.namespace}")
        cluster.kill(victim)
        for _ in range(3):
            answers += contenders.round(next(rounds))
        restart = subprocess.Popen([str(SERVICES), "start", f"kafka-{victim}"], cwd=REPO,
                                   text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while restart.poll() is None:  # runs go on while the node comes back
            answers += contenders.round(next(rounds))
        _, restart_err = restart.communicate()
        assert restart.returncode == 0, restart_err
        for _ in range(2):
            answers += contenders.round(next(rounds))
    finally:
        contenders.close()
    units = len(answers) // 4
    uids = [unit_id(n) for n in range(1, units + 1)]
    # A run may fail while the dead node still leads a partition (until the controller
    # fences it), or time out waiting for a holder that is retrying its writes meanwhile;
    # it fails before it starts a unit, and the unit stays pending for the next. The counts
    # below prove that no failure lost or repeated a side effect.
    errors = [a["error"] for a in answers if "error" in a]
    clean = ("KafkaUnavailableError", "LockTimeoutError")
    assert all(e.startswith(clean) for e in errors), errors
    ok(project.cli("run"))  # applies whatever the last round left pending

    assert project.applied_effects() == uids  # each exactly once, in order
    assert project.started_effects() == uids
    audit = read_audit(project.bus, project.namespace)
    audit.assert_intact()
    succeeded = Counter(e.payload.unit_id for e in audit.kinds("ChangeSucceeded"))  # type: ignore[attr-defined]
    assert succeeded == dict.fromkeys(uids, 1)
    with capsys.disabled():
        print(f"\n[cluster] 4 runners, {units} rounds, node {victim} killed after round 1 and "
              f"restarted: every unit applied once; {len(errors)} of {len(answers)} runs failed "
              f"cleanly ({dict(Counter(e.split(':')[0] for e in errors))}); "
              f"audit events {len(audit.events)}")
