"""The loader: Python and declarative units, and errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flamingock_es.cli.status_codes import exit_code
from flamingock_es.core.changes import ChangeContext, ChangeUnit, Recovery
from flamingock_es.definition.loader import load_units, resolved_parameters
from flamingock_es.definition.workflow import load_workflow
from flamingock_es.errors import ConfigError, StepNotStarted, TemplateError

Write = Callable[[str, str], Path]

PY_UNITS = '''
    from flamingock_es import change_unit


    def drop_tier(ctx):
        ctx.params["calls"].append(("rollback", ctx.unit_id))


    @change_unit(id="add-tier", order=2, author="ana", rollback=drop_tier,
                 description="adds the tier field", recovery="always-retry")
    def add_tier(ctx):
        ctx.params["calls"].append(("apply", ctx.unit_id))


    @change_unit(id="seed-plans", order=1, author="bo", run_always=True)
    class SeedPlans:
        def apply(self, ctx):
            ctx.params["calls"].append(("apply", ctx.unit_id))

        def rollback(self, ctx):
            ctx.params["calls"].append(("rollback", ctx.unit_id))


    NOT_A_UNIT = 42
'''

YAML_UNIT = '''
    id: flag-on
    order: 3
    author: cy
    description: turn the flag on
    template: python-call
    apply:
      function: "json:dumps"
      args: {obj: 1}
    rollback:
      function: "json:dumps"
      args: {obj: 0}
'''


def context(unit: ChangeUnit, params: dict[str, Any]) -> ChangeContext:
    return ChangeContext("shop", "r1", unit.id, params)


def by_id(units: list[ChangeUnit]) -> dict[str, ChangeUnit]:
    return {u.id: u for u in units}


def test_python_units_function_and_class_style(tmp_path: Path, write: Write) -> None:
    path = write("changes/units.py", PY_UNITS)

    units = by_id(load_units("changes", tmp_path))

    assert set(units) == {"add-tier", "seed-plans"}
    fn, cls = units["add-tier"], units["seed-plans"]
    assert (fn.order, fn.author, fn.description) == (2, "ana", "adds the tier field")
    assert fn.recovery is Recovery.ALWAYS_RETRY
    assert not fn.run_always
    assert cls.run_always
    assert cls.recovery is Recovery.MANUAL_INTERVENTION
    assert fn.source == f"{path}:8"
    assert fn.source.startswith(str(path))
    assert cls.source.startswith(str(path))
    calls: list[tuple[str, str]] = []
    for unit in (fn, cls):
        assert unit.rollback is not None
        unit.apply(context(unit, {"calls": calls}))
        unit.rollback(context(unit, {"calls": calls}))
    assert calls == [("apply", "add-tier"), ("rollback", "add-tier"),
                     ("apply", "seed-plans"), ("rollback", "seed-plans")]


def test_a_class_without_rollback_has_none(tmp_path: Path, write: Write) -> None:
    write("u.py", '''
        from flamingock_es import change_unit

        @change_unit(id="one-way", order=1, author="ana")
        class OneWay:
            def apply(self, ctx):
                pass
    ''')
    (unit,) = load_units("u.py", tmp_path)
    assert unit.id == "one-way"
    assert unit.rollback is None


def test_a_folder_loads_python_yaml_and_json_sorted_skipping_private(tmp_path: Path,
                                                                    write: Write) -> None:
    write("changes/a_units.py", PY_UNITS)
    write("changes/b_flag.yaml", YAML_UNIT)
    write("changes/c_more.json", json.dumps([
        {"id": "j1", "order": 4, "author": "di", "template": "python-call",
         "apply": {"function": "json:dumps", "args": {"obj": 1}}},
        {"id": "j2", "order": 5, "author": "di", "template": "python-call",
         "apply": {"function": "json:dumps"}, "secrets": ["token"]},
    ], indent=2))
    write("changes/_helpers.py", "raise RuntimeError('never imported')\n")
    write("changes/notes.txt", "ignored\n")

    units = load_units(["changes"], tmp_path)

    assert [u.id for u in units] == ["add-tier", "seed-plans", "flag-on", "j1", "j2"]
    json_unit = units[-1]
    assert json_unit.template == "python-call"
    assert json_unit.source.endswith("c_more.json:14")
    assert "token" in json_unit.secrets


def test_a_yaml_unit_and_its_steps(tmp_path: Path, write: Write, monkeypatch: pytest.MonkeyPatch
                                   ) -> None:
    path = write("flag.yaml", YAML_UNIT)

    (unit,) = load_units("flag.yaml", tmp_path)

    assert (unit.id, unit.order, unit.author, unit.description) == (
        "flag-on", 3, "cy", "turn the flag on")
    assert unit.template == "python-call"
    assert unit.source == f"{path}:1"
    assert unit.parameters == {"apply": {"function": "json:dumps", "args": {"obj": 1}},
                               "rollback": {"function": "json:dumps", "args": {"obj": 0}}}
    seen: list[object] = []
    monkeypatch.setattr("json.dumps", lambda obj: seen.append(obj))
    assert unit.rollback is not None
    unit.apply(context(unit, dict(unit.parameters)))
    unit.rollback(context(unit, dict(unit.parameters)))
    assert seen == [1, 0]


# Errors name the file and the line --------------------------------------------------------


def load_error(tmp_path: Path, write: Write, text: str, name: str = "unit.yaml") -> str:
    write(name, text)
    with pytest.raises(ConfigError) as info:
        load_units(name, tmp_path)
    assert exit_code(info.value) == 2
    return str(info.value)


def test_malformed_yaml_names_the_line(tmp_path: Path, write: Write) -> None:
    message = load_error(tmp_path, write, """
        id: broken
        order: 1
        author: ana
        apply: {function: "json:dumps"
        template: python-call
    """)
    assert f"{tmp_path / 'unit.yaml'}:5:" in message
    assert "not valid YAML" in message


def test_malformed_json_names_the_line(tmp_path: Path, write: Write) -> None:
    message = load_error(tmp_path, write, '{\n  "id": "x",\n  "order": 1,,\n}\n', "unit.json")
    assert f"{tmp_path / 'unit.json'}:3:" in message


def test_a_missing_field_is_named(tmp_path: Path, write: Write) -> None:
    message = load_error(tmp_path, write, """
        id: no-author
        order: 1
        template: python-call
        apply: {function: "json:dumps"}
    """)
    assert message.startswith(f"{tmp_path / 'unit.yaml'}:1: ")
    assert "missing required field 'author'" in message


def test_an_unknown_field_is_named_at_its_line(tmp_path: Path, write: Write) -> None:
    message = load_error(tmp_path, write, """
        id: typo
        order: 1
        author: ana
        rolback: {function: "json:dumps"}
        template: python-call
        apply: {function: "json:dumps"}
    """)
    assert message.startswith(f"{tmp_path / 'unit.yaml'}:4: unknown field 'rolback'")


def test_a_duplicated_key_is_named(tmp_path: Path, write: Write) -> None:
    message = load_error(tmp_path, write, """
        id: twice
        order: 1
        order: 2
    """)
    assert message.startswith(f"{tmp_path / 'unit.yaml'}:3: key 'order' appears twice")


def test_a_non_integer_order_is_named(tmp_path: Path, write: Write) -> None:
    message = load_error(tmp_path, write, """
        id: x
        order: first
        author: ana
        template: python-call
        apply: {function: "json:dumps"}
    """)
    assert message.startswith(f"{tmp_path / 'unit.yaml'}:2: order must be an integer")


def test_an_unknown_recovery_is_named(tmp_path: Path, write: Write) -> None:
    message = load_error(tmp_path, write, """
        id: x
        order: 1
        author: ana
        template: python-call
        apply: {function: "json:dumps"}
        recovery: pray
    """)
    assert message.startswith(f"{tmp_path / 'unit.yaml'}:6: recovery is")


def test_an_unknown_template_is_named_with_the_known_ones(tmp_path: Path, write: Write) -> None:
    write("unit.yaml", """
        id: x
        order: 1
        author: ana
        template: smoke-signal
        apply: {}
    """)
    with pytest.raises(TemplateError) as info:
        load_units("unit.yaml", tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'unit.yaml'}:4: unknown template 'smoke-signal'")
    assert "python-call" in message
    assert "http-request" in message


@pytest.mark.parametrize(("block", "line", "problem"), [
    ("apply: {args: {}}", 5, "function: Field required"),
    ('apply: {function: "json:dumps", colour: red}', 5, "colour: Extra inputs"),
    ('apply: {function: "json:dumps", args: 3}', 5, "args: Input should be a valid dictionary"),
])
def test_bad_template_parameters_are_named(tmp_path: Path, write: Write, block: str, line: int,
                                           problem: str) -> None:
    write("unit.yaml", f"""
        id: x
        order: 1
        author: ana
        template: python-call
        {block}
    """)
    with pytest.raises(TemplateError) as info:
        load_units("unit.yaml", tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'unit.yaml'}:{line}: the apply block does not fit "
                              "template 'python-call'")
    assert problem in message


def test_a_bad_rollback_block_is_named(tmp_path: Path, write: Write) -> None:
    message = load_error(tmp_path, write, """
        id: x
        order: 1
        author: ana
        template: python-call
        apply: {function: "json:dumps"}
        rollback: {url: "http://nowhere"}
    """)
    assert message.startswith(f"{tmp_path / 'unit.yaml'}:6: the rollback block does not fit")


def test_a_python_file_that_fails_to_import_is_named(tmp_path: Path, write: Write) -> None:
    message = load_error(tmp_path, write, "import no_such_module_here\n", "bad.py")
    assert message.startswith(f"{tmp_path / 'bad.py'}: importing it failed: "
                              "ModuleNotFoundError")


def test_a_missing_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"flamingock.yaml:4: units source 'nope/' does not"):
        load_units(["nope/"], tmp_path, "flamingock.yaml:4")


def test_duplicate_ids_across_files_name_both_sources(tmp_path: Path, write: Write) -> None:
    write("flamingock.yaml", """
        namespace: shop
        stages:
          - name: data
            units: [data]
          - name: flags
            units: [flags]
    """)
    write("data/units.py", PY_UNITS)
    write("flags/again.yaml", """
        # the same id as a Python unit in another stage
        id: add-tier
        order: 1
        author: ana
        template: python-call
        apply: {function: "json:dumps"}
    """)

    with pytest.raises(ConfigError) as info:
        load_workflow(tmp_path / "flamingock.yaml")

    message = str(info.value)
    assert "duplicate ChangeUnit id 'add-tier'" in message
    assert f"{tmp_path / 'flags' / 'again.yaml'}:2" in message
    assert f"{tmp_path / 'data' / 'units.py'}:8" in message


def test_duplicate_ids_within_one_folder_name_both_files(tmp_path: Path, write: Write) -> None:
    write("flamingock.yaml", "namespace: shop\nstages: [{name: main, units: [changes]}]\n")
    for name in ("a.yaml", "b.yaml"):
        write(f"changes/{name}", """
            id: same
            order: 1
            author: ana
            template: python-call
            apply: {function: "json:dumps"}
        """)
    with pytest.raises(ConfigError,
                       match=r"b\.yaml:1: duplicate .* already defined at .*a\.yaml:1"):
        load_workflow(tmp_path)


# ${VAR} and secrets ---------------------------------------------------------------------


SECRET_UNIT = """
    id: call-flags
    order: 1
    author: ana
    template: http-request
    secrets: [api_key]
    apply:
      method: PUT
      url: "${FLAGS_URL}/flags/checkout"
      headers: {Authorization: "Bearer ${FLAGS_TOKEN}", X-Trace: "${TRACE:-none}"}
      json: {enabled: true, api_key: "${API_KEY}", password: hunter2}
"""


def test_vars_resolve_at_run_time_with_defaults(tmp_path: Path, write: Write) -> None:
    write("u.yaml", SECRET_UNIT)
    (unit,) = load_units("u.yaml", tmp_path)

    params = resolved_parameters(unit, {"FLAGS_URL": "http://flags", "FLAGS_TOKEN": "t0k",
                                        "API_KEY": "k3y"})

    apply = params["apply"]
    assert apply["url"] == "http://flags/flags/checkout"
    assert apply["headers"] == {"Authorization": "Bearer t0k", "X-Trace": "none"}
    assert apply["json"] == {"enabled": True, "api_key": "k3y", "password": "hunter2"}
    assert unit.parameters["apply"]["url"] == "${FLAGS_URL}/flags/checkout"  # kept unresolved


def test_a_missing_var_names_the_unit_and_the_variable(tmp_path: Path, write: Write) -> None:
    path = write("u.yaml", SECRET_UNIT)
    (unit,) = load_units("u.yaml", tmp_path)

    with pytest.raises(ConfigError) as info:
        resolved_parameters(unit, {"FLAGS_URL": "http://flags"})

    message = str(info.value)
    assert message.startswith(f"{path}:1: unit 'call-flags' uses ${{FLAGS_TOKEN}}")
    assert "not set in the environment" in message


def test_a_misspelt_key_beside_a_variable_is_refused_at_load(tmp_path: Path,
                                                              write: Write) -> None:
    write("u.yaml", """
        id: later
        order: 1
        author: ana
        template: python-call
        apply: {function: "${FN}", colour: red}
    """)
    with pytest.raises(TemplateError, match=r"u\.yaml:5: the apply block .*colour"):
        load_units("u.yaml", tmp_path)  # the typo is known before ${FN} is


def test_a_value_that_only_its_variable_can_tell_is_checked_before_the_run(
        tmp_path: Path, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIMIT", raising=False)
    write("u.yaml", """
        id: later
        order: 1
        author: ana
        template: http-request
        apply: {url: "http://flags/x", timeout: "${LIMIT}"}
    """)
    (unit,) = load_units("u.yaml", tmp_path)  # ${LIMIT} may be a number at run time
    assert unit.check is not None
    params = resolved_parameters(unit, {"LIMIT": "soon"})
    with pytest.raises(TemplateError, match=r"u\.yaml \(apply\): .*timeout"):
        unit.check(params)  # what the runner does before it takes the lock
    with pytest.raises(StepNotStarted, match="timeout"):
        unit.apply(context(unit, dict(params)))  # nothing sent: not started, not compensated


def test_secrets_are_redacted_in_audit_parameters(tmp_path: Path, write: Write) -> None:
    write("u.yaml", SECRET_UNIT)
    (unit,) = load_units("u.yaml", tmp_path)

    audit = unit.audit_parameters()
    recorded = json.loads(audit)

    apply = recorded["apply"]
    assert apply["headers"]["Authorization"] == "***"  # the template's secret field
    assert apply["json"]["api_key"] == "***"  # declared in secrets:
    assert apply["json"]["password"] == "***"  # a well-known secret name
    assert apply["headers"]["X-Trace"] == "${TRACE:-none}"
    assert apply["url"] == "${FLAGS_URL}/flags/checkout"  # never resolved in the audit
    assert "hunter2" not in audit
    assert "Bearer" not in audit


def test_python_unit_secrets_are_redacted(tmp_path: Path, write: Write) -> None:
    write("u.py", '''
        from flamingock_es import change_unit

        @change_unit(id="p", order=1, author="ana", secrets=("dsn",),
                     parameters={"dsn": "postgres://u:pw@db", "table": "users",
                                 "nested": {"token": "abc", "items": [{"secret": "s"}]}})
        def p(ctx):
            pass
    ''')
    (unit,) = load_units("u.py", tmp_path)

    assert json.loads(unit.audit_parameters()) == {
        "dsn": "***", "table": "users", "nested": {"token": "***", "items": [{"secret": "***"}]}}


def test_a_quoted_literal_does_not_fit_a_template_but_a_variable_may(
        tmp_path: Path, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    write("quoted.yaml", """
        id: quoted
        order: 1
        author: ana
        template: http-request
        apply: {url: "http://flags/x", timeout: "10"}
    """)
    with pytest.raises(TemplateError, match=r"quoted\.yaml:5: .*timeout: Input should be a "
                                            r"valid number"):
        load_units("quoted.yaml", tmp_path)  # text where a number goes: never coerced

    monkeypatch.setenv("LIMIT", "10")
    write("variable.yaml", """
        id: variable
        order: 1
        author: ana
        template: http-request
        apply: {url: "http://flags/x", timeout: "${LIMIT}", expect_status: "${STATUS:-201}"}
    """)
    (unit,) = load_units("variable.yaml", tmp_path)  # a variable's value is text by nature
    assert unit.check is not None
    unit.check(resolved_parameters(unit, {"LIMIT": "2.5"}))


def test_http_request_takes_one_expected_status_or_a_list(tmp_path: Path, write: Write) -> None:
    from flamingock_es.definition.templates import get_template

    template = get_template("http-request")
    one = template.validate({"url": "http://x", "expect_status": 201}, "apply", "here")
    many = template.validate({"url": "http://x", "expect_status": [200, 204]}, "apply", "here")
    default = template.validate({"url": "http://x"}, "apply", "here")
    assert [p.statuses for p in (one, many)] == [[201], [200, 204]]
    assert default.statuses == list(range(200, 300))
    with pytest.raises(TemplateError, match="expect_status: Input should be a valid integer or "
                                            "a valid list"):
        template.validate({"url": "http://x", "expect_status": "201"}, "apply", "here")


def test_two_units_with_one_order_in_a_stage_name_both(tmp_path: Path, write: Write) -> None:
    write("flamingock.yaml", """
        namespace: shop
        stages:
          - {name: main, units: [changes]}
          - {name: later, units: [more]}
    """)
    for name in ("changes/a.yaml", "changes/b.yaml", "more/c.yaml"):
        write(name, f"""
            id: {Path(name).stem}
            order: 1
            author: ana
            template: python-call
            apply: {{function: "json:dumps"}}
        """)
    with pytest.raises(ConfigError) as info:
        load_workflow(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / 'changes' / 'b.yaml'}:1: unit 'b' has order 1 in stage 'main', as unit "
        f"'a' at {tmp_path / 'changes' / 'a.yaml'}:1 has. Units of a stage run in their order: "
        "give one of them another.")  # c, in another stage, may have order 1 too
    (tmp_path / "changes" / "b.yaml").unlink()
    assert [u.id for _, u in load_workflow(tmp_path).units()] == ["a", "c"]
