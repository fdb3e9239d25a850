"""The HTML compliance report of a real history, opened in headless Chromium.

The CLI writes the history as a user would (a run killed mid-change, a person's mark, a
failed and compensated run, a change request served) and renders it; the browser
checks what a reader sees: no console error, the verdict at the top, every run and step
visible, nothing clipped, and the print rules showing the whole of every shortened value.
Screenshots (and the printed PDF) are saved for CI as artefacts. Chromium is a requirement
of this suite, not an option: without it the test fails and says how to install it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from .browser import Browser, artifacts
from .conftest import Project, ok, reseal
from .test_recovery import killed_in_apply_of_u2

pytestmark = pytest.mark.e2e

MARK_REASON = "reverted by hand"


def _history(project: Project) -> None:
    """Every kind of run a report must show, written by the CLI."""
    killed_in_apply_of_u2(project)  # u1 applied, then the runner dies in u2's apply
    ok(project.cli("mark", "u2", "--as", "rolled-back", "--reason", MARK_REASON))
    project.flag("fail-u2")
    ok(project.cli("run"), 8)  # u2 fails and is compensated
    project.unflag("fail-u2")
    ok(project.cli("request", "--reason", "CHG-1234 winter sale", "--requested-by", "alice"))
    ok(project.cli("serve", "--max-requests", "1"))  # applies u2 and u3


def _render(project: Project, bus: str | None = None, code: int = 0) -> tuple[Path, Any]:
    """The report as HTML (and as JSON, to check the page against)."""
    where = ["--bus", bus, "--namespace", "shop"] if bus else []
    name = "broken" if bus else "report"
    page, data = project.path / f"{name}.html", project.path / f"{name}.json"
    ok(project.cli("replay", *where, "--format", "html", "-o", str(page)), code)
    ok(project.cli("replay", *where, "--format", "json", "-o", str(data)), code)
    return page, json.loads(data.read_text())


def _save(browser: Browser, name: str) -> Path:
    path = browser.screenshot(artifacts() / name)
    print(f"screenshot: {path}")
    return path


VISIBLE = """(selector) => [...document.querySelectorAll(selector)].map(e => {
  const r = e.getBoundingClientRect();
  return {id: e.id, text: e.innerText, width: r.width, height: r.height,
          top: r.top + window.scrollY, cls: e.className};
})"""

# Cells and facts whose content is wider than their box: clipped or spilling over.
OVERFLOWING = """[...document.querySelectorAll('td, dd, .who > div, .summary section')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => e.tagName + ': ' + e.innerText.slice(0, 80))"""


def _query(browser: Browser, selector: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = browser.evaluate(f"({VISIBLE})({json.dumps(selector)})")
    return found


def test_the_report_reads_well_in_a_browser_and_on_paper(project: Project,
                                                         browser: Browser) -> None:
    _history(project)
    page, data = _render(project)
    browser.open(page.as_uri())

    assert browser.errors() == []
    (verdict,) = _query(browser, "#verdict")
    assert verdict["height"] > 0
    assert verdict["top"] < 400, "the verdict is the first thing a reader sees"
    assert "Chain intact" in verdict["text"]
    assert data["head_hash"] in verdict["text"]

    runs = _query(browser, "section.run")
    assert [r["text"].split("\n")[0].removeprefix("Run ").split()[0] for r in runs] == [
        r["run_id"] for r in data["runs"]]
    assert all(r["height"] > 0 and r["width"] > 600 for r in runs)
    outcomes = [h["text"] for h in _query(browser, "section.run > header")]
    incomplete = "incomplete (no outcome recorded: the process died or was cut off)"
    assert sum(incomplete in o for o in outcomes) == 1
    requested = [r for r in data["runs"] if r["trigger"] == "request"]
    assert len(requested) == 1
    section = next(r for r in runs if requested[0]["run_id"] in r["text"])
    assert requested[0]["request_id"] in section["text"]
    assert requested[0]["requested_by"] in section["text"]  # once the fold records them
    assert requested[0]["request_reason"] in section["text"]

    steps = _query(browser, "tr[id^='step-']")
    assert len(steps) == len(data["changes"]) + 1  # and the killed run's interrupted step
    assert all(s["height"] > 0 for s in steps)
    (mark,) = [s for s in steps if "MANUAL_MARKED_AS_ROLLED_BACK" in s["text"]]
    assert f"REASON {MARK_REASON}" in mark["text"]
    assert len(_query(browser, ".timeline a.mark")) == len(steps)
    assert browser.evaluate(OVERFLOWING) == []
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _save(browser, "report.png")

    navigation = _query(browser, "nav")
    assert navigation, "the report has its navigation on screen"
    assert all(n["height"] > 0 for n in navigation)
    browser.media("print")
    assert [n["height"] for n in _query(browser, "nav")] == [0] * len(navigation)  # not on paper
    printed = [e for e in _query(browser, ".print-only") if e["height"] > 0]
    assert printed, "the whole of each shortened value is on paper"
    assert all(e["height"] == 0 for e in _query(browser, ".screen-only"))
    browser.pdf(artifacts() / "report.pdf")
    _save(browser, "report-print.png")


def test_a_tampered_log_shows_its_finding_and_the_rows_it_leaves_unverified(
        project: Project, browser: Browser, tmp_path: Path) -> None:
    _history(project)
    copy = tmp_path / "copy"
    (copy / "shop").mkdir(parents=True)
    frames = [record for _, record in project.frames()]
    (index,) = [i for i, record in enumerate(frames) if MARK_REASON.encode() in record]
    frames[index] = frames[index].replace(MARK_REASON.encode(), b"reverted by HAND")
    (copy / "shop" / "audit.log").write_bytes(b"".join(reseal(r) for r in frames))
    page, data = _render(project, bus=f"local:{copy}", code=4)
    browser.open(page.as_uri())

    assert browser.errors() == []
    (verdict,) = _query(browser, "#verdict")
    assert "1 integrity finding" in verdict["text"]
    assert "altered after it was written" in verdict["text"]
    target = browser.evaluate("document.querySelector('#finding-1 a').getAttribute('href')")
    (row,) = _query(browser, target)
    assert "tainted" in row["cls"]
    assert "reverted by HAND" in row["text"]
    position = data["breaks"][0]["position"]
    for step in _query(browser, "tr[id^='step-']"):
        assert ("tainted" in step["cls"]) is (int(step["id"].removeprefix("step-")) >= position)
    shutil.copy(page, artifacts() / "report-broken.html")
    _save(browser, "report-broken.png")
