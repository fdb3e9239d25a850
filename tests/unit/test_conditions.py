"""``when:`` conditions: CEL compiled once, refused at load when it cannot work, decided per run."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from flamingock_es.definition import conditions
from flamingock_es.definition.conditions import (
    VARIABLES,
    Condition,
    ConditionError,
    Outcome,
    Variables,
)

WHERE = "changes/fill-topic.yaml:7"
RUN = Variables(env="prod", labels=("eu", "blue"),
                settings={"region": "eu-west-1", "flag": True, "replicas": 3,
                          "nested": {"tier": "gold"}},
                units={"create-topic": "APPLIED", "seed": "SKIPPED"})


def when(text: str, variables: Variables = RUN) -> bool:
    return Condition.compile(text, WHERE).evaluate(variables)


def refused(text: str) -> ConditionError:
    with pytest.raises(ConditionError) as caught:
        Condition.compile(text, WHERE)
    assert str(caught.value).startswith(f"{WHERE}: when: {text!r} ")
    assert caught.value.where == WHERE
    assert caught.value.text == text
    return caught.value


# -- what a condition can say --------------------------------------------------------------------


def test_env() -> None:
    assert when('env == "prod"') is True
    assert when('env == "prod"', Variables(env="dev")) is False
    assert when('env == ""', Variables()) is True


def test_labels() -> None:
    assert when('"eu" in labels') is True
    assert when('"us" in labels') is False
    assert when('"eu" in labels', Variables()) is False
    assert when('labels.exists(l, l.startsWith("bl"))') is True
    assert when("size(labels) == 2") is True


def test_settings() -> None:
    assert when('settings.region == "eu-west-1"') is True
    assert when('settings.region == "us-east-1"') is False
    assert when('settings["nested"].tier == "gold"') is True
    assert when("settings.replicas > 2") is True


def test_units() -> None:
    assert when('units["create-topic"] == "APPLIED"') is True
    assert when('units["create-topic"] == "APPLIED"',
                Variables(units={"create-topic": "FAILED"})) is False
    assert when('units.seed == "SKIPPED"') is True


def test_has_guards_an_optional_setting() -> None:
    assert when("has(settings.flag) && settings.flag") is True
    assert when("has(settings.flag) && settings.flag", Variables(settings={"flag": False})) is False
    assert when("has(settings.flag) && settings.flag", Variables()) is False


def test_a_condition_may_span_lines_and_carry_comments() -> None:
    text = 'env == "prod" // only in production\n  && "eu" in labels'
    assert when(text) is True
    assert when(text, Variables(env="prod", labels=["us"])) is False


def test_evaluate_takes_a_mapping_too() -> None:
    condition = Condition.compile('env == "prod" && "eu" in labels', WHERE)
    assert condition.evaluate({"env": "prod", "labels": ["eu"]}) is True
    assert condition.evaluate({"env": "dev"}) is False


def test_a_condition_knows_what_it_reads() -> None:
    condition = Condition.compile('env == "prod" && units["a"] == "APPLIED" && '
                                  'labels.all(x, x != "")', WHERE)
    assert condition.variables == frozenset({"env", "units", "labels"})
    assert condition.unit_refs == frozenset({"a"})
    assert condition.constant is None


# -- refused at load -------------------------------------------------------------------------


def test_a_syntax_error_is_refused_with_where_and_the_librarys_message() -> None:
    error = refused('env == "prod" &&')
    assert "does not parse as CEL" in error.reason
    assert "1:17" in error.reason  # the library's line:column of the problem
    assert "Syntax error" in error.reason


def test_a_misspelt_variable_is_refused_naming_it_and_the_closest() -> None:
    error = refused('enviroment == "prod"')
    assert error.reason == ("names an unknown variable 'enviroment' (did you mean 'env'?); a "
                            "condition can use env, labels, settings, units")
    assert "did you mean 'labels'?" in refused('"eu" in lables').reason


def test_an_unknown_variable_with_nothing_close() -> None:
    error = refused("tomorrow > 3")
    assert "unknown variable 'tomorrow';" in error.reason
    assert "did you mean" not in error.reason


def test_a_comprehension_variable_is_known_inside_its_macro_only() -> None:
    assert when('labels.exists(l, l == "eu")') is True
    assert when('labels.filter(l, l != "eu").size() == 1') is True
    assert when('labels.map(l, l + "!").exists(x, x == "eu!")') is True
    assert "unknown variable 'm'" in refused('labels.exists(l, l == m)').reason


def test_type_names_are_not_variables() -> None:
    assert when("type(env) == string && type(settings.replicas) == int") is True


@pytest.mark.parametrize(("text", "shown"), [
    ('"prod"', "'prod' (a string)"),
    ("1 + 1", "2 (a number)"),
    ("[1, 2]", "[1, 2] (a list)"),
    ("null", "None (null)"),
])
def test_a_constant_that_is_not_a_boolean_is_refused(text: str, shown: str) -> None:
    assert refused(text).reason == f"is always {shown}, not true or false"


def test_a_constant_that_cannot_be_evaluated_is_refused() -> None:
    assert "could not be evaluated: division by zero" in refused("1 / 0 == 1").reason


def test_a_bare_variable_that_is_never_a_boolean_is_refused() -> None:
    assert refused("env").reason.startswith("is a string, not true or false")
    assert refused("labels").reason.startswith("is a list, not true or false")
    assert refused("units").reason.startswith("is a map, not true or false")


@pytest.mark.parametrize("text", ["", "   \n"])
def test_an_empty_condition_is_refused(text: str) -> None:
    assert refused(text).reason.startswith("is empty")


def test_a_constant_boolean_is_allowed_and_needs_no_variables() -> None:
    off = Condition.compile("false", WHERE)
    assert off.constant is False
    assert off.evaluate(Variables()) is False
    assert Condition.compile("[1, 2].exists(x, x == 2)", WHERE).constant is True


# -- refused at run time ---------------------------------------------------------------------


def test_a_result_that_is_not_a_boolean_is_refused_when_evaluated() -> None:
    condition = Condition.compile("settings.region", WHERE)
    with pytest.raises(ConditionError) as caught:
        condition.evaluate(RUN)
    assert str(caught.value) == (f"{WHERE}: when: 'settings.region' gave 'eu-west-1' (a "
                                 f"string), not true or false")
    with pytest.raises(ConditionError, match=r"gave 3 \(a number\)"):
        condition.evaluate(Variables(settings={"region": 3}))


def test_a_missing_key_says_how_to_guard_it() -> None:
    with pytest.raises(ConditionError, match=r"could not be evaluated: no key 'flag'; guard it "
                                             r"with has\(\.\.\.\) or 'in'"):
        when("settings.flag", Variables())
    with pytest.raises(ConditionError, match="no key 'gone'"):
        when('units["gone"] == "APPLIED"')


def test_a_type_error_is_refused_with_the_librarys_message() -> None:
    with pytest.raises(ConditionError, match=r"could not be evaluated: .*string \+ int"):
        when('env + 1 == "x"')


def test_an_unknown_function_is_refused_when_evaluated() -> None:
    condition = Condition.compile("nosuch(env)", WHERE)
    with pytest.raises(ConditionError, match=r"could not be evaluated: .*'nosuch'"):
        condition.evaluate(RUN)


# -- the variables ----------------------------------------------------------------------------


def test_variables_refuse_an_outcome_that_is_not_one() -> None:
    with pytest.raises(ValueError, match=r"units\['a'\] is 'DONE', not one of PENDING, RUNNING"):
        Variables(units={"a": "DONE"})
    with pytest.raises(TypeError, match="labels must be a list of strings"):
        Variables(labels="eu")
    with pytest.raises(TypeError, match="env must be a string"):
        Variables(env=None)  # type: ignore[arg-type]
    assert Variables(units={"a": Outcome.APPLIED}).units["a"] == "APPLIED"


def test_outcomes_from_the_audit_logs_statuses() -> None:
    assert Outcome.from_status(None) is Outcome.PENDING
    assert Outcome.from_status("APPLIED") is Outcome.APPLIED
    assert Outcome.from_status("MANUAL_MARKED_AS_APPLIED") is Outcome.APPLIED
    assert Outcome.from_status("ROLLED_BACK") is Outcome.ROLLED_BACK
    assert Outcome.from_status("MANUAL_MARKED_AS_ROLLED_BACK") is Outcome.ROLLED_BACK
    assert Outcome.from_status("FAILED") is Outcome.FAILED
    assert Outcome.from_status("ROLLBACK_FAILED") is Outcome.ROLLBACK_FAILED
    assert Outcome.from_status("STARTED") is Outcome.IN_DOUBT
    with pytest.raises(ValueError, match="no outcome for unit status 'WHATEVER'"):
        Outcome.from_status("WHATEVER")


def test_the_statuses_mapped_are_the_audit_logs_own() -> None:
    from flamingock_es.core.state import UnitStatus

    for status in UnitStatus:
        Outcome.from_status(status.value)


# -- which units a condition names (only those are handed to the library) ------------------------


@pytest.mark.parametrize(("text", "refs"), [
    ('units["a-b.c:d"] == "APPLIED"', {"a-b.c:d"}),
    ("units['a'] == 'APPLIED' && units.b == 'SKIPPED'", {"a", "b"}),
    ('has(units.x) && units.x == "APPLIED"', {"x"}),
    ('units[r"raw"] == "APPLIED"', {"raw"}),
    ('units["""tri"""] == "APPLIED"', {"tri"}),
    ('env == "units[\\"zz\\"]"', set()),
    ('settings.units == "x"', set()),
    ('units["a"] == "APPLIED" // units[x]', {"a"}),
])
def test_the_units_named(text: str, refs: set[str]) -> None:
    assert Condition.compile(text, WHERE).unit_refs == frozenset(refs)


@pytest.mark.parametrize("text", [
    '"a" in units',
    "units.size() > 0",
    'units["a" + "b"] == "APPLIED"',
    'units["esc\\u0061ped"] == "APPLIED"',
    'labels.exists(l, units[l] == "APPLIED")',
    'units.exists(k, units[k] == "FAILED")',
    'units[b"a"] == "APPLIED"',
])
def test_any_other_use_of_units_may_look_at_every_unit(text: str) -> None:
    assert Condition.compile(text, WHERE).unit_refs is None


def test_naming_units_does_not_change_the_answer() -> None:
    many = {f"u{k}": "PENDING" for k in range(2000)} | {"a": "APPLIED", "b": "FAILED"}
    run = Variables(units=many)
    assert when('units["a"] == "APPLIED" && units.b == "FAILED"', run) is True
    assert when('has(units.zzz) || units["a"] == "APPLIED"', run) is True
    assert when("has(units.zzz)", run) is False
    assert when('"u1999" in units', run) is True
    assert when('units.exists(k, units[k] == "FAILED")', run) is True
    assert when("units.size() == 2002", run) is True
    assert when('units["esc\\u0061ped"] == "APPLIED"', Variables(units={"escaped": "APPLIED"}))


def test_only_the_units_named_and_the_variables_read_are_converted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Converting a map for the library costs ~10 us an entry: a condition naming two units of
    # a 10,000-unit workflow must not pay for the other 9,998.
    seen: list[dict[str, object]] = []
    run = conditions.Condition._run

    def spy(program: object, context: dict[str, object], where: str, text: str) -> object:
        seen.append(context)
        return run(program, context, where, text)  # type: ignore[arg-type]

    many = {f"u{k}": "PENDING" for k in range(100)} | {"a": "APPLIED"}
    named = Condition.compile('units["a"] == "APPLIED" && !has(units.gone)', WHERE)
    monkeypatch.setattr(conditions.Condition, "_run", staticmethod(spy))
    assert named.evaluate(Variables(env="prod", units=many)) is True
    assert seen[-1] == {"units": {"a": "APPLIED"}}
    dynamic = Condition.compile('"a" in units && env == "prod"', WHERE)
    assert dynamic.evaluate(Variables(env="prod", units=many)) is True
    assert seen[-1] == {"env": "prod", "units": many}


# -- how it is built ------------------------------------------------------------------------


def test_no_python_eval_or_exec() -> None:
    tree = ast.parse(Path(conditions.__file__).read_text(encoding="utf-8"))
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__"}


def test_the_library_is_imported_only_when_a_condition_is_compiled() -> None:
    script = ("import sys\nfrom flamingock_es.definition import conditions\n"
              "before = 'cel' in sys.modules\n"
              "conditions.Condition.compile('true', 'x:1')\n"
              "print(before, 'cel' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(conditions.__file__).parents[2])
    assert out.stdout.split() == ["False", "True"]


def test_the_documented_variables() -> None:
    assert VARIABLES == ("env", "labels", "settings", "units")
    for name in VARIABLES:
        assert f"``{name}``" in (conditions.__doc__ or "")
