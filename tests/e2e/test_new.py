"""``flamingock-es new``: the next unit of a stage, from a template or in Python, as a user
creates one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Project, ok

pytestmark = pytest.mark.e2e

TEMPLATES = ["http-request", "kafka-topic", "couchbase-document", "python-call"]


@pytest.fixture
def fresh(tmp_path: Path) -> Project:
    project = Project(tmp_path / "app")
    project.path.mkdir()
    ok(project.cli("init"))
    return project


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_template_unit_gets_the_next_order_and_a_block_the_template_accepts(
        fresh: Project, template: str) -> None:
    result = ok(fresh.cli("new", f"Try {template}", "--template", template, "--author", "ana"))

    slug = template.replace("-", "_")
    path = fresh.path / "changes" / f"u003_try_{slug}.yaml"
    assert result.stdout.strip() == f"created changes/u003_try_{slug}.yaml"
    assert f"template: {template}\n" in path.read_text()
    plan = json.loads(ok(fresh.cli("plan", "--json")).stdout)["units"]
    assert plan[-1] == {"stage": "main", "unit": f"try-{template}", "action": "run",
                        "reason": "pending"}


def test_a_python_unit_is_loaded_but_never_recorded_as_applied_before_it_is_written(
        fresh: Project) -> None:
    ok(fresh.cli("new", "Add tier field", "--description", "Adds the tier field."))
    path = fresh.path / "changes" / "u003_add_tier_field.py"
    text = path.read_text()
    assert '@change_unit(id="add-tier-field", order=3, author="e2e-user"' in text

    run = ok(fresh.cli("run"), 8)

    assert "add-tier-field is a skeleton: write its apply step" in run.stderr
    status = json.loads(fresh.cli("status", "--json").stdout)
    row = next(r for r in status["rows"] if r["unit_id"] == "add-tier-field")
    assert row["status"] == "FAILED"
    assert "retry: its last attempt failed before it started" in ok(fresh.cli("plan")).stdout


def test_the_layout_is_checksum_stable(fresh: Project) -> None:
    def checksums() -> dict[str, str]:
        shown = json.loads(ok(fresh.cli("plan", "--show", "--json")).stdout)["show"]
        return {item["unit"]: item["checksum"] for item in shown}

    ok(fresh.cli("new", "Flag on", "--template", "http-request"))
    ok(fresh.cli("new", "Tier field"))
    first = checksums()
    changes = fresh.path / "changes"
    (changes / "u003_flag_on.yaml").rename(changes / "u003_renamed.yaml")
    ok(fresh.cli("new", "Another one", "--template", "python-call"))

    again = checksums()

    assert {unit: again[unit] for unit in first} == first
    assert set(again) - set(first) == {"main/another-one"}


def test_new_refuses_to_overwrite_or_reuse_an_id(fresh: Project) -> None:
    ok(fresh.cli("new", "Flag on", "--template", "http-request"))
    before = (fresh.path / "changes" / "u003_flag_on.yaml").read_text()

    taken = ok(fresh.cli("new", "Flag on", "--template", "http-request"), 2)
    assert "unit id 'flag-on' is taken" in taken.stderr
    (fresh.path / "changes" / "u004_other.py").write_text("# a file that is not a unit\n")
    clash = ok(fresh.cli("new", "Other"), 2)
    assert "u004_other.py exists; nothing was written" in clash.stderr
    assert (fresh.path / "changes" / "u003_flag_on.yaml").read_text() == before


def test_stage_and_template_are_checked(fresh: Project) -> None:
    assert "no stage 'nope'" in ok(fresh.cli("new", "x", "--stage", "nope"), 2).stderr
    unknown = ok(fresh.cli("new", "x", "--template", "carrier-pigeon"), 2).stderr
    assert "unknown template 'carrier-pigeon'; known templates: couchbase-document" in unknown
    assert sorted(p.name for p in (fresh.path / "changes").iterdir()) == [
        "_steps.py", "u001_hello.py", "u002_hello.yaml"]
