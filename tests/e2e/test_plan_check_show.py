"""``plan --check`` for CI pipelines and ``plan --show`` for review, as a user runs them."""

from __future__ import annotations

import json

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

FLAG_UNIT = """\
    id: enable-checkout
    order: 4
    author: bruno
    template: http-request
    apply:
      method: PUT
      url: "${FLAGS_URL}/flags/checkout?sig=${SIGNING_SECRET}"
      headers: {Authorization: "Bearer ${FLAGS_TOKEN}", X-Api-Key: "${PLAIN_VALUE}"}
      json: {enabled: true, password: "${PLAIN_VALUE}", owner: "${OWNER:-team-a}"}
    rollback:
      method: PUT
      url: "${FLAGS_URL}/flags/checkout"
      json: {enabled: false, region: "${NOT_SET_HERE}"}
"""


def test_check_is_zero_when_run_could_go_ahead_alone(project: Project) -> None:
    assert ok(project.cli("plan", "--check")).stderr == ""
    ok(project.cli("run"))
    assert json.loads(ok(project.cli("plan", "--check", "--json")).stdout)["check"] == 0


def test_check_exits_7_for_a_unit_that_needs_a_person(project: Project) -> None:
    project.flag("fail-u2", "fail-rollback-u2")
    ok(project.cli("run"), 8)

    result = ok(project.cli("plan", "--check"), 7)

    assert "BLOCKED u2" in result.stdout
    assert "plan --check: not clear to run (exit 7): 1 blocked" in result.stderr
    assert ok(project.cli("plan")).returncode == 0  # without --check, plan only informs


def test_check_exits_7_for_a_unit_in_doubt_even_when_it_would_be_retried(
        project: Project) -> None:
    project.units(recovery="always-retry")
    project.flag("hold-u2")
    running = project.spawn("run")
    project.wait_for_effect("start u2")
    running.kill()
    running.communicate()

    result = ok(project.cli("plan", "--check"), 7)

    assert "retry (in doubt" in result.stdout
    assert "in doubt: u2" in result.stderr
    assert json.loads(project.cli("plan", "--check", "--json").stdout)["in_doubt"] == ["u2"]


def test_check_exits_6_for_drift_unless_it_is_accepted(project: Project) -> None:
    ok(project.cli("run"))
    units = project.path / "changes" / "units.py"
    units.write_text(units.read_text().replace('author="ana", rollback=undo_u3',
                                               'author="bo", rollback=undo_u3'))

    assert "checksum drift" in ok(project.cli("plan", "--check"), 6).stdout
    ok(project.cli("plan", "--check", "--accept-drift"))


def test_show_resolves_variables_and_never_prints_a_secret(project: Project) -> None:
    project.write("changes/flag.yaml", FLAG_UNIT)
    project.env.update(FLAGS_URL="http://flags.test", FLAGS_TOKEN="tok-123",
                       SIGNING_SECRET="sig-456", PLAIN_VALUE="hunter2")

    result = ok(project.cli("plan", "--show"))

    out = result.stdout
    for secret in ("tok-123", "sig-456", "hunter2"):
        assert secret not in out
    assert "main/enable-checkout  http-request" in out
    assert "url: http://flags.test/flags/checkout?sig=***" in out
    assert "Authorization: '***'" in out
    assert "X-Api-Key: '***'" in out  # the template's secret field
    assert "password: '***'" in out  # a secret by its key
    assert "owner: team-a" in out  # a default applies
    assert "region: ${NOT_SET_HERE}" in out
    assert "not set here: NOT_SET_HERE" in out
    assert "main/u1  python  " in out
    assert "units.py:" in out
    shown = json.loads(ok(project.cli("plan", "--show", "--json")).stdout)["show"]
    flag = next(item for item in shown if item["unit"] == "main/enable-checkout")
    assert flag["blocks"]["apply"]["headers"]["Authorization"] == "***"
    assert flag["unset"] == ["NOT_SET_HERE"]
    assert "hunter2" not in json.dumps(shown)


@pytest.mark.parametrize(("apply", "message"), [
    ('{function: "json:no_such_function"}',
     "call.yaml (apply): python-call: cannot find function 'json:no_such_function'"),
    ('{function: "no_such_module_here:f"}',
     "call.yaml (apply): python-call: cannot find function 'no_such_module_here:f'"),
    ('{function: "${NOT_SET_ANYWHERE}"}',
     "call.yaml:1: unit 'u4' uses ${NOT_SET_ANYWHERE}, which is not set"),
], ids=["missing-function", "missing-module", "unset-variable"])
def test_check_fails_as_run_would_before_the_lock(project: Project, apply: str,
                                                   message: str) -> None:
    project.write("changes/call.yaml", f"""\
        id: u4
        order: 4
        author: ana
        template: python-call
        apply: {apply}
    """)

    ok(project.cli("plan"))  # a plan without --check only shows
    checked = ok(project.cli("plan", "--check"), 2)
    ran = ok(project.cli("run"), 2)

    assert message in checked.stderr
    assert checked.stderr == ran.stderr  # the same check, the same words
    assert "Traceback" not in checked.stderr
    assert project.effects() == []
    assert not project.log.exists() or project.log.stat().st_size == 0
