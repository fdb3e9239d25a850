"""Evidence an outsider checks with their own tools, on the embedded log, as a user runs it:
a project from ``init`` is signed; a forged, chain-continuing mark is refused; a unit's proof
bundle is verified by ``verify-proof`` from another folder and by Go's sumdb code; a
consistency proof too; keys rotate and are revoked; an unsigned log is said to be one."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
import sys
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flamingock_es.core.evidence import Published
from flamingock_es.core.note import NoteSigner, sign_note
from flamingock_es.core.trust import load_signer
from tests.interop import tlog_verify

from .conftest import Project, ok
from .test_signatures import forge_append

pytestmark = pytest.mark.e2e


@pytest.fixture
def fresh(tmp_path: Path) -> Project:
    """A project exactly as `flamingock-es init` makes it (signed by default)."""
    project = Project(tmp_path / "shop")
    project.path.mkdir()
    ok(project.cli("init", "."))
    return project


def _outsider(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """flamingock-es run in an empty folder: no workflow file, no log, no keys."""
    elsewhere = tmp_path / "another-machine"
    elsewhere.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "flamingock_es.cli", *args], cwd=elsewhere,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_new_project_is_signed_from_its_first_event(fresh: Project) -> None:
    key = fresh.path / ".flamingock" / "keys" / "runner.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "/.flamingock/keys/" in (fresh.path / ".gitignore").read_text().splitlines()
    assert (fresh.path / "trust" / "trust.yaml").exists()
    ok(fresh.cli("run"))
    verified = ok(fresh.cli("verify")).stdout
    assert "signatures: checked against the trust store; trusted through offset" in verified
    assert "checkpoint of size 8" in verified
    assert "holds, signed" in verified
    assert verified.rstrip().endswith("chain intact")


def test_a_new_projects_key_may_sign_its_tenants_and_rollouts(fresh: Project) -> None:
    workflow = fresh.path / "flamingock.yaml"
    workflow.write_text(workflow.read_text().replace("stages:", "tenants: [acme, globex]\nstages:"))
    done = ok(fresh.cli("rollout", "--reason", "first release"))
    assert "2 tenant(s) succeeded, 0 failed" in done.stdout + done.stderr
    for where in (("--tenant", "acme"), ("--namespace", "shop._rollouts")):
        verified = ok(fresh.cli("verify", *where)).stdout
        assert "signatures: checked against the trust store; trusted through offset" in verified
        assert verified.rstrip().endswith("chain intact")


def test_the_forged_chain_continuing_mark_is_refused(fresh: Project) -> None:
    ok(fresh.cli("run"))
    offset = forge_append(fresh)
    verify = ok(fresh.cli("verify"), 4).stdout
    assert f"UNSIGNED offsets {offset}..{offset}" in verify
    assert "checkpoint of size 8" in verify  # the tree the runner signed still holds
    refused = ok(fresh.cli("run"), 4).stderr
    assert f"offset {offset}" in refused


def test_a_unit_proof_is_checked_elsewhere_by_verify_proof_and_by_go(
        fresh: Project, tmp_path: Path) -> None:
    ok(fresh.cli("run"))
    bundle_file = tmp_path / "hello-yaml.proof.json"
    ok(fresh.cli("prove", "hello-yaml", "-o", str(bundle_file)))
    copy = tmp_path / "another-machine" / "proof.json"
    copy.parent.mkdir()
    shutil.copy(bundle_file, copy)
    checked = _outsider(tmp_path, "verify-proof", str(copy))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ChangeSucceeded is in the tree of size 8" in checked.stdout
    bundle = json.loads(copy.read_text())
    assert len(bundle["leaves"][0]["inclusion_proof"]) == 3  # log2(8)
    go = tlog_verify.run(bundle)
    assert go.ok, go.stderr
    assert any(line.startswith("ok inclusion index=") for line in go.checks)

    record = bytearray(base64.b64decode(bundle["leaves"][0]["record"]))
    record[-40] ^= 1  # one bit of the event
    bundle["leaves"][0]["record"] = base64.b64encode(bytes(record)).decode()
    copy.write_text(json.dumps(bundle))
    assert _outsider(tmp_path, "verify-proof", str(copy)).returncode == 4
    assert not tlog_verify.run(bundle).ok


def test_a_later_checkpoint_is_proved_to_extend_an_earlier_one(
        fresh: Project, tmp_path: Path) -> None:
    ok(fresh.cli("run"))
    (fresh.path / "changes" / "u003_more.yaml").write_text(
        (fresh.path / "changes" / "u002_hello.yaml").read_text()
        .replace("hello-yaml", "more-yaml").replace("order: 2", "order: 3"))
    ok(fresh.cli("run"))
    sizes = sorted(int(p.stem) for p in (fresh.log.parent / "checkpoints").glob("*.json"))
    assert sizes[0] == 8  # one published per run
    assert sizes[-1] > 8
    out = tmp_path / "consistency.json"
    ok(fresh.cli("prove", "--consistency", "8", str(sizes[-1]), "-o", str(out)))
    bundle = json.loads(out.read_text())
    assert _outsider(tmp_path, "verify-proof", str(out)).returncode == 0
    go = tlog_verify.run(bundle)
    assert go.ok, go.stderr
    assert f"ok consistency old_size=8 new_size={sizes[-1]}" in go.checks


def test_rotated_and_revoked_keys(fresh: Project) -> None:
    ok(fresh.cli("run"))
    old = json.loads(ok(fresh.cli("keys", "list", "--json")).stdout)[0]["key_id"]
    ok(fresh.cli("keys", "rotate"))
    (fresh.path / "changes" / "u003_more.yaml").write_text(
        (fresh.path / "changes" / "u002_hello.yaml").read_text()
        .replace("hello-yaml", "more-yaml").replace("order: 2", "order: 3"))
    ok(fresh.cli("run"))
    assert ok(fresh.cli("verify")).stdout.rstrip().endswith("chain intact")  # both keys' parts

    state = json.loads(ok(fresh.cli("verify", "--json")).stdout)
    keys = json.loads(ok(fresh.cli("keys", "list", "--json")).stdout)
    new = next(k["key_id"] for k in keys if k["key_id"] != old)
    # The old key revoked after the last thing it signed: history still verifies.
    ok(fresh.cli("keys", "revoke", old, "--position", "2500", "--reason", "laptop retired"))
    assert ok(fresh.cli("verify")).stdout.rstrip().endswith("chain intact")
    # The new key revoked from before what it signed: those signatures are refused, named.
    ok(fresh.cli("keys", "revoke", new, "--position", "2500", "--reason", "leaked in a paste"))
    refused = ok(fresh.cli("verify"), 4).stdout
    assert f"key {new} (runner) was revoked from offset 2500 (leaked in a paste)" in refused
    assert state["position"] > 2500


def test_a_checkpoint_signed_by_a_revoked_key_after_its_revocation_is_refused_and_named(
        fresh: Project) -> None:
    ok(fresh.cli("run"))
    key = json.loads(ok(fresh.cli("keys", "list", "--json")).stdout)[0]["key_id"]
    revoked_at = datetime.now(UTC) + timedelta(seconds=2)  # after the run and its checkpoint
    ok(fresh.cli("keys", "revoke", key, "--at", revoked_at.isoformat(timespec="seconds"),
                 "--reason", "stolen with the laptop"))
    assert ok(fresh.cli("verify")).stdout.rstrip().endswith("chain intact")  # signed before

    # Whoever holds the stolen key signs the same tree again, later: the signature is good,
    # the key may not sign any more.
    (path,) = (fresh.log.parent / "checkpoints").glob("*.json")
    published = Published.parse(path.read_bytes())
    signer = load_signer(fresh.path / ".flamingock" / "keys" / "runner.key")
    origin = published.checkpoint.origin
    later = (revoked_at + timedelta(minutes=1)).isoformat(timespec="seconds")
    path.write_bytes(replace(published, time=later, note=sign_note(
        published.checkpoint.body(), [NoteSigner(origin, signer.private_key)])).to_bytes())

    refused = ok(fresh.cli("verify"), 4).stdout
    assert (f"the checkpoint of size 8 (offset {published.position}) was signed by a key that "
            f"may not sign it then: key {key} (runner) was revoked from "
            f"{revoked_at.isoformat(timespec='seconds')} (stolen with the laptop): this "
            f"signature, made {later}, is after it") in refused, refused
    assert "UNTRUSTED" not in refused  # only the checkpoint is refused, no event
    assert "UNSIGNED" not in refused
    assert "1 checkpoint not held" in refused
    proving = ok(fresh.cli("prove", "hello-yaml"), 4).stderr
    assert f"key {key} (runner) was revoked" in proving


def test_an_unsigned_log_is_said_to_be_one_and_strict_refuses_it(tmp_path: Path) -> None:
    project = Project(tmp_path / "plain")
    project.path.mkdir()
    ok(project.cli("init", ".", "--unsigned"))
    ok(project.cli("run"))
    said = ok(project.cli("verify")).stdout
    assert "anyone with write access" in said
    assert "--strict" in said
    strict = ok(project.cli("verify", "--strict"), 4).stdout
    assert "UNSIGNED" in strict


def test_one_evidence_file_is_checked_from_itself(fresh: Project, tmp_path: Path) -> None:
    ok(fresh.cli("run"))
    out = tmp_path / "evidence.zip"
    ok(fresh.cli("evidence", "--since", "2000-01-01", "-o", str(out)))
    names = set(zipfile.ZipFile(out).namelist())
    assert {"proof.json", "report.html", "README.txt", "keys/trust.json",
            "checkpoints/8.note"} <= names
    checked = _outsider(tmp_path, "verify-proof", str(out))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.rstrip().endswith("proof holds")
    assert tlog_verify.run(json.loads(zipfile.ZipFile(out).read("proof.json"))).ok
