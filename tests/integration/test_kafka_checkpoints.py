"""Checkpoints on Kafka, against the real broker: at the end of every run a runner publishes a
signed C2SP checkpoint of its log's tree on the namespace's compacted topic
(``flamingock.checkpoints.NS``: one partition, each record keyed by its tree size), and
``verify``, ``prove`` and ``verify-proof`` read it back from there.

What the topic holds is read here with a bare consumer, and the tree's root is computed here
from the audit topic's record values (RFC 6962: ``SHA-256(0x00 || record)`` leaves), so the
checkpoint is checked against the broker's bytes, not against what the project says of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]
from cryptography.hazmat.primitives import serialization

from flamingock_es.core.evidence import Published, default_origin
from flamingock_es.core.merkle import Frontier, leaf_hash, root_of
from flamingock_es.core.note import (
    ALG_ED25519,
    Checkpoint,
    NoteSigner,
    Verifier,
    open_checkpoint,
    sign_note,
)
from flamingock_es.core.trust import load_signer
from flamingock_es.definition.signing import set_up_signing
from tests.interop import tlog_verify

from .runner_support import RunnerProject, ok

pytestmark = pytest.mark.kafka


@pytest.fixture
def project(tmp_path: Path, kafka_bootstrap: str) -> RunnerProject:
    """A signed project (as ``init`` signs one) of two units, on a namespace of its own."""
    namespace = f"checkpoints-{uuid.uuid4().hex[:12]}"
    made = RunnerProject(tmp_path / "proj", f"kafka://{kafka_bootstrap}", namespace)
    set_up_signing(made.path, namespace)
    made.add_unit(1)
    made.add_unit(2)
    return made


def _values(bootstrap: str, topic: str, *, committed: bool) -> list[tuple[bytes, bytes]]:
    """Every record's (key, value) on partition 0 of ``topic``, read by a bare consumer."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed" if committed
                         else "read_uncommitted"})
    try:
        partition = TopicPartition(topic, 0)
        low, high = consumer.get_watermark_offsets(partition, timeout=15)
        consumer.assign([TopicPartition(topic, 0, low)])
        out: list[tuple[bytes, bytes]] = []
        while True:
            message = consumer.poll(5)
            if message is None:  # at the end (the last offset of a transactional topic
                break            # is its commit marker, never delivered)
            assert message.error() is None, message.error()
            out.append((message.key() or b"", message.value() or b""))
            if (message.offset() or 0) >= high - 1:
                break
        return out
    finally:
        consumer.close()


def _checkpoints(project: RunnerProject, bootstrap: str) -> list[tuple[bytes, Published]]:
    topic = f"flamingock.checkpoints.{project.namespace}"
    return [(key, Published.parse(value))
            for key, value in _values(bootstrap, topic, committed=False)]


def _audit_leaves(project: RunnerProject, bootstrap: str) -> list[bytes]:
    topic = f"flamingock.audit.{project.namespace}"
    return [leaf_hash(value) for _, value in _values(bootstrap, topic, committed=True)]


def _runner_verifier(project: RunnerProject) -> Verifier:
    public = serialization.load_pem_public_key(
        (project.path / "trust" / "runner.pub").read_bytes())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Verifier(default_origin(project.namespace), ALG_ED25519, raw)


def _outsider(tmp_path: Path, bundle: Path) -> subprocess.CompletedProcess[str]:
    """``verify-proof`` in an empty folder: no workflow, no broker, no keys but the bundle's."""
    elsewhere = tmp_path / "another-machine"
    elsewhere.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "flamingock_es.cli", "verify-proof",
                           str(bundle)], cwd=elsewhere, capture_output=True, text=True,
                          timeout=60, check=False)


def test_a_run_publishes_its_signed_checkpoint_on_the_compacted_topic(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    ok(project.cli("run"))

    topic = f"flamingock.checkpoints.{project.namespace}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert len(admin.list_topics(topic, timeout=15).topics[topic].partitions) == 1
    resource = ConfigResource("topic", topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=15)
    assert configs["cleanup.policy"].value == "compact"

    leaves = _audit_leaves(project, kafka_bootstrap)
    ((key, published),) = _checkpoints(project, kafka_bootstrap)
    assert key == str(len(leaves)).encode()  # keyed by tree size: compaction keeps each size
    checkpoint = open_checkpoint(published.note, [_runner_verifier(project)],
                                 default_origin(project.namespace))
    assert checkpoint.size == len(leaves) == published.size
    assert checkpoint.root_hash == root_of(leaves)  # the tree of the broker's bytes

    verified = ok(project.cli("verify")).stdout
    assert f"checkpoint of size {len(leaves)} (offset {published.position}) holds, signed" \
        in verified
    assert verified.rstrip().endswith("chain intact")


def test_each_run_publishes_the_next_size_and_a_consistency_proof_between_them_holds(
        project: RunnerProject, kafka_bootstrap: str, tmp_path: Path) -> None:
    ok(project.cli("run"))
    project.add_unit(3)
    ok(project.cli("run"))

    published = _checkpoints(project, kafka_bootstrap)
    sizes = [p.size for _, p in published]
    assert [key for key, _ in published] == [str(size).encode() for size in sizes]
    assert len(sizes) == 2
    assert sizes[0] < sizes[1] == len(_audit_leaves(project, kafka_bootstrap))
    assert f"checkpoint of size {sizes[1]} " in ok(project.cli("verify")).stdout  # the latest

    out = tmp_path / "consistency.json"
    ok(project.cli("prove", "--consistency", str(sizes[0]), str(sizes[1]), "-o", str(out)))
    checked = _outsider(tmp_path, out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    go = tlog_verify.run(json.loads(out.read_text()))
    assert go.ok, go.stderr
    assert f"ok consistency old_size={sizes[0]} new_size={sizes[1]}" in go.checks


def test_a_unit_is_proved_against_the_checkpoint_read_back_from_the_topic(
        project: RunnerProject, kafka_bootstrap: str, tmp_path: Path) -> None:
    ok(project.cli("run"))
    ((_, published),) = _checkpoints(project, kafka_bootstrap)

    out = tmp_path / "u0002.proof.json"
    ok(project.cli("prove", "u0002", "-o", str(out)))
    bundle = json.loads(out.read_text())
    assert bundle["checkpoint"] == published.cosigned()
    assert bundle["checkpoint_position"] == published.position
    checked = _outsider(tmp_path, out)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ChangeSucceeded is in the tree of size {published.size}" in checked.stdout
    assert tlog_verify.run(bundle).ok


def test_a_checkpoint_on_the_topic_of_another_tree_is_refused(
        project: RunnerProject, kafka_bootstrap: str) -> None:
    ok(project.cli("run"))
    ((_, published),) = _checkpoints(project, kafka_bootstrap)

    # Signed with the runner's own key, of the same size, of a tree the log does not give:
    # what a checkpoint of a rewritten history looks like once it is the latest.
    other = Frontier()
    for n in range(published.size):
        other.append(leaf_hash(b"another history %d" % n))
    origin = default_origin(project.namespace)
    key = load_signer(project.path / ".flamingock" / "keys" / "runner.key").private_key
    note = sign_note(Checkpoint(origin, other.size, other.root()).body(),
                     [NoteSigner(origin, key)])
    forged = Published(note, published.position, other, published.time)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(f"flamingock.checkpoints.{project.namespace}", forged.to_bytes(),
                     str(other.size).encode(), partition=0)
    assert producer.flush(15) == 0

    refused = ok(project.cli("verify"), 4).stdout
    assert f"the log's first {published.size} records do not give the root the checkpoint " \
        "signed: rewritten" in refused, refused
    proving = ok(project.cli("prove", "u0002"), 4).stderr  # nothing proved against it
    assert f"no longer holds the tree its signed checkpoint (size {published.size}) names" \
        in proving, proving
