"""What users write is taken as written: a value of the wrong type is refused, never coerced,
and every refusal names the file and the line and says what to write instead."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from flamingock_es.cli.status_codes import exit_code
from flamingock_es.definition._speedups import checked
from flamingock_es.definition.loader import load_units
from flamingock_es.definition.settings import resolve_settings
from flamingock_es.definition.workflow import load_workflow
from flamingock_es.errors import ConfigError

Write = Callable[[str, str], Path]

UNIT = """
    id: x
    order: 1
    author: ana
    template: python-call
    apply: {{function: "json:dumps"}}
    {line}
"""


def refused(call: Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    assert exit_code(info.value) == 2
    return str(info.value)


@pytest.mark.parametrize(("line", "problem"), [
    ('accept_drift: "false"', "accept_drift must be a boolean (true or false), not 'false' "
                              "(text); write it without quotes"),
    ('run_always: "no"', "run_always must be a boolean (true or false), not 'no' (text)"),
    ('description: 3', "description must be text, not 3 (an integer)"),
    ("secrets: token", "secrets must be a list, not 'token' (text)"),
    ("recovery: Always-Retry", "recovery is 'manual-intervention' or 'always-retry', not "
                               "'Always-Retry' (text)"),
], ids=["accept-drift-text", "run-always-text", "description-number", "secrets-text",
        "recovery-case"])
def test_a_unit_file_value_of_the_wrong_type_is_refused_at_its_line(
        tmp_path: Path, write: Write, line: str, problem: str) -> None:
    write("u.yaml", UNIT.format(line=line))
    message = refused(lambda: load_units("u.yaml", tmp_path))
    assert message == f"{tmp_path / 'u.yaml'}:6: {problem}"


def test_a_quoted_order_is_refused_not_read_as_a_number(tmp_path: Path, write: Write) -> None:
    write("u.yaml", UNIT.format(line="").replace("order: 1", 'order: "13"'))
    assert refused(lambda: load_units("u.yaml", tmp_path)) == (
        f"{tmp_path / 'u.yaml'}:2: order must be an integer, not '13' (text); write it without "
        "quotes")


def test_every_problem_of_a_file_is_named_top_down(tmp_path: Path, write: Write) -> None:
    write("u.yaml", """
        id: x
        order: 1.5
        template: python-call
        apply: {function: "json:dumps"}
        run_always: "yes"
        colour: red
    """)
    lines = refused(lambda: load_units("u.yaml", tmp_path)).splitlines()
    where = tmp_path / "u.yaml"
    assert lines == [
        f"{where}:1: missing required field 'author': add it",
        f"{where}:2: order must be an integer, not 1.5 (a number)",
        f"{where}:5: run_always must be a boolean (true or false), not 'yes' (text)",
        f"{where}:6: unknown field 'colour'; expected one of accept_drift, apply, author, "
        "description, id, on_fail, order, precondition, recovery, requires, rollback, "
        "run_always, secrets, template, when"]


def test_booleans_written_as_booleans_are_taken(tmp_path: Path, write: Write) -> None:
    write("u.yaml", UNIT.format(line="run_always: true\n    accept_drift: false"))
    (unit,) = load_units("u.yaml", tmp_path)
    assert (unit.run_always, unit.accept_drift) == (True, False)


@pytest.mark.parametrize(("arguments", "problem"), [
    ('order="13"', "order must be an integer, not '13' (text); write it without quotes"),
    ('run_always="nope"', "run_always must be a boolean (true or false), not 'nope' (text)"),
    ("order=True", "order must be an integer, not True (a boolean)"),
    ('recovery="pray"', "recovery is 'manual-intervention' or 'always-retry', not 'pray' "
                        "(text)"),
    ('secrets="token"', "secrets must be a list, not 'token' (text)"),
    ('id=""', "id may not be empty"),
    ("rollback=3", "rollback must be a function, not 3 (an integer)"),
], ids=["order-text", "run-always-text", "order-bool", "recovery", "secrets-text", "empty-id",
        "rollback"])
def test_a_python_unit_with_an_argument_of_the_wrong_type_is_refused_at_its_decorator(
        tmp_path: Path, write: Write, arguments: str, problem: str) -> None:
    base = {"id": '"x"', "order": "1", "author": '"ana"'}
    name, _, value = arguments.partition("=")
    base[name] = value
    call = ", ".join(f"{k}={v}" for k, v in base.items())
    write("units.py", f"""
        from flamingock_es import change_unit


        @change_unit({call})
        def x(ctx):
            pass
    """)
    message = refused(lambda: load_units("units.py", tmp_path))
    assert message == f"{tmp_path / 'units.py'}:4: change_unit(...): {problem}"


def test_a_python_unit_takes_a_recovery_its_secrets_as_a_list_or_a_tuple(
        tmp_path: Path, write: Write) -> None:
    write("units.py", """
        from flamingock_es import Recovery, change_unit


        @change_unit(id="a", order=1, author="ana", recovery=Recovery.ALWAYS_RETRY,
                     secrets=("token",))
        def a(ctx):
            pass


        @change_unit(id="b", order=2, author="ana", recovery="always-retry", secrets=["key"])
        def b(ctx):
            pass
    """)
    a, b = sorted(load_units("units.py", tmp_path), key=lambda u: u.order)
    assert (a.recovery, a.secrets) == (b.recovery, frozenset({"token"}))
    assert b.secrets == frozenset({"key"})


WORKFLOW = """
    namespace: shop
    stages:
      - name: main
        units: [changes]
"""


@pytest.mark.parametrize(("extra", "line", "problem"), [
    ('lock_timeout: "60"', 5, "lock_timeout must be a number, not '60' (text); write it "
                              "without quotes"),
    ("grace_period: -1", 5, "grace_period: Input should be greater than or equal to 0 (it is "
                            "-1 (an integer))"),
    ("compensate: all", 5, "compensate is 'run' or 'failed-unit', not 'all' (text)"),
    ("kafka: {sasl.password: [hunter2]}", 5, "kafka.sasl.password must be text, an integer, "
                                             "a number or a boolean (true or false), not a "
                                             "list"),
    ("templates: shop_templates", 5, "templates must be a list, not 'shop_templates' (text)"),
    ("namespace2: x", 5, "unknown key 'namespace2'; expected one of bus, compensate, "
                         "environments, grace_period, kafka, lock_timeout, max_parallel, "
                         "name, namespace, on_failure, settings, signing_key, stages, store, "
                         "store_options, templates, tenants, trust"),
], ids=["lock-timeout-text", "negative", "compensate", "kafka-list", "templates-text",
        "unknown"])
def test_a_workflow_file_value_of_the_wrong_type_is_refused_at_its_line(
        tmp_path: Path, write: Write, extra: str, line: int, problem: str) -> None:
    write("flamingock.yaml", WORKFLOW + f"    {extra}\n")
    message = refused(lambda: resolve_settings(tmp_path / "flamingock.yaml"))
    assert message == f"{tmp_path / 'flamingock.yaml'}:{line}: {problem}"
    assert "hunter2" not in message


def test_a_stage_is_checked_at_its_own_lines(tmp_path: Path, write: Write) -> None:
    write("flamingock.yaml", """
        namespace: shop
        stages:
          - name: main
            units: 3
          - nme: other
            units: [more]
    """)
    where = tmp_path / "flamingock.yaml"
    assert refused(lambda: resolve_settings(where)).splitlines() == [
        f"{where}:4: stages.0.units must be text or a list, not 3 (an integer)",
        f"{where}:5: missing required key 'name': add it",
        f"{where}:5: unknown key 'nme'; expected one of max_parallel, name, units"]


def test_client_options_reach_the_clients_as_they_read_them(tmp_path: Path,
                                                           write: Write) -> None:
    write("flamingock.yaml", WORKFLOW + "    kafka: {enable.idempotence: true, linger.ms: 5}\n")
    settings = resolve_settings(tmp_path / "flamingock.yaml")
    assert dict(settings.bus_options) == {"enable.idempotence": "true", "linger.ms": "5"}


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("FLAMINGOCK_LOCK_TIMEOUT", "soon", "FLAMINGOCK_LOCK_TIMEOUT='soon' is not a number of "
                                        "seconds"),
    ("FLAMINGOCK_GRACE_PERIOD", "-5", "FLAMINGOCK_GRACE_PERIOD='-5' is not a number of "
                                      "seconds"),
    ("FLAMINGOCK_UNIT_CACHE", "maybe", "FLAMINGOCK_UNIT_CACHE='maybe' is neither on nor off"),
])
def test_an_environment_value_that_means_nothing_is_refused_naming_the_variable(
        tmp_path: Path, variable: str, value: str, problem: str) -> None:
    message = refused(lambda: resolve_settings(tmp_path, env={variable: value}))
    assert message.startswith(problem)


def test_environment_values_are_text_and_converted_by_their_own_rule(tmp_path: Path) -> None:
    settings = resolve_settings(tmp_path, env={
        "FLAMINGOCK_LOCK_TIMEOUT": "2.5", "FLAMINGOCK_GRACE_PERIOD": "0",
        "FLAMINGOCK_UNIT_CACHE": "Off", "FLAMINGOCK_PURE_PYTHON": "yes"})
    assert (settings.lock_timeout, settings.grace_period) == (2.5, 0.0)
    assert (settings.unit_cache, settings.pure_python) == (False, True)


def _validates_in_a_fresh_process(folder: Path) -> bool:
    """Whether resolving the settings in ``folder`` imported the models (pydantic)."""
    done = subprocess.run([sys.executable, "-c", (
        "import sys\nfrom flamingock_es.definition.settings import resolve_settings\n"
        "from flamingock_es.errors import ConfigError\n"
        "try:\n    resolve_settings('flamingock.yaml', env={})\nexcept ConfigError:\n    pass\n"
        "print('flamingock_es.definition.models' in sys.modules)")],
        cwd=folder, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


def test_a_workflow_file_that_passed_is_not_validated_again_until_it_changes(
        tmp_path: Path, write: Write) -> None:
    path = write("flamingock.yaml", WORKFLOW)
    write("changes/u.yaml", UNIT.format(line=""))
    assert _validates_in_a_fresh_process(tmp_path)  # nothing kept yet
    load_workflow(path)  # a load that passed keeps the file's digest
    assert (tmp_path / checked.RECORD).exists()
    assert not _validates_in_a_fresh_process(tmp_path)

    path.write_text(path.read_text() + 'lock_timeout: "60"\n')
    assert _validates_in_a_fresh_process(tmp_path)
    with pytest.raises(ConfigError, match=r"flamingock.yaml:5: lock_timeout must be a number"):
        load_workflow(path)  # what was kept for the old bytes says nothing about the new
