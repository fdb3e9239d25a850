"""Least privilege on a real broker: SASL/SCRAM over TLS, the StandardAuthorizer, and the ACLs
of ``scripts/kafka/acls`` (``scripts/services up --secure``).

Each principal does its job through the CLI, configured only by the ``kafka:`` block of its
own ``flamingock.yaml``: the runner runs and serves, the requester publishes a request and
waits for its answer, the projector projects, the auditor verifies and replays. Beyond its
job each is refused with Kafka's own authorization error. The admin (a super user)
pre-creates the namespace's topics, so that nobody else needs Create.

The ACLs the broker holds, the file the set-up applied and the table in
docs/operations-kafka.md are checked against each other.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from flamingock_es import api
from flamingock_es.cli.status_codes import exit_code
from flamingock_es.definition.signing import set_up_signing
from flamingock_es.errors import FlamingockError
from flamingock_es.namespace import open_backend

from .conftest import SecureKafka
from .runner_support import Audit, RunnerProject, ok
from .test_kafka_tool import kafka_tool

pytestmark = [pytest.mark.kafka, pytest.mark.secure]

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "operations-kafka.md"
ACLS = REPO / "scripts" / "kafka" / "acls"
CLI = [sys.executable, "-m", "flamingock_es.cli"]
DENIED = "Topic authorization failed"
"""librdkafka's text for Kafka's TOPIC_AUTHORIZATION_FAILED."""


@pytest.fixture
def namespace(secure_kafka: SecureKafka) -> str:
    """A namespace whose topics the admin created (with the project's own topic specs)."""
    name = f"acl-{uuid.uuid4().hex[:12]}"
    with open_backend(f"kafka://{secure_kafka.bootstrap}", name, secure_kafka.options("admin")):
        pass
    return name


def _config(path: Path, secure: SecureKafka, principal: str, namespace: str) -> Path:
    """``path/flamingock.yaml`` for ``principal``: its Kafka options under ``kafka:``."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "flamingock.yaml"
    doc = yaml.safe_load(config.read_text()) if config.exists() else {}
    doc |= {"namespace": namespace, "bus": f"kafka://{secure.bootstrap}",
            "kafka": secure.options(principal)}
    config.write_text(yaml.safe_dump(doc))
    return config


def _cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``flamingock-es ARGS -c CONFIG``: everything else comes from the file."""
    return subprocess.run([*CLI, *args, "-c", str(config)], cwd=config.parent, text=True,
                          capture_output=True, timeout=timeout, check=False)


def _produce(secure: SecureKafka, principal: str, topic: str) -> KafkaError | None:
    """One record to ``topic`` as ``principal``: the delivery error, if any."""
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": secure.bootstrap, **secure.options(principal),
                         "message.timeout.ms": 15000})
    producer.produce(topic, b"not an audit event", on_delivery=lambda err, _: errors.append(err))
    producer.flush(30)
    assert len(errors) == 1
    return errors[0]


def test_each_principal_does_its_job(tmp_path: Path, secure_kafka: SecureKafka,
                                     namespace: str) -> None:
    bus = f"kafka://{secure_kafka.bootstrap}"
    runner = RunnerProject(tmp_path / "runner", bus, namespace)
    runner_config = _config(runner.path, secure_kafka, "runner", namespace)
    runner.add_unit(1)
    ok(runner.cli("run"))
    assert runner.applied_effects() == ["u0001"]

    # serve (runner) executes what the requester asks, and the requester sees the answer
    runner.add_unit(2)
    server = subprocess.Popen([*CLI, "serve", "-c", str(runner_config), "--max-requests", "1",
                               "-q"], cwd=runner.path, text=True, stderr=subprocess.PIPE)
    try:
        requester = _config(tmp_path / "requester", secure_kafka, "requester", namespace)
        answer = ok(_cli(requester, "request", "--reason", "acl test", "--wait",
                         "--timeout", "120", timeout=180))
        assert "SUCCEEDED" in answer.stdout
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()
    assert runner.applied_effects() == ["u0001", "u0002"]  # each once
    assert runner.started_effects() == ["u0001", "u0002"]

    projector = _config(tmp_path / "projector", secure_kafka, "projector", namespace)
    projected = ok(_cli(projector, "project", "--once", "--store",
                        f"sqlite:{tmp_path / 'projection.db'}"))
    assert "projected" in projected.stdout + projected.stderr

    auditor = _config(tmp_path / "auditor", secure_kafka, "auditor", namespace)
    ok(_cli(auditor, "verify"))
    replay = ok(_cli(auditor, "replay"))
    assert "u0002" in replay.stdout
    audit = Audit(api.verify(bus=bus, namespace=namespace,
                             bus_options=secure_kafka.options("auditor")))
    audit.assert_intact()
    assert [e.payload.unit_id for e in audit.kinds("ChangeSucceeded")] == [  # type: ignore[attr-defined]
        "u0001", "u0002"]


def test_a_signed_runner_publishes_checkpoints_that_the_auditor_reads_and_proves(
        tmp_path: Path, secure_kafka: SecureKafka, namespace: str) -> None:
    bus = f"kafka://{secure_kafka.bootstrap}"
    runner = RunnerProject(tmp_path / "runner", bus, namespace)
    set_up_signing(runner.path, namespace)  # as init signs a project
    _config(runner.path, secure_kafka, "runner", namespace)
    runner.add_unit(1)
    ok(runner.cli("run"))  # its checkpoint on flamingock.checkpoints.NS, as the runner

    auditor = _config(tmp_path / "auditor", secure_kafka, "auditor", namespace)
    doc = yaml.safe_load(auditor.read_text())
    auditor.write_text(yaml.safe_dump({**doc, "trust": str(runner.path / "trust")}))
    verified = ok(_cli(auditor, "verify")).stdout
    assert "holds, signed" in verified, verified
    assert verified.rstrip().endswith("chain intact")
    proof = tmp_path / "u0001.proof.json"
    ok(_cli(auditor, "prove", "u0001", "-o", str(proof)))
    assert ok(subprocess.run([*CLI, "verify-proof", str(proof)], cwd=tmp_path, text=True,
                             capture_output=True, timeout=60, check=False)
              ).stdout.rstrip().endswith("proof holds")


@pytest.mark.parametrize("principal", ["requester", "projector", "auditor"])
def test_only_the_runner_can_write_the_checkpoints(secure_kafka: SecureKafka, namespace: str,
                                                   principal: str) -> None:
    error = _produce(secure_kafka, principal, f"flamingock.checkpoints.{namespace}")
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error


def test_the_requester_cannot_write_the_audit_log(secure_kafka: SecureKafka,
                                                  namespace: str) -> None:
    error = _produce(secure_kafka, "requester", f"flamingock.audit.{namespace}")
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error


@pytest.mark.parametrize("topic", ["audit", "lock", "requests", "requests-dlq"])
def test_the_projector_cannot_write_anything(secure_kafka: SecureKafka, namespace: str,
                                             topic: str) -> None:
    error = _produce(secure_kafka, "projector", f"flamingock.{topic}.{namespace}")
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error


def test_the_projector_cannot_publish_a_request(tmp_path: Path, secure_kafka: SecureKafka,
                                                namespace: str) -> None:
    projector = _config(tmp_path, secure_kafka, "projector", namespace)
    refused = _cli(projector, "request", "--reason", "not mine to ask")
    assert refused.returncode != 0
    # It cannot even see the topics it would write, so creating them is what Kafka refuses.
    assert "TOPIC_AUTHORIZATION_FAILED" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_auditor_cannot_join_the_lock_group(secure_kafka: SecureKafka,
                                                namespace: str) -> None:
    consumer = Consumer({"bootstrap.servers": secure_kafka.bootstrap,
                         **secure_kafka.options("auditor"),
                         "group.id": f"flamingock.lock.{namespace}", "group.protocol": "consumer"})
    try:
        consumer.subscribe([f"flamingock.lock.{namespace}"])
        error = _first_error(lambda: consumer.poll(1.0), seconds=30)
    finally:
        consumer.close()
    assert error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, error


def test_the_auditor_cannot_run(tmp_path: Path, secure_kafka: SecureKafka,
                                namespace: str) -> None:
    project = RunnerProject(tmp_path, f"kafka://{secure_kafka.bootstrap}", namespace)
    _config(project.path, secure_kafka, "auditor", namespace)
    project.add_unit(1)
    refused = project.cli("run")
    assert refused.returncode != 0
    assert "TOPIC_AUTHORIZATION_FAILED" in refused.stderr, refused.stderr
    assert project.effects() == []  # nothing ran


def test_the_lock_names_kafkas_refusal(secure_kafka: SecureKafka, namespace: str) -> None:
    bus = f"kafka://{secure_kafka.bootstrap}"
    options = secure_kafka.options("auditor")
    with (open_backend(bus, namespace, options, create=False) as backend,
          pytest.raises(FlamingockError) as refused):
        backend.lock.acquire("auditor", 30)
    assert "GROUP_AUTHORIZATION_FAILED" in str(refused.value)
    assert "ACL" in str(refused.value)
    assert exit_code(refused.value) == 5


def _first_error(poll: Callable[[], object], seconds: float) -> KafkaError:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = poll()
        error = getattr(message, "error", lambda: None)()
        if error is not None:
            return error  # type: ignore[no-any-return]
    raise AssertionError(f"no error within {seconds:g}s")


# The ACLs: broker, file and doc agree --------------------------------------------------------

_TYPES = {"topic": "TOPIC", "group": "GROUP", "transactional-id": "TRANSACTIONAL_ID"}


def _file_acls() -> set[tuple[str, str, str, str, str]]:
    """(principal, permission, operation, resource type, prefix) for each ACL of the file."""
    acls = set()
    for line in ACLS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        principals, permission, operations, *resources = line.split()
        for principal in principals.split(","):
            for operation in operations.split(","):
                for resource in resources:
                    kind, _, name = resource.partition(":")
                    acls.add((principal, permission.upper(), operation.upper(), _TYPES[kind],
                              name))
    return acls


def _broker_acls() -> set[tuple[str, str, str, str, str]]:
    listed = kafka_tool("--as", "admin", "acls", "--list")
    assert listed.returncode == 0, listed.stderr
    acls, pattern = set(), None
    for line in listed.stdout.splitlines():
        found = re.search(r"resourceType=(\w+), name=(\S+), patternType=(\w+)", line)
        if found:
            pattern = found.groups()
            continue
        entry = re.search(r"principal=User:(\w+), host=\*, operation=(\w+), "
                          r"permissionType=(\w+)", line)
        if entry:
            assert pattern is not None, line
            assert pattern[2] == "PREFIXED", line
            acls.add((entry[1], entry[3], entry[2], pattern[0], pattern[1]))
    return acls


def test_the_broker_holds_exactly_the_acls_of_the_file(secure_kafka: SecureKafka) -> None:
    assert _broker_acls() == _file_acls()


def test_the_doc_lists_exactly_the_acls_of_the_file() -> None:
    table = subprocess.run([str(REPO / "scripts" / "services"), "acls", "--markdown"],
                           text=True, capture_output=True, check=True, timeout=30).stdout
    doc = DOC.read_text()
    start, end = "<!-- acls: scripts/services acls --markdown -->\n", "<!-- /acls -->"
    assert start in doc
    assert end in doc
    assert doc.split(start, 1)[1].split(end, 1)[0] == table


# The doors an attacker with credentials would try: deleting the namespace, taking its id ----

@pytest.mark.parametrize("principal", ["runner", "requester", "projector", "auditor"])
def test_nobody_but_the_admin_can_delete_a_namespace(secure_kafka: SecureKafka, namespace: str,
                                                     principal: str) -> None:
    """Deleting the topics and the lock group would let a namespace start over (every unit
    applied again): no principal of the file has Delete, so Kafka refuses both."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": secure_kafka.bootstrap,
                         **secure_kafka.options(principal)})
    topic = f"flamingock.audit.{namespace}"
    with pytest.raises(KafkaException) as topic_refused:
        admin.delete_topics([topic], operation_timeout=15)[topic].result(30)
    assert _code(topic_refused.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    group = f"flamingock.lock.{namespace}"
    with pytest.raises(KafkaException) as group_refused:
        admin.delete_consumer_groups([group], request_timeout=15)[group].result(30)
    assert _code(group_refused.value) == KafkaError.GROUP_AUTHORIZATION_FAILED
    listed = AdminClient({"bootstrap.servers": secure_kafka.bootstrap,
                          **secure_kafka.options("admin")}).list_topics(timeout=10).topics
    assert topic in listed


@pytest.mark.parametrize("principal", ["requester", "projector", "auditor"])
def test_only_the_runner_can_take_the_audit_transactional_id(
        secure_kafka: SecureKafka, namespace: str, principal: str) -> None:
    """Taking the id fences the runner's writer (init_transactions bumps its epoch): only the
    runner has Write on TransactionalId flamingock.audit."""
    producer = Producer({"bootstrap.servers": secure_kafka.bootstrap,
                         **secure_kafka.options(principal),
                         "transactional.id": f"flamingock.audit.{namespace}"})
    with pytest.raises(KafkaException) as refused:
        producer.init_transactions(30)
    assert _code(refused.value) == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def _code(error: BaseException) -> int | None:
    """The Kafka error code a confluent-kafka exception carries."""
    found = error.args[0] if error.args else None
    return found.code() if isinstance(found, KafkaError) else None
