"""The embedded log under damage and contention: torn tails, corruption, tampering, races."""

from __future__ import annotations

import json
import shutil

import pytest

from .conftest import Project, ok, reseal

pytestmark = pytest.mark.e2e

MORE = '''
    from flamingock_es import change_unit


    @change_unit(id="u4", order=4, author="ana")
    def u4(ctx):
        with open("effects.txt", "a") as f:
            f.write("apply u4\\n")
'''


def test_a_torn_tail_is_skipped_with_a_warning_then_moved_aside(project: Project) -> None:
    ok(project.cli("run"))
    frames = project.frames()
    first, _ = frames[-1]
    data = project.log.read_bytes()
    last = len(data)  # a crash cut the next append short: never acknowledged
    project.log.write_bytes(data + data[first:-7])  # a whole frame header, half its body

    status = ok(project.cli("status"))

    assert f"at byte {last} are an unfinished append" in status.stderr
    assert status.stdout.startswith(f"namespace shop: {len(frames)} audit events")
    assert status.stdout.count("APPLIED") == 3
    assert ok(project.cli("verify")).stdout.rstrip().endswith("chain intact")

    project.write("changes/more.py", MORE)
    ok(project.cli("run"))

    torn = project.log.with_name(f"audit.log.torn-{last}")
    assert torn.read_bytes() == data[first:-7]  # nothing deleted: the torn bytes are kept
    assert project.effects().count("apply u4") == 1
    assert project.effects().count("apply u1") == 1
    assert project.log.read_bytes()[:last] == data[:last]
    after = ok(project.cli("verify"))
    assert "unfinished append" not in after.stderr
    assert after.stdout.rstrip().endswith("chain intact")


def test_a_corrupted_record_in_the_middle_stops_everything_with_its_offset(project: Project
                                                                         ) -> None:
    ok(project.cli("run"))
    offset, record = project.frames()[3]
    data = bytearray(project.log.read_bytes())
    data[offset + 8 + len(record) // 2] ^= 0xFF  # frame CRC no longer matches
    project.log.write_bytes(bytes(data))
    project.write("changes/more.py", MORE)

    # A start-up reads from its latest snapshot on; verify always reads everything.
    assert f"the record at byte {offset} fails its CRC check" in \
        ok(project.cli("verify"), 4).stderr
    (project.log.parent / "snapshot").unlink(missing_ok=True)  # unsigned: none is written
    for command in ("run", "status", "plan", "verify"):
        result = ok(project.cli(command), 4)
        assert f"the record at byte {offset} fails its CRC check" in result.stderr, command
    assert "apply u4" not in project.effects()
    assert project.log.read_bytes() == bytes(data)  # nothing was written or repaired


def test_verify_finds_a_tampered_record_by_its_hash(project: Project) -> None:
    ok(project.cli("run"))
    copy = project.path / "tampered"
    shutil.copytree(project.path / ".flamingock", copy)
    log = copy / "shop" / "audit.log"
    offset, record = project.frames(log)[4]  # ChangeStarted u2
    at = record.index(b"main")
    forged = record[:at] + b"mair" + record[at + 4:]
    data = log.read_bytes()
    log.write_bytes(data[:offset] + reseal(forged) + data[offset + 8 + len(record):])

    result = ok(project.cli("verify", "--bus", f"local:{copy}"), 4)

    assert f"BREAK at offset {offset} (seq 4): hash mismatch" in result.stdout
    assert result.stdout.rstrip().endswith("1 break found")
    report = json.loads(ok(project.cli("verify", "--json", "--bus", f"local:{copy}"), 4).stdout)
    assert report["ok"] is False
    assert [(b["position"], b["seq"]) for b in report["breaks"]] == [(offset, 4)]
    assert ok(project.cli("verify")).stdout.rstrip().endswith("chain intact")
    (copy / "shop" / "snapshot").unlink(missing_ok=True)  # a start-up reads from it on
    assert "inconsistent at offset" in ok(project.cli("run", "--bus", f"local:{copy}"), 4).stderr


def test_two_runners_started_at_once_apply_each_unit_exactly_once(project: Project) -> None:
    project.flag("slow-u1")  # holds the lock long enough for the other one to wait

    runners = [project.spawn("run"), project.spawn("run")]
    outputs = [runner.communicate(timeout=60) for runner in runners]

    assert [runner.returncode for runner in runners] == [0, 0], outputs
    effects = project.effects()
    for unit in ("u1", "u2", "u3"):
        assert effects.count(f"apply {unit}") == 1, effects
    winners = [err for _, err in outputs if "SUCCEEDED" in err]
    losers = [err for _, err in outputs if "SUCCEEDED" not in err]
    assert len(winners) == 1
    assert len(losers) == 1
    assert "nothing to apply" in losers[0]  # it waited for the lock, or came after
    runs = [e for e in json.loads(project.cli("history", "--json").stdout)
            if e["payload"]["type"] == "RunStarted"]
    assert len(runs) == 1
    assert ok(project.cli("verify")).stdout.rstrip().endswith("chain intact")
