"""A log that proves who did what, on the embedded log, tried as an attacker would: a forged
event that continues the chain, an edit with the chain recomputed after it, a cut tail, an
untrusted writer, unsigned history adopted by an audited decision, and change requests that
are unsigned, signed by a stranger, expired or replayed. Every side effect is counted."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from flamingock_es.adapters.local import LocalEventLog
from flamingock_es.adapters.local.frames import encode
from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import ManualMark, MarkedAs, RunFinished, RunOutcome, RunStarted
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor
from flamingock_es.core.state import fold

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

SIGNED = """\
namespace: shop
signing_key: keys/runner.key
trust:
  - {key: keys/runner.pub, principal: runner-prod, write: [shop]}
  - {key: keys/alice.pub, principal: alice, request: [shop]}
stages:
  - name: main
    units: [changes]
"""


@pytest.fixture
def signed(project: Project) -> Project:
    for name in ("runner", "alice", "mallory"):
        ok(project.cli("keys", "generate", name))
    project.write("flamingock.yaml", SIGNED)
    return project


def forge_append(project: Project) -> int:
    """What a client without the runner's key can do: a well-formed ManualMark that
    continues the chain (public schema, SHA-256), appended to the file. Its offset."""
    codec = AuditCodec()
    state = fold(codec.decode_all(LocalEventLog(project.log).read()))
    at = project.log.stat().st_size

    class Appender:
        def append(self, records: list[bytes], headers: object = None) -> list[int]:
            with project.log.open("ab") as f:
                f.write(encode(records)[0])
            return [at]

        def close(self) -> None: ...

    Recorder(Appender(), state, RunIdentity("shop", "r-forged", local_actor(
        principal="ana@build-7")), codec).record(
        ManualMark(unit_id="u1", marked_as=MarkedAs.ROLLED_BACK, reason="reverted"))
    return at


def test_every_append_is_signed_and_verify_checks_the_signatures(signed: Project) -> None:
    ok(signed.cli("run"))
    events = json.loads(ok(signed.cli("history", "--json")).stdout)
    assert {e["key_id"] for e in events} != {None}
    assert events[-1]["signature"] is not None
    verify = ok(signed.cli("verify"))
    assert "signatures: checked against the trust store" in verify.stdout
    assert verify.stdout.rstrip().endswith("chain intact")
    keys = ok(signed.cli("keys", "list")).stdout
    assert "runner-prod" in keys
    assert "alice" in keys


def test_a_signature_altered_alone_is_found_by_the_thorough_pass(signed: Project) -> None:
    ok(signed.cli("run"))
    at, record = next((at, record) for at, record in signed.frames()[:-2]
                      if record[-65] == 2)  # an earlier signed event
    altered = record[:-1] + bytes([record[-1] ^ 0xFF])  # outside the hash: the chain holds
    data = signed.log.read_bytes()
    signed.log.write_bytes(data[:at] + encode([altered])[0] + data[at + 8 + len(record):])

    # A signature vouches only for its own append, so every one is checked, always (this
    # used to pass, the later signatures taken to vouch for it: the flag was needed).
    plain = ok(signed.cli("verify"), 4)
    assert f"UNTRUSTED at offset {at}: bad signature" in plain.stdout
    thorough = ok(signed.cli("verify", "--every-signature"), 4)  # kept for scripts
    assert f"UNTRUSTED at offset {at}: bad signature" in thorough.stdout


def test_a_forged_event_that_continues_the_chain_changes_nothing(signed: Project) -> None:
    ok(signed.cli("run"))
    forged_at = forge_append(signed)

    refused = ok(signed.cli("run"), 4)
    assert f"offset {forged_at}" in refused.stderr
    assert "no trusted signature covers it" in refused.stderr
    verify = ok(signed.cli("verify"), 4)
    assert f"UNSIGNED offsets {forged_at}..{forged_at}" in verify.stdout

    ok(signed.cli("quarantine", "--offset", str(forged_at), "--reason", "forged by a test"))

    ok(signed.cli("run"))  # u1 is still applied: the forged mark was never believed
    assert signed.effects().count("apply u1") == 1
    status = json.loads(ok(signed.cli("status", "--json")).stdout)
    assert [r["status"] for r in status["rows"]] == ["APPLIED"] * 3
    assert f"QUARANTINED offset {forged_at}" in ok(signed.cli("verify")).stdout


def test_an_edit_with_the_chain_recomputed_is_found_by_its_signatures(signed: Project
                                                                      ) -> None:
    ok(signed.cli("run"))
    codec = AuditCodec()
    frames = signed.frames()
    events = [codec.decode(record, at).event for at, record in frames]
    prev = events[3].prev_hash
    rebuilt = [record for _, record in frames[:3]]
    for index, event in enumerate(events[3:], start=3):
        edited = event.replace(prev_hash=prev, run_id="edited") if index == 3 else \
            event.replace(prev_hash=prev)
        sealed, blob = codec.seal(edited)
        if event.signature is not None:  # the old signature is all the attacker has
            blob = blob[:-1] + b"\x02" + event.signature
        rebuilt.append(blob)
        prev = sealed.hash
    signed.log.write_bytes(encode(rebuilt)[0])

    verify = ok(signed.cli("verify"), 4)

    assert "BREAK" not in verify.stdout  # the chain was recomputed: it holds
    assert "UNTRUSTED at offset" in verify.stdout
    assert "bad signature" in verify.stdout
    refused = ok(signed.cli("run"), 4).stderr  # the signed snapshot is a witness too
    assert "no longer holds what the signed snapshot" in refused
    assert "rewritten" in refused


def test_a_cut_tail_is_found_by_a_checkpoint(signed: Project) -> None:
    ok(signed.cli("run", "--unit", "u1"))
    keep = signed.log.stat().st_size
    ok(signed.cli("run"))
    checkpoint = signed.path / "cp.json"
    checkpoint.write_text(ok(signed.cli("checkpoint", "--json")).stdout)
    head = json.loads(checkpoint.read_text())
    assert head["signature"]
    signed.log.write_bytes(signed.log.read_bytes()[:keep])  # whole events cut off the end

    # alone, the chain holds; the checkpoint the runner published beside the log does not
    alone = ok(signed.cli("verify"), 4).stdout
    assert "counts more records than the log holds: records were cut off its end" in alone
    cut = ok(signed.cli("verify", "--checkpoint", str(checkpoint)), 4)
    assert f"before the checkpoint at offset {head['position']}" in cut.stdout
    by_head = ok(signed.cli("verify", "--expect-head", f"{head['position']}:{head['hash']}"),
                 4)
    assert "cut off its end" in by_head.stdout
    refused = ok(signed.cli("run"), 4).stderr  # the runner's own witness: its snapshot
    assert "the log ends before it" in refused
    assert signed.effects().count("apply u2") == 1  # not applied again


def test_a_runner_whose_key_is_not_trusted_writes_nothing(signed: Project) -> None:
    signed.write("flamingock.yaml", SIGNED.replace("keys/runner.key", "keys/mallory.key"))
    refused = ok(signed.cli("run"), 2)
    assert "may not write namespace 'shop'" in refused.stderr
    assert signed.effects() == []
    assert not signed.log.exists()


def test_unsigned_history_is_adopted_by_an_audited_decision(project: Project) -> None:
    ok(project.cli("run"))  # written before signing was configured
    for name in ("runner", "alice"):
        ok(project.cli("keys", "generate", name))
    project.write("flamingock.yaml", SIGNED)
    project.write("changes/more.py", """
        from flamingock_es import change_unit

        @change_unit(id="u4", order=4, author="ana")
        def u4(ctx):
            with open("effects.txt", "a") as f:
                f.write("apply u4\\n")
    """)
    refused = ok(project.cli("run"), 4)
    assert "no trusted signature covers any of them" in refused.stderr
    head = json.loads(ok(project.cli("verify", "--json"), 4).stdout)["position"]

    ok(project.cli("vouch", "--through", str(head), "--reason", "adopting signatures"))

    ok(project.cli("run"))
    assert project.effects().count("apply u4") == 1
    assert project.effects().count("apply u1") == 1
    assert ok(project.cli("verify")).stdout.rstrip().endswith("chain intact")


def _serve(project: Project) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flamingock_es.cli", "serve"],
                            cwd=project.path, env=project.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _dead_letters(project: Project) -> list[dict[str, object]]:
    path = project.path / ".flamingock" / "shop" / "requests.dead.log"
    return [json.loads(record) for _, record in LocalEventLog(path).read()]


def test_requests_are_authenticated_by_their_key(signed: Project) -> None:
    server = _serve(signed)
    try:
        def request(*args: str, code: int = 0) -> str:
            return ok(signed.cli("request", "--wait", "--timeout", "30", *args), code).stdout

        answered = request("--key", "keys/alice.key", "--requested-by", "root", "--reason",
                           "JIRA-7", "--unit", "u1", "--id", "req-1")
        assert "SUCCEEDED" in answered
        runs = [e for e in json.loads(signed.cli("history", "--json").stdout)
                if e["payload"]["type"] == "RunStarted"]
        requester = runs[-1]["payload"]["requester"]
        assert requester["principal"] == "alice"  # not "root", the name it gave
        assert requester["reason"] == "JIRA-7"
        assert requester["key_id"]

        for args in (("--key", "keys/mallory.key"), ("--key", "keys/runner.key"),
                     ("--ttl", "-1", "--key", "keys/alice.key")):
            ok(signed.cli("request", "--reason", "x", "--unit", "u2", *args))
        # An unsigned one, from a requester with no key: the channel takes it; serve will not.
        ok(signed.cli("request", "--reason", "x", "--unit", "u2", "--config", "none.yaml",
                      "--bus", f"local:{signed.path / '.flamingock'}", "--namespace", "shop"))
        deadline = time.monotonic() + 30
        while len(_dead_letters(signed)) < 4:
            assert time.monotonic() < deadline, _dead_letters(signed)
            time.sleep(0.1)
        reasons = [str(d["reason"]) for d in _dead_letters(signed)]
        assert any("unknown key" in r for r in reasons)
        assert any("may not request namespace 'shop'" in r for r in reasons)
        assert any("expired" in r for r in reasons)
        assert any("unsigned" in r for r in reasons)
        assert "apply u2" not in signed.effects()

        again = request("--key", "keys/alice.key", "--reason", "replayed", "--unit", "u1",
                        "--id", "req-1")  # a captured id, used again: answered already
        assert "SUCCEEDED" in again
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert signed.effects().count("apply u1") == 1
    runs = [e for e in json.loads(signed.cli("history", "--json").stdout)
            if e["payload"]["type"] == "RunStarted"]
    assert [r["request_id"] for r in runs] == ["req-1"]


def test_a_forged_unsigned_answer_does_not_answer_a_request(signed: Project) -> None:
    """The requester reads the log through the one read path: an answer no trusted runner
    signed is not an answer, even carrying the request's id and SUCCEEDED."""
    ok(signed.cli("run"))  # a signed history to forge onto
    waiting = signed.spawn("request", "--wait", "--timeout", "6", "--key", "keys/alice.key",
                           "--reason", "r", "--unit", "u1", "--id", "pending-1")
    requests = signed.path / ".flamingock" / "shop" / "requests.log"
    deadline = time.monotonic() + 30
    while not (requests.exists() and LocalEventLog(requests).read()):
        assert time.monotonic() < deadline, "the request was never published"
        time.sleep(0.05)
    codec = AuditCodec()
    state = fold(codec.decode_all(LocalEventLog(signed.log).read()))
    at = signed.log.stat().st_size

    class Appender:
        def append(self, records: list[bytes], headers: object = None) -> list[int]:
            with signed.log.open("ab") as f:
                f.write(encode(records)[0])
            return [at + i for i in range(len(records))]

        def close(self) -> None: ...

    Recorder(Appender(), state, RunIdentity("shop", "r-forged", local_actor(
        principal="runner-prod"), request_id="pending-1"), codec).record(
        RunStarted(workflow="shop", trigger="request", planned=("u1",)),
        RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("u1",)))
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 3, err
    assert "SUCCEEDED" not in out
    assert "no answer to request pending-1" in err
    assert signed.effects().count("apply u1") == 1  # the first run's, nothing since


def test_a_refused_request_is_told_at_once_and_a_reused_id_is_refused(signed: Project) -> None:
    """The requester learns a refusal from the runner's signed dead letter, within the round
    trip: an expired request, and a request id already answered for another request."""
    server = _serve(signed)
    try:
        expired = signed.cli("request", "--wait", "--timeout", "60", "--key", "keys/alice.key",
                             "--ttl", "-1", "--reason", "late", "--unit", "u1", timeout=90)
        assert expired.returncode == 2, expired.stderr
        assert "was refused by the runners and will not run" in expired.stderr
        assert "expired" in expired.stderr

        first = ok(signed.cli("request", "--wait", "--timeout", "60", "--key",
                              "keys/alice.key", "--reason", "r", "--unit", "u1", "--id",
                              "release-7", timeout=90))
        assert "SUCCEEDED" in first.stdout
        reused = signed.cli("request", "--wait", "--timeout", "60", "--key", "keys/alice.key",
                            "--reason", "r", "--unit", "u2", "--id", "release-7", timeout=90)
        assert reused.returncode == 2, reused.stderr  # told by the log or the dead letter
        assert "release-7" in reused.stderr
        assert "another request" in reused.stderr
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert signed.effects().count("apply u1") == 1
    assert "apply u2" not in signed.effects()
    letters = _dead_letters(signed)
    assert letters  # the expired one at least, perhaps the reused id too
    assert all(d["signature"] for d in letters)  # each signed by the runner that refused it
