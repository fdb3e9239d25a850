"""What the CLI promises, as a user meets it: results on stdout (as JSON with --json, even when
a unit fails), the common options anywhere, and refusals where a command would mislead."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from flamingock_es import __version__
from flamingock_es.cli import build_parser, first_sentence

from .conftest import Project, ok

pytestmark = pytest.mark.e2e


def test_run_json_prints_the_result_when_a_unit_fails_and_keeps_the_exit_code(
        project: Project) -> None:
    project.flag("fail-u3")

    result = ok(project.cli("run", "--json"), 8)

    out = json.loads(result.stdout)
    assert out["outcome"] == "ROLLED_BACK"
    assert out["applied"] == ["u1", "u2"]
    assert out["compensated"] == ["u3", "u2", "u1"]
    assert out["error"]["type"] == "RuntimeError"
    assert out["error"]["message"] == "u3 boom"
    assert out["run_id"].startswith("20")
    assert "unit 'u3' failed" in result.stderr


def test_run_reports_on_stderr_and_leaves_stdout_to_json(project: Project) -> None:
    text = ok(project.cli("run"))
    answer = ok(project.cli("undo", "--all", "--json"))

    assert text.stdout == ""  # a run with no reader of its output must never fail: stderr
    assert "SUCCEEDED; applied 3, compensated 0, skipped 0" in text.stderr.splitlines()[-1]
    assert json.loads(answer.stdout)["compensated"] == ["u3", "u2", "u1"]


def test_mark_snapshot_and_new_answer_in_json(project: Project) -> None:
    ok(project.cli("run"))

    marked = json.loads(ok(project.cli("mark", "u2", "--as", "rolled-back", "--reason",
                                       "reverted by hand", "--json")).stdout)
    snapshot = json.loads(ok(project.cli("snapshot", "--json")).stdout)
    created = json.loads(ok(project.cli("new", "Add index", "--json")).stdout)

    assert marked == {"unit": "u2", "marked_as": "ROLLED_BACK", "reason": "reverted by hand",
                      "seen": None}
    assert snapshot == {"written": False, "position": None}  # the mark's run left one
    assert created == {"created": "changes/u004_add_index.py"}


def test_the_common_options_go_before_or_after_the_command(project: Project) -> None:
    quiet = ok(project.cli("-q", "run"))
    assert quiet.stderr == ""  # no progress: -q before the command counts
    (project.path / "elsewhere").mkdir()
    (project.path / "flamingock.yaml").rename(project.path / "elsewhere" / "flamingock.yaml")
    (project.path / "changes").rename(project.path / "elsewhere" / "changes")

    before = ok(project.cli("--json", "-c", "elsewhere/flamingock.yaml", "-v", "status"))
    after = ok(project.cli("status", "--json", "-c", "elsewhere/flamingock.yaml", "-v"))

    assert json.loads(before.stdout)["namespace"] == "shop"
    assert json.loads(before.stdout) == json.loads(after.stdout)


def test_version_and_whole_first_sentences_in_the_help(project: Project) -> None:
    version = ok(project.cli("--version"))
    shown = " ".join(ok(project.cli("--help")).stdout.split())

    assert version.stdout == f"flamingock-es {__version__}\n"
    assert ("undo Compensate applied units, newest first: those after --to ID, the newest "
            "--count N, or --all of them (back to before the first unit).") in shown
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, parser in commands.items():
        summary = first_sentence(parser.description or "")
        assert summary.endswith((".", ")")), name
        assert summary in shown, name


def test_first_sentence_reads_past_the_first_line() -> None:
    assert first_sentence("Compensate units: those after --to ID,\n    or --all of them.\n\n"
                          "More.") == "Compensate units: those after --to ID, or --all of them."
    assert first_sentence("One line. Two.") == "One line."
    assert first_sentence("No full stop") == "No full stop"


def test_status_of_a_namespace_that_has_no_log_is_refused_when_named_by_a_flag(
        project: Project) -> None:
    fresh = ok(project.cli("status"))
    typo = ok(project.cli("status", "--namespace", "sohp"), 2)

    assert "nothing recorded yet" in fresh.stdout
    assert fresh.stdout.count("PENDING") == 3
    assert "namespace 'sohp' has no audit log" in typo.stderr
    assert "the workflow file names 'shop'" in typo.stderr
    assert typo.stdout == ""
    assert ok(project.cli("status", "--namespace", "shop")).stdout == fresh.stdout
    assert not (project.path / ".flamingock" / "sohp").exists()


def test_state_of_a_projection_behind_the_log_says_how_far_and_exits_4(
        project: Project) -> None:
    ok(project.cli("run", "--unit", "u1"))
    ok(project.cli("project", "--once", "-q"))
    assert ok(project.cli("state")).stderr == ""

    ok(project.cli("run"))  # 2 more units: RunStarted, LockAcquired, 2 x 2, RunFinished, ...
    behind = ok(project.cli("state"), 4)
    units = ok(project.cli("state", "units", "--json"), 4)

    assert "BEHIND: the projection holds the log up to offset" in behind.stderr
    assert "the log has 8 event(s) more" in behind.stderr
    assert "flamingock-es project --once" in behind.stderr
    assert "namespace shop" in behind.stdout  # what it has is still shown
    assert [u["unit_id"] for u in json.loads(units.stdout)] == ["u1"]
    ok(project.cli("project", "--once", "-q"))
    assert ok(project.cli("state")).stderr == ""


@pytest.mark.parametrize("command", [
    ("mark", "u1", "--as", "applied", "--reason"),
    ("quarantine", "--offset", "0", "--reason"),
    ("vouch", "--through", "0", "--reason"),
], ids=["mark", "quarantine", "vouch"])
@pytest.mark.parametrize("placeholder", ["...", "  ", "R", "…"])
def test_a_placeholder_or_blank_reason_is_refused(project: Project, command: tuple[str, ...],
                                                  placeholder: str) -> None:
    ok(project.cli("run", "-q"))
    events = len(project.frames())

    result = ok(project.cli(*command, placeholder), 2)

    assert "reason" in result.stderr
    assert "write why" in result.stderr or "needs a --reason" in result.stderr
    assert len(project.frames()) == events


def test_two_units_with_one_order_in_a_stage_are_refused_naming_both(project: Project) -> None:
    project.write("changes/v_same.yaml", """\
        id: same-order
        order: 2
        author: ana
        template: python-call
        apply: {function: "json:dumps"}
    """)

    result = ok(project.cli("plan"), 2)

    assert re.search(r"v_same\.yaml:1: unit 'same-order' has order 2 in stage 'main', as unit "
                     r"'u2' at \S+units\.py:\d+ has", result.stderr)


def test_run_unit_refuses_to_skip_pending_units_unless_out_of_order(project: Project) -> None:
    refused = ok(project.cli("run", "--unit", "u3"), 2)
    assert "run --unit u3: u1, u2 come before it in the workflow" in refused.stderr
    assert "--out-of-order" in refused.stderr
    assert project.effects() == []

    allowed = ok(project.cli("run", "--unit", "u3", "--out-of-order"))

    assert "OUT OF ORDER: applying u3 before u1, u2" in allowed.stderr
    assert project.effects() == ["start u3", "apply u3"]
    ok(project.cli("run", "--unit", "u1"))  # nothing before u1 is pending


def test_new_transliterates_a_name_with_accents(project: Project) -> None:
    created = ok(project.cli("new", "Añadir índice", "--template", "python-call"))

    assert created.stdout == "created changes/u004_anadir_indice.yaml\n"
    text = (project.path / "changes" / "u004_anadir_indice.yaml").read_text()
    assert "id: anadir-indice\n" in text


def test_a_torn_tail_is_warned_about_once_per_command(project: Project) -> None:
    ok(project.cli("run"))
    project.log.write_bytes(project.log.read_bytes()[:-7])

    for command in ("status", "plan", "verify", "history"):
        stderr = ok(project.cli(command)).stderr
        assert stderr.count("unfinished append") == 1, (command, stderr)


def test_the_help_of_every_command_is_reachable_without_a_project(tmp_path: object) -> None:
    done = subprocess.run([sys.executable, "-m", "flamingock_es.cli", "-v", "--help"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "COMMAND" in done.stdout
