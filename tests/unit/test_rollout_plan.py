"""A rollout's shape: its budget and its waves, from what a person types."""

from __future__ import annotations

import pytest

from flamingock_es.errors import ConfigError
from flamingock_es.run.rollout import parse_budget, plan_waves

TENANTS = [f"t{i}" for i in range(10)]


@pytest.mark.parametrize(("text", "size", "allowed"), [
    ("0", 10, 0), ("2", 10, 2), ("2%", 10, 0), ("10%", 10, 1), ("25%", 10, 2),
    ("100%", 3, 3), ("2.5%", 1000, 25), (" 3 ", 1, 3)])
def test_a_budget_is_a_count_or_a_share_rounded_down(text: str, size: int,
                                                     allowed: int) -> None:
    assert parse_budget(text).allowed(size) == allowed


@pytest.mark.parametrize("text", ["", "two", "-1", "2.5", "101%", "%", "1e3", "2 %%"])
def test_a_budget_that_does_not_parse_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="does not parse"):
        parse_budget(text)


def test_the_canary_is_the_first_tenant_and_the_rest_one_wave_by_default() -> None:
    assert plan_waves(TENANTS, None, None) == [("t0",), tuple(TENANTS[1:])]


def test_waves_by_count_and_by_share_of_all_tenants() -> None:
    assert plan_waves(TENANTS, "2", "3") == [
        ("t0", "t1"), ("t2", "t3", "t4"), ("t5", "t6", "t7"), ("t8", "t9")]
    assert plan_waves(TENANTS, "1", "50%") == [
        ("t0",), ("t1", "t2", "t3", "t4", "t5"), ("t6", "t7", "t8", "t9")]


def test_a_named_canary_comes_first_and_is_not_run_again() -> None:
    waves = plan_waves(TENANTS, "t7,t3", "4")
    assert waves[0] == ("t7", "t3")
    assert sorted(t for wave in waves for t in wave) == sorted(TENANTS)


@pytest.mark.parametrize(("canary", "wave", "says"), [
    ("t7,nope", None, "nope is not among the 10"), ("0", None, "--canary '0'"),
    ("1", "0%", "--wave '0%'"), ("1", "many", "--wave 'many'")])
def test_a_bad_shape_is_refused(canary: str, wave: str | None, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        plan_waves(TENANTS, canary, wave)
