"""What an attacker with a plain client on a broker without ACLs still tried, on Kafka: forged
records in a row, garbage between forgeries, a forged run, a forged answer to a request, a
record injected while a runner holds the lock, the namespace's topics and lock group deleted,
the audit transactional id taken, a transaction left open on the audit topic.

A signature vouches only for what its signer appended, a quarantine excludes exactly the
records it names, and every message says what is known. Side effects are counted at the
broker (a topic of their own, read with a plain consumer), not by the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from flamingock_es.core.events import RunFinished, RunOutcome, RunStarted

from .forgery import effects, effects_topic, forge, garbage, rolled_back
from .runner_support import KAFKA_TOOL

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
UNITS = '''\
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path

from flamingock_es import change_unit
from tests.integration.forgery import effect, forge, rolled_back

EFFECTS = {effects!r}
BOOTSTRAP, NAMESPACE = {bootstrap!r}, {namespace!r}


def _apply(uid):
    if Path(f"inject-{{uid}}").exists():  # the attacker strikes while the lock is held
        forge(BOOTSTRAP, NAMESPACE, rolled_back("u1"))
    if Path(f"hijack-{{uid}}").exists():  # ... or takes the audit transactional id
        from confluent_kafka import Producer
        Producer({{"bootstrap.servers": BOOTSTRAP,
                  "transactional.id": f"flamingock.audit.{{NAMESPACE}}"}}).init_transactions(30)
    effect(EFFECTS, f"apply {{uid}}")


@change_unit(id="u1", order=1, author="it")
def u1(ctx):
    _apply("u1")


@change_unit(id="u2", order=2, author="it")
def u2(ctx):
    _apply("u2")


@change_unit(id="u3", order=3, author="it")
def u3(ctx):
    _apply("u3")
'''
LATER = '''
@change_unit(id="u4", order=4, author="it")
def u4(ctx):
    _apply("u4")


@change_unit(id="u5", order=5, author="it")
def u5(ctx):
    _apply("u5")
'''


@dataclass
class Signed:
    """A signed namespace on the broker, its project directory, and where effects land."""

    path: Path
    bootstrap: str
    namespace: str
    effects_topic: str

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flamingock_es.cli", *args], cwd=self.path,
                              env=_env(), text=True, capture_output=True, timeout=timeout,
                              check=False)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "flamingock_es.cli", *args],
                                cwd=self.path, env=_env(), text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def applied(self, unit: str) -> int:
        """How often ``unit``'s side effect reached the broker."""
        return effects(self.bootstrap, self.effects_topic).count(f"apply {unit}")

    def flag(self, name: str) -> None:
        (self.path / name).touch()

    def forge(self, *payloads: object, **how: str) -> list[int]:
        return forge(self.bootstrap, self.namespace, *payloads, **how)  # type: ignore[arg-type]

    def garbage(self) -> int:
        return garbage(self.bootstrap, self.namespace)


def _env() -> dict[str, str]:
    env = {**os.environ, "FLAMINGOCK_PRINCIPAL": "it-runner", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONWARNINGS", None)
    return env


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert result.returncode == code, (
        f"exit {result.returncode}, expected {code}\n--- stdout\n{result.stdout}"
        f"--- stderr\n{result.stderr}")
    return result


@pytest.fixture
def signed(tmp_path: Path, kafka_bootstrap: str) -> Signed:
    """Three units applied once by a runner that signs every append."""
    namespace = f"forge-{uuid.uuid4().hex[:10]}"
    project = Signed(tmp_path, kafka_bootstrap, namespace, effects_topic(kafka_bootstrap))
    for name in ("runner", "alice"):
        ok(project.cli("keys", "generate", name))
    (tmp_path / "changes").mkdir()
    (tmp_path / "changes" / "units.py").write_text(UNITS.format(
        repo=str(REPO), effects=project.effects_topic, bootstrap=kafka_bootstrap,
        namespace=namespace))
    (tmp_path / "flamingock.yaml").write_text(yaml.safe_dump({
        "namespace": namespace, "bus": f"kafka://{kafka_bootstrap}",
        "signing_key": "keys/runner.key",
        "trust": [{"key": "keys/runner.pub", "principal": "runner-prod", "write": [namespace]},
                  {"key": "keys/alice.pub", "principal": "alice", "request": [namespace]}],
        "stages": [{"name": "main", "units": ["changes"]}]}))
    ok(project.cli("run"))
    assert [project.applied(u) for u in ("u1", "u2", "u3")] == [1, 1, 1]
    return project


def unsigned(project: Signed) -> list[int]:
    """The offsets every reader refuses, as ``verify --json`` names them."""
    findings = json.loads(ok(project.cli("verify", "--json"), 4).stdout)["findings"]
    return sorted({f["position"] for f in findings})


@pytest.mark.parametrize("count", [2, 3, 5])
def test_quarantining_one_forgery_never_launders_the_ones_behind_it(signed: Signed,
                                                                    count: int) -> None:
    forged = signed.forge(*(rolled_back(u) for u in ["u1", "u2", "u3", "u1", "u2"][:count]))
    assert unsigned(signed) == forged
    assert f"offset {forged[0]}" in ok(signed.cli("run"), 4).stderr

    ok(signed.cli("quarantine", "--offset", str(forged[0]), "--reason", "the first forgery"))

    assert unsigned(signed) == forged[1:]  # the others are still findings, one by one
    assert f"offset {forged[1]}" in ok(signed.cli("run"), 4).stderr
    ok(signed.cli("quarantine", "--offset", str(forged[1]), "--through", str(forged[-1]),
                  "--reason", "the rest, as a range"))
    assert ok(signed.cli("verify")).stdout.rstrip().endswith("chain intact")
    ok(signed.cli("run"))
    assert [signed.applied(u) for u in ("u1", "u2", "u3")] == [1, 1, 1]


def test_garbage_between_forgeries_is_one_decision_each(signed: Signed) -> None:
    offsets = [signed.garbage(), *signed.forge(rolled_back("u2")), signed.garbage(),
               *signed.forge(rolled_back("u3")), signed.garbage()]
    assert unsigned(signed) == offsets
    for done, at in enumerate(offsets):
        assert f"offset {at}" in ok(signed.cli("run"), 4).stderr  # the first one left
        ok(signed.cli("quarantine", "--offset", str(at), "--reason", "not ours"))
        if done < len(offsets) - 1:
            assert unsigned(signed) == offsets[done + 1:]
    ok(signed.cli("run"))
    assert [signed.applied(u) for u in ("u1", "u2", "u3")] == [1, 1, 1]


def test_a_forged_run_stays_unverified_until_both_of_its_records_are_excluded(
        signed: Signed) -> None:
    started, finished = signed.forge(
        RunStarted(workflow=signed.namespace, trigger="cli", planned=("u1",)),
        RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("u1",)))
    ok(signed.cli("quarantine", "--offset", str(started), "--reason", "forged"))

    report = json.loads(ok(signed.cli("replay"), 4).stdout)
    assert report["verified"] is False
    assert [f["position"] for f in report["findings"]] == [finished]
    forged_lines = [line for line in ok(signed.cli("history")).stdout.splitlines()
                    if "r-forged" in line]
    assert len(forged_lines) == 2
    assert all("UNVERIFIED" in line or "QUARANTINED" in line for line in forged_lines)

    ok(signed.cli("quarantine", "--offset", str(finished), "--reason", "forged"))
    report = json.loads(ok(signed.cli("replay")).stdout)
    assert "r-forged" not in {run["run_id"] for run in report["runs"]}


def test_a_forged_answer_answers_no_request_and_a_quarantined_record_stops_none(
        signed: Signed) -> None:
    """With no runner serving, a forged SUCCEEDED carrying a pending request's id is no
    answer. Garbage, once quarantined, no longer stops a requester following the log."""
    waiting = signed.spawn("request", "--wait", "--timeout", "15", "--key", "keys/alice.key",
                           "--reason", "r", "--unit", "u1", "--id", "pending-1")
    time.sleep(3)  # published, and following the log
    signed.forge(RunStarted(workflow=signed.namespace, trigger="request", planned=("u1",)),
                 RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("u1",)),
                 request_id="pending-1")
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 3, err
    assert "SUCCEEDED" not in out
    assert "no answer to request pending-1" in err
    for at in unsigned(signed):
        ok(signed.cli("quarantine", "--offset", str(at), "--reason", "forged answer"))
    ok(signed.cli("quarantine", "--offset", str(signed.garbage()), "--reason", "garbage"))

    server = signed.spawn("serve")
    try:
        answered = ok(signed.cli("request", "--wait", "--timeout", "60", "--key",
                                 "keys/alice.key", "--reason", "r", "--id", "real-1"))
        assert "SUCCEEDED" in answered.stdout
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert [signed.applied(u) for u in ("u1", "u2", "u3")] == [1, 1, 1]


def test_a_record_injected_while_the_lock_is_held_stops_the_runner_and_is_named(
        signed: Signed) -> None:
    """The unit plays the attacker: while the runner holds the lock, a plain producer
    appends a forged mark. The runner finds it after its next commit, names it, stops after
    the unit in hand; once it is quarantined every reader, the projection included, goes on."""
    with (signed.path / "changes" / "units.py").open("a") as units:
        units.write(LATER)
    signed.flag("inject-u4")

    stopped = ok(signed.cli("run"), 4)

    assert "this runner did not write landed on" in stopped.stderr, stopped.stderr
    foreign, own = unsigned(signed)  # the runner's next record chains around it
    assert f"BREAK at offset {own}" in ok(signed.cli("verify"), 4).stdout
    assert f"chains to the event before offset {foreign}" in ok(signed.cli("verify"), 4).stdout
    assert f"flamingock-es quarantine --offset {foreign}" in stopped.stderr
    assert signed.applied("u4") == 1
    assert "applied 1" in stopped.stderr  # u4's success is durable, and said
    assert signed.applied("u5") == 0  # the run stopped after the unit in hand
    assert f"offset {foreign}" in ok(signed.cli("status"), 4).stderr

    (signed.path / "inject-u4").unlink()
    ok(signed.cli("quarantine", "--offset", str(foreign), "--reason", "injected"))

    assert ok(signed.cli("verify")).stdout.rstrip().endswith("chain intact")
    status = json.loads(ok(signed.cli("status", "--json")).stdout)
    assert {r["unit_id"]: r["status"] for r in status["rows"]}["u4"] == "APPLIED"
    ok(signed.cli("project", "--once"))
    ok(signed.cli("state"))
    ok(signed.cli("run"))
    assert [signed.applied(u) for u in ("u1", "u2", "u3", "u4", "u5")] == [1, 1, 1, 1, 1]


def test_a_namespace_deleted_and_created_again_is_refused(signed: Signed) -> None:
    """Deleting the audit topic alone is caught by the lock group's record of the end; an
    attacker deletes the group too. The runner remembers the head it saw, off the bus."""
    admin = AdminClient({"bootstrap.servers": signed.bootstrap})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.endswith(signed.namespace)]
    assert f"flamingock.audit.{signed.namespace}" in topics
    for future in admin.delete_topics(topics).values():
        future.result(30)
    for future in admin.delete_consumer_groups([f"flamingock.lock.{signed.namespace}"]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while any(t in admin.list_topics(timeout=10).topics for t in topics):
        assert time.monotonic() < deadline, "the topics were never deleted"
        time.sleep(0.2)

    refused = ok(signed.cli("run"), 4)

    assert "the namespace was deleted and created again" in refused.stderr, refused.stderr
    assert "rm .flamingock/heads/" in refused.stderr
    assert [signed.applied(u) for u in ("u1", "u2", "u3")] == [1, 1, 1]


def test_a_hijacked_transactional_id_is_taken_back_and_said(signed: Signed) -> None:
    """A client outside the lock calls init_transactions with the namespace's audit
    transactional id in the middle of a unit: the runner's next commit is fenced, the group
    coordinator still gives it the lock, so it takes the id back and says who fenced it."""
    with (signed.path / "changes" / "units.py").open("a") as units:
        units.write(LATER)
    signed.flag("hijack-u4")

    run = ok(signed.cli("run"))

    assert "a client outside the lock took the id" in run.stderr, run.stderr
    assert "another runner holds the lock" not in run.stderr
    assert [signed.applied(u) for u in ("u4", "u5")] == [1, 1]
    assert ok(signed.cli("verify")).stdout.rstrip().endswith("chain intact")


def test_a_transaction_left_open_on_the_audit_topic_is_named_with_how_to_end_it(
        signed: Signed) -> None:
    topic = f"flamingock.audit.{signed.namespace}"
    stranger = Producer({"bootstrap.servers": signed.bootstrap, "transactional.id": "stranger",
                         "transaction.timeout.ms": 600000})
    stranger.init_transactions(30)
    stranger.begin_transaction()
    stranger.produce(topic, b"hidden", partition=0)
    assert stranger.flush(30) == 0
    with (signed.path / "changes" / "units.py").open("a") as units:
        units.write(LATER)

    started = time.monotonic()
    refused = ok(signed.cli("run"), 5)

    assert time.monotonic() - started < 30
    assert "a transaction that is not this namespace's writer's" in refused.stderr
    assert "aborting it" not in refused.stderr
    assert "Is the broker running?" not in refused.stderr
    command = next(line.strip().removeprefix("to resolve: ") for line in
                   refused.stderr.splitlines() if "transactions abort" in line)
    assert command.startswith("scripts/kafka-tool transactions abort --topic ")
    assert signed.applied("u4") == 0

    aborted = subprocess.run([str(KAFKA_TOOL), *command.split()[1:]], text=True,
                             capture_output=True, timeout=120, check=False)
    assert aborted.returncode == 0, aborted.stderr
    ok(signed.cli("run"))
    assert [signed.applied(u) for u in ("u1", "u2", "u3", "u4", "u5")] == [1, 1, 1, 1, 1]
