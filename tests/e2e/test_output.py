"""What the CLI writes, as a user sees it: through a pipe that closes early (`| head`),
aligned columns for long ids, log records that never break a progress line, the units' own
messages, a status line with an ETA on a terminal, and clear errors for bad flags."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
import time

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

LONG_ID = "add-the-customer-loyalty-tier-field-to-every-user-document-of-the-eu-shard"


def closed_pipe() -> int:
    """The write end of a pipe whose reader is already gone: every write fails (EPIPE)."""
    read, write = os.pipe()
    os.close(read)
    return write


def run_into_closed(project: Project, *args: str, stderr_too: bool = False
                    ) -> subprocess.CompletedProcess[str]:
    out = closed_pipe()
    err = closed_pipe() if stderr_too else subprocess.PIPE
    try:
        done = subprocess.run(project.command(*args), cwd=project.path, env=project.env,
                              stdout=out, stderr=err, text=True, timeout=60, check=False)
    finally:
        os.close(out)
        if stderr_too:
            os.close(err)  # type: ignore[arg-type]
    return done


@pytest.mark.parametrize("args", [
    ("plan",), ("plan", "--show"), ("status",), ("history",), ("history", "--json"),
    ("verify",), ("replay",), ("run", "--json"), ("keys", "list"), ("new", "More"),
    ("undo", "--count", "1"),
])
def test_every_command_survives_a_reader_that_went_away(project: Project,
                                                        args: tuple[str, ...]) -> None:
    ok(project.cli("run"))
    project.flag("fail-u2")  # run --json then has work, and a failure to report

    done = run_into_closed(project, *args)

    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr
    assert done.returncode in (141, 8 if args[0] == "run" else 141)


def test_a_run_whose_progress_and_output_readers_went_away_still_applies_everything(
        project: Project) -> None:
    done = run_into_closed(project, "run", "-v", stderr_too=True)

    assert done.returncode == 0
    assert project.effects()[-1] == "apply u3"
    assert ok(project.cli("status")).stdout.count("APPLIED") == 3


def test_project_and_state_survive_a_reader_that_went_away(project: Project) -> None:
    ok(project.cli("run"))
    for args in (("project", "--once"), ("state", "units"), ("state",)):
        done = run_into_closed(project, *args)
        assert "Traceback" not in done.stderr, args
        assert done.returncode == 141, args


@pytest.mark.parametrize(("args", "flag"), [
    (("history", "--since", "yesterday"), "--since 'yesterday'"),
    (("history", "--until", "2026-13-45"), "--until '2026-13-45'"),
    (("replay", "--since", "last week"), "--since 'last week'"),
])
def test_a_bad_time_is_exit_2_with_an_example(project: Project, args: tuple[str, ...],
                                              flag: str) -> None:
    ok(project.cli("run"))
    result = ok(project.cli(*args), 2)
    assert f"{flag} is not a time: use ISO 8601, e.g. 2026-11-27" in result.stderr
    assert "Traceback" not in result.stderr


def test_columns_stay_aligned_for_long_unit_ids(project: Project) -> None:
    project.write("changes/long.py", f"""\
        from flamingock_es import change_unit


        @change_unit(id="{LONG_ID}", order=9, author="ana")
        def long_unit(ctx):
            pass
    """)
    plan = ok(project.cli("plan")).stdout.splitlines()
    assert len({line.index("pending") for line in plan}) == 1
    ok(project.cli("run"))
    status = ok(project.cli("status")).stdout.splitlines()[1:]
    assert len({line.index(" 20") for line in status}) == 1  # the time column
    history = ok(project.cli("history")).stdout.splitlines()
    assert len({line.index("run=") for line in history}) == 1
    ok(project.cli("project", "--once"))
    units = ok(project.cli("state", "units")).stdout.splitlines()
    assert len({line.index("APPLIED") for line in units}) == 1
    assert LONG_ID in units[0]


TALKATIVE = """\
    import logging

    from flamingock_es import change_unit


    @change_unit(id="talk", order=9, author="ana")
    def talk(ctx):
        ctx.log.info("the unit speaks")
        logging.getLogger("flamingock_es.test").warning("a library warning")
"""


def test_log_records_start_on_a_fresh_line_and_the_progress_line_is_restated(
        project: Project) -> None:
    project.write("changes/talk.py", TALKATIVE)

    lines = ok(project.cli("run", "-v")).stderr.splitlines()

    talk = next(i for i, line in enumerate(lines) if line.startswith("[4/4] main/talk"))
    assert lines[talk] == "[4/4] main/talk (pending) ..."
    assert lines[talk + 1] == "INFO flamingock_es.unit: the unit speaks"
    assert lines[talk + 2] == "WARNING flamingock_es.test: a library warning"
    assert lines[talk + 3].startswith("[4/4] main/talk (pending) ... applied (")
    for line in lines:  # no record glued to a progress line
        assert not (line.startswith("[") and ("INFO" in line or "DEBUG" in line)), line


def test_a_units_own_messages_show_at_the_default_level(tmp_path: object) -> None:
    project = Project(tmp_path / "fresh")  # type: ignore[operator]
    project.path.mkdir()
    ok(project.cli("init"))

    result = ok(project.cli("run"))

    assert "INFO flamingock_es.unit: hello from hello-python in run " in result.stderr
    assert "hello, " in result.stderr  # the YAML unit's python-call
    assert "DEBUG" not in result.stderr
    assert "hello from" not in ok(project.cli("undo", "--all", "-q")).stderr


def test_a_terminal_gets_a_status_line_with_elapsed_time_and_eta(project: Project) -> None:
    project.flag("slow-u2", "slow-u3")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 72, 0, 0))
    started = time.monotonic()
    process = subprocess.Popen(project.command("run"), cwd=project.path,
                               env={**project.env, "TERM": "xterm"},
                               stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert process.wait(timeout=60) == 0
    assert time.monotonic() - started >= 3.0
    text = screen.decode()

    assert "] 2/3 main/u2 (pending)  " in text  # a bar and a counter with the unit
    assert "ETA 2s)" in text or "ETA 1s)" in text  # known once a unit is done
    assert "(run 1s, ETA" in text  # the run's elapsed time
    assert "\r\x1b[K[2/3] main/u2 (pending) ... applied (15" in text
    assert "SUCCEEDED; applied 3" in text
    statuses = [part.split("\r\n")[0] for part in text.split("\r\x1b[K")[1:]]
    assert max(len(status) for status in statuses) <= 71  # never wraps: redrawn in place
