"""What an attacker who can write to the local log still tried, and what every reader does
about it: forged records in a row, garbage before a forgery, a forged run, a record injected
while a runner holds the lock. A signature vouches only for what its signer appended, and a
quarantine excludes exactly the records it names: each forgery stays a finding until an
operator decides about it, and no forged record ever changes a decision. Every side effect
is counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flamingock_es.adapters.local import LocalEventLog
from flamingock_es.adapters.local.frames import encode
from flamingock_es.core.codec import AuditCodec
from flamingock_es.core.events import (
    ManualMark,
    MarkedAs,
    Payload,
    RunFinished,
    RunOutcome,
    RunStarted,
)
from flamingock_es.core.reading import LogReader
from flamingock_es.core.recorder import Recorder, RunIdentity, local_actor

from .conftest import Project, ok
from .test_signatures import SIGNED

pytestmark = pytest.mark.e2e


@pytest.fixture
def signed(project: Project) -> Project:
    for name in ("runner", "alice", "mallory"):
        ok(project.cli("keys", "generate", name))
    project.write("flamingock.yaml", SIGNED)
    ok(project.cli("run"))  # u1, u2, u3 applied once, every append signed
    return project


class Appender:
    """A client without the runner's key: it appends well-formed frames to the file."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def append(self, records: list[bytes], headers: object = None) -> list[int]:
        at = self.log.stat().st_size
        data, offsets = encode(records)
        with self.log.open("ab") as f:
            f.write(data)
        return [at + offset for offset in offsets]

    def close(self) -> None: ...


def forge(project: Project, *payloads: Payload, principal: str = "runner-prod") -> list[int]:
    """Chain-continuing forgeries (the public schema and SHA-256 are all it takes), each
    appended on its own, like separate attacks; their offsets."""
    codec = AuditCodec()
    state = LogReader(codec).catch_up(LocalEventLog(project.log))  # past garbage, too
    recorder = Recorder(Appender(project.log), state, RunIdentity(
        "shop", "r-forged", local_actor(principal=principal)), codec)
    offsets = []
    for payload in payloads:
        offsets.append(project.log.stat().st_size)
        recorder.record(payload)
    return offsets


def garbage(project: Project) -> int:
    at = project.log.stat().st_size
    Appender(project.log).append([b"\xc3\x01not an event at all"])
    return at


def rolled_back(unit: str) -> ManualMark:
    return ManualMark(unit_id=unit, marked_as=MarkedAs.ROLLED_BACK, reason="reverted")


def unsigned(project: Project) -> list[int]:
    findings = json.loads(ok(project.cli("verify", "--json"), 4).stdout)["findings"]
    return sorted({f["position"] for f in findings})


@pytest.mark.parametrize("count", [2, 3, 5])
def test_quarantining_one_forgery_never_launders_the_ones_behind_it(signed: Project,
                                                                    count: int) -> None:
    forged = forge(signed, *(rolled_back(u) for u in ["u1", "u2", "u3", "u1", "u2"][:count]))
    assert unsigned(signed) == forged
    refused = ok(signed.cli("run"), 4)
    assert f"offset {forged[0]}" in refused.stderr

    ok(signed.cli("quarantine", "--offset", str(forged[0]), "--reason", "the first forgery"))

    assert unsigned(signed) == forged[1:]  # the others are still findings, one by one
    assert f"offset {forged[1]}" in ok(signed.cli("run"), 4).stderr
    ok(signed.cli("quarantine", "--offset", str(forged[1]), "--through", str(forged[-1]),
                  "--reason", "the rest, as a range"))
    assert ok(signed.cli("verify")).stdout.rstrip().endswith("chain intact")
    ok(signed.cli("run"))
    for unit in ("u1", "u2", "u3"):
        assert signed.effects().count(f"apply {unit}") == 1  # no forged mark was believed
    verify = ok(signed.cli("verify")).stdout
    assert all(f"QUARANTINED offset {at}" in verify for at in forged)


def test_garbage_before_a_forgery_is_two_decisions(signed: Project) -> None:
    junk = garbage(signed)
    (forged,) = forge(signed, rolled_back("u2"))
    assert unsigned(signed) == [junk, forged]

    ok(signed.cli("quarantine", "--offset", str(junk), "--reason", "garbage"))

    assert unsigned(signed) == [forged]
    ok(signed.cli("run"), 4)
    ok(signed.cli("quarantine", "--offset", str(forged), "--reason", "forged mark"))
    ok(signed.cli("run"))
    assert signed.effects().count("apply u2") == 1


def test_a_forged_run_stays_unverified_until_both_of_its_records_are_excluded(
        signed: Project) -> None:
    started, finished = forge(
        signed, RunStarted(workflow="shop", trigger="cli", planned=("u1",)),
        RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("u1",)))
    ok(signed.cli("quarantine", "--offset", str(started), "--reason", "forged"))

    report = json.loads(ok(signed.cli("replay"), 4).stdout)
    assert report["verified"] is False
    assert [f["position"] for f in report["findings"]] == [finished]
    history = ok(signed.cli("history")).stdout.splitlines()
    forged_lines = [line for line in history if "r-forged" in line]
    assert forged_lines
    assert all("UNVERIFIED" in line or "QUARANTINED" in line for line in forged_lines)

    ok(signed.cli("quarantine", "--offset", str(finished), "--reason", "forged"))
    report = json.loads(ok(signed.cli("replay")).stdout)
    assert "r-forged" not in {run["run_id"] for run in report["runs"]}


def test_a_record_injected_while_a_runner_holds_the_lock_stops_it_and_is_named(
        signed: Project) -> None:
    """The unit itself plays the attacker: while it runs (the runner holds the lock), a
    chain-continuing forgery lands in the log. The runner appends after it, never over it,
    names it, stops, and once it is quarantined every reader, the projection included,
    goes on."""
    signed.write("changes/inject.py", """
        import json, subprocess, sys
        from flamingock_es import change_unit

        @change_unit(id="u4", order=4, author="ana")
        def u4(ctx):
            subprocess.run([sys.executable, "forge.py"], check=True)
            with open("effects.txt", "a") as f:
                f.write("apply u4\\n")

        @change_unit(id="u5", order=5, author="ana")
        def u5(ctx):
            with open("effects.txt", "a") as f:
                f.write("apply u5\\n")
    """)
    signed.write("forge.py", f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from tests.e2e.test_forgeries import forge, rolled_back

        class Here:
            log = Path(".flamingock/shop/audit.log")

        print(forge(Here(), rolled_back("u1"))[0])
    """)

    stopped = ok(signed.cli("run"), 4)

    assert "this runner did not write landed on" in stopped.stderr
    foreign, _own = unsigned(signed)  # the runner's next record chains around it
    assert f"chains to the event before offset {foreign}" in ok(signed.cli("verify"), 4).stdout
    assert "applied 1" in stopped.stderr  # u4's success is durable, and said
    assert f"flamingock-es quarantine --offset {foreign}" in stopped.stderr
    assert signed.effects().count("apply u4") == 1
    assert "apply u5" not in signed.effects()  # the run stopped after the unit in hand
    assert f"offset {foreign}" in ok(signed.cli("status"), 4).stderr  # nobody decides on it

    ok(signed.cli("quarantine", "--offset", str(foreign), "--reason", "injected"))

    assert ok(signed.cli("verify")).stdout.rstrip().endswith("chain intact")
    status = json.loads(ok(signed.cli("status", "--json")).stdout)
    assert {r["unit_id"]: r["status"] for r in status["rows"]}["u4"] == "APPLIED"
    ok(signed.cli("project", "--once"))
    assert ok(signed.cli("state")).returncode == 0
    ok(signed.cli("run"))
    assert signed.effects().count("apply u4") == 1
    assert signed.effects().count("apply u5") == 1
    assert signed.effects().count("apply u1") == 1
