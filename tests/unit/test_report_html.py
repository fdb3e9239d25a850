"""The HTML compliance report: its structure on a known history, intact and tampered.

The history is written through the real Recorder into a local log and replayed, as the CLI
does: a run that applies two units, a change request whose http-request unit fails and is
compensated, a run killed mid-change, and a person's mark that settles the unit in doubt.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import html5lib
import pytest

from flamingock_es import __version__
from flamingock_es.adapters.local import LocalEventLog
from flamingock_es.api import replay
from flamingock_es.audit import ReplayReport, render
from flamingock_es.audit.report.html import to_html
from flamingock_es.audit.report.humanize import (
    compress_number_lists,
    duration,
    human_time,
    parse_time,
)
from flamingock_es.audit.report.steps import all_steps
from flamingock_es.audit.report.timeline import Scale
from flamingock_es.core.events import (
    Actor,
    ChangeFailed,
    ChangeStarted,
    ChangeSucceeded,
    CompensationStarted,
    CompensationSucceeded,
    ErrorInfo,
    LockAcquired,
    LockReleased,
    ManualMark,
    MarkedAs,
    RunFinished,
    RunOutcome,
    RunStarted,
    TraceContext,
)
from flamingock_es.core.ports import LogWriter
from flamingock_es.core.recorder import Recorder, RunIdentity
from flamingock_es.core.state import State

ANA = Actor(principal="ana", host="laptop-7", pid=1, tool_version=__version__)
BOT = Actor(principal="deploy-bot", host="runner-2", pid=2, tool_version=__version__)
TRACE = TraceContext(traceparent="00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")
ACCEPTED = list(range(200, 300))
HTTP_ERROR = ErrorInfo(type="HttpRequestFailed", message=(
    f"PUT http://flags.internal/flags/new-checkout answered 503, expected one of {ACCEPTED}"))
PARAMS = ('{"method": "PUT", "url": "http://flags.internal/flags/new-checkout", '
          '"json": {"enabled": true}, "headers": {"Authorization": "<redacted>"}}')
MARK_REASON = "flag switched on by hand in the console, ticket OPS-42"
GENERATED = datetime(2026, 11, 27, 10, 30, 15, 123456, tzinfo=UTC)


class _Held:
    holder, lock, generation, lost = "t", "test", 1, False

    def check(self) -> None: ...
    def release(self) -> None: ...


class _Forging:
    """A writer that alters one record after it was sealed, as an editor of the file would."""

    def __init__(self, inner: LogWriter, victim: bytes, forged: bytes) -> None:
        assert len(victim) == len(forged)  # same length: only the hash can tell
        self._inner, self._victim, self._forged = inner, victim, forged
        self._done = False

    def append(self, records: Sequence[bytes],
               headers: Mapping[str, str] | None = None) -> list[int]:
        return self._inner.append([self._forge(r) for r in records], headers)

    def _forge(self, record: bytes) -> bytes:
        if self._done or self._victim not in record:
            return record
        self._done = True
        return record.replace(self._victim, self._forged)

    def close(self) -> None:
        self._inner.close()


def _started(unit_id: str, template: str | None = None, parameters: str = "{}") -> ChangeStarted:
    return ChangeStarted(unit_id=unit_id, stage="main", author="ana", checksum="9f" * 32,
                         template=template, parameters=parameters, attempt=1, reason="pending")


def _write_history(root: Path, unit3: str = "enable-checkout",
                   forge: tuple[bytes, bytes] | None = None) -> None:
    log = LocalEventLog(root / "shop" / "audit.log")
    writer: LogWriter = log.writer(_Held())
    if forge is not None:
        writer = _Forging(writer, *forge)
    state = State()

    def run(run_id: str, actor: Actor, request_id: str | None = None,
            trace: TraceContext | None = None) -> Recorder:
        return Recorder(writer, state, RunIdentity("shop", run_id, actor, request_id),
                        trace=lambda: trace)

    def lock(run_id: str) -> LockAcquired:
        return LockAcquired(holder=f"h:{run_id}", lock="file:x", generation=1)

    cli = run("r1-cli", ANA)
    cli.record(RunStarted(workflow="shop", trigger="cli", planned=("add-tier", "seed-docs")),
               lock("r1"))
    cli.record(_started("add-tier"))
    cli.record(ChangeSucceeded(unit_id="add-tier", checksum="9f" * 32, duration_ms=12.5))
    cli.record(_started("seed-docs"))
    cli.record(ChangeSucceeded(unit_id="seed-docs", checksum="9f" * 32, duration_ms=1520.0))
    cli.record(RunFinished(outcome=RunOutcome.SUCCEEDED, applied=("add-tier", "seed-docs")),
               LockReleased(holder="h:r1"))

    asked = run("r2-request", BOT, request_id="req-7", trace=TRACE)
    asked.record(RunStarted(workflow="shop", trigger="request", planned=(unit3,)), lock("r2"))
    asked.record(_started(unit3, "http-request", PARAMS))
    asked.record(ChangeFailed(unit_id=unit3, checksum="9f" * 32, duration_ms=48.0,
                              error=HTTP_ERROR))
    asked.record(CompensationStarted(unit_id=unit3, reason="its apply failed"))
    asked.record(CompensationSucceeded(unit_id=unit3, duration_ms=30.0))
    asked.record(RunFinished(outcome=RunOutcome.ROLLED_BACK, applied=(), error=HTTP_ERROR),
                 LockReleased(holder="h:r2"))

    killed = run("r3-killed", ANA)
    killed.record(RunStarted(workflow="shop", trigger="cli", planned=(unit3,)), lock("r3"))
    killed.record(_started(unit3, "http-request", PARAMS))  # then SIGKILL: no outcome

    marked = run("r4-mark", ANA)
    marked.record(RunStarted(workflow="shop", trigger="mark", planned=(unit3,)), lock("r4"))
    marked.record(ManualMark(unit_id=unit3, marked_as=MarkedAs.APPLIED, reason=MARK_REASON,
                             checksum="9f" * 32))
    marked.record(RunFinished(outcome=RunOutcome.SUCCEEDED, applied=()),
                  LockReleased(holder="h:r4"))
    writer.close()


def _report(root: Path, **history: object) -> ReplayReport:
    _write_history(root, **history)  # type: ignore[arg-type]
    report = replay(bus=f"local:{root}", namespace="shop")
    # Who asked and why come from authenticated requests, which the fold does not record
    # yet: set them as the fold will, to show how the page presents them.
    report.runs = [dataclasses.replace(r, requested_by="alice", request_reason="CHG-1234: "
                                       "new checkout for the winter sale")
                   if r.request_id else r for r in report.runs]
    return report


def _tree(page: str) -> ET.Element:
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    return parser.parse(page)  # strict: any HTML5 parse error raises


def _text(element: ET.Element | None) -> str:
    assert element is not None
    return " ".join(" ".join(element.itertext()).split())


def _by_id(tree: ET.Element, ident: str) -> ET.Element:
    found = tree.find(f".//*[@id='{ident}']")
    assert found is not None, ident
    return found


def _classes(element: ET.Element) -> set[str]:
    return set((element.get("class") or "").split())


@pytest.fixture
def report(tmp_path: Path) -> ReplayReport:
    return _report(tmp_path)


@pytest.fixture
def page(report: ReplayReport) -> ET.Element:
    return _tree(to_html(report, generated_at=GENERATED))


# The page as a whole -------------------------------------------------------------------------


def test_valid_self_contained_html5(report: ReplayReport) -> None:
    html = render(report, "html")
    tree = _tree(html)
    assert html.startswith("<!DOCTYPE html>")
    assert tree.get("lang") == "en"
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|@import|url\(", html)
    assert not re.search(r'href="(?!#)', html), "every link stays inside the page"
    ids = [e.get("id") for e in tree.iter() if e.get("id")]
    assert len(ids) == len(set(ids)), "ids are unique"
    targets = {e.get("href")[1:] for e in tree.iter("a") if e.get("href")}  # type: ignore[index]
    assert targets <= set(ids), f"links to nowhere: {targets - set(ids)}"


def test_header_and_footer_say_when_and_by_which_version(page: ET.Element) -> None:
    stamp = f"Generated 2026-11-27 10:30:15 UTC by flamingock-es {__version__}"
    assert stamp in _text(page.find(".//header"))
    assert stamp in _text(page.find(".//footer"))


def test_times_are_human_with_their_zone_and_durations_have_units(page: ET.Element) -> None:
    text = _text(page.find(".//main"))
    assert re.search(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\b", text)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{4,}", text), "no microseconds on the page"
    assert not re.search(r"\+00:00", text), "no raw ISO offsets on the page"
    assert "12.5 ms" in text
    assert "1.52 s" in text
    times = page.findall(".//time")
    assert times
    assert all(t.get("datetime", "").endswith("+00:00") for t in times)


# The verdict -------------------------------------------------------------------------------


def test_an_intact_chain_says_so_and_what_was_verified(report: ReplayReport,
                                                       page: ET.Element) -> None:
    banner = _by_id(page, "verdict")
    assert "ok" in _classes(banner)
    text = _text(banner)
    assert f"Chain intact: all {report.events} events verified" in text
    assert report.head_hash in text
    assert report.log in text
    assert f"{report.events} (sequence 0 to {report.events - 1})" in text
    assert re.search(r"Time range \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC to \d{4}-", text)
    assert not page.findall(".//*[@class='tainted']")


@pytest.fixture
def forged(tmp_path: Path) -> tuple[ReplayReport, ET.Element]:
    # The failed apply's error, edited after the fact: 503 becomes 502.
    report = _report(tmp_path, forge=(b"answered 503", b"answered 502"))
    return report, _tree(to_html(report, generated_at=GENERATED))


def test_a_break_is_a_red_banner_that_says_what_it_means(
        forged: tuple[ReplayReport, ET.Element]) -> None:
    report, page = forged
    (chain_break,) = report.breaks
    banner = _by_id(page, "verdict")
    assert "bad" in _classes(banner)
    text = _text(banner)
    assert "1 integrity finding" in text
    finding = _by_id(page, "finding-1")
    text = _text(finding)
    assert f"position {chain_break.position} (seq {chain_break.seq})" in text
    assert "hash mismatch" in text
    assert "altered after it was written" in text  # in words, not only the fold's reason
    assert "Nothing recorded at or after this point can be proven" in text


def test_rows_at_or_after_a_break_are_marked_and_linked_both_ways(
        forged: tuple[ReplayReport, ET.Element]) -> None:
    report, page = forged
    (chain_break,) = report.breaks
    for row in all_steps(report):
        tr = _by_id(page, f"step-{row.position}")
        tainted = row.position >= chain_break.position
        assert ("tainted" in _classes(tr)) is tainted, row
        links = [a.get("href") for a in tr.iter("a")]
        assert ("#finding-1" in links) is tainted
        assert ("unverified" in _text(tr)) is tainted
    runs = {r.run_id: r for r in report.runs}
    sections = {_text(s.find(".//h3")).removeprefix("Run "): s
                for s in page.iter("section") if "run" in _classes(s)}
    assert set(sections) == set(runs)
    assert ["tainted" in _classes(s) for s in sections.values()] == [False, True, True, True]
    marks = [a for a in page.iter("a") if "mark" in _classes(a)]
    assert [("tainted" in _classes(a), "UNVERIFIED" in (a.get("title") or "")) for a in marks] \
        == [(int(a.get("href", "")[6:]) >= chain_break.position,) * 2 for a in marks]
    finding_links = [a.get("href") for a in _by_id(page, "finding-1").iter("a")]
    first_step = min((r for r in all_steps(report) if r.position >= chain_break.position),
                     key=lambda r: r.position)
    assert finding_links == [f"#step-{first_step.position}", "#run-2"]


# Summary and runs ----------------------------------------------------------------------------


def test_summary_counts_units_runs_and_people(page: ET.Element) -> None:
    text = _text(page.find(".//div[@class='summary']"))
    assert "APPLIED 2 add-tier, seed-docs" in text
    assert "MANUAL_MARKED_AS_APPLIED 1 enable-checkout" in text
    assert "SUCCEEDED 2" in text
    assert "ROLLED_BACK 1" in text
    assert "incomplete (no outcome recorded: the process died or was cut off) 1" in text
    assert "ana@laptop-7 3 4" in text  # runs, steps (the interrupted one counts)
    assert "deploy-bot@runner-2 1 2" in text
    assert "alice 1" in text
    assert "3 run(s) were started directly" in text


def _section(page: ET.Element, run_id: str) -> ET.Element:
    return next(s for s in page.iter("section")
                if "run" in _classes(s) and run_id in _text(s.find(".//h3")))


def test_a_requested_run_shows_who_asked_and_why_apart_from_who_applied(
        page: ET.Element) -> None:
    section = _section(page, "r2-request")
    requested = section.find(".//div[@class='requested']")
    applied = section.find(".//div[@class='applied']")
    assert _text(requested).startswith("Requested by alice")
    assert "CHG-1234: new checkout for the winter sale" in _text(requested)
    assert "req-7" in _text(requested)
    assert _text(applied).startswith("Applied by deploy-bot@runner-2")
    assert "ab" * 16 in _text(section)  # the trace id, whole
    direct = _section(page, "r1-cli").find(".//div[@class='requested']")
    assert "no change request: started from the command line" in _text(direct)


def test_a_killed_run_is_incomplete_not_blank(page: ET.Element) -> None:
    section = _section(page, "r3-killed")
    header = _text(section.find(".//header"))
    assert "incomplete (no outcome recorded: the process died or was cut off)" in header
    assert "Finished never: no outcome recorded" in _text(section)
    (row,) = section.findall(".//tbody/tr")
    assert "STARTED" in _text(row)
    assert "In doubt started, no outcome recorded: the process died or was cut off" in _text(row)


def test_a_mark_shows_its_reason_as_a_reason(page: ET.Element) -> None:
    (row,) = _section(page, "r4-mark").findall(".//tbody/tr")
    text = _text(row)
    assert f"Reason {MARK_REASON}" in text
    assert "Error" not in text
    assert "MANUAL_MARKED_AS_APPLIED" in text


def test_a_long_list_of_status_codes_is_folded_and_long_values_are_kept_whole(
        report: ReplayReport) -> None:
    html = to_html(report, generated_at=GENERATED)
    assert "200, 201, 202" not in html
    assert "answered 503, expected one of [200\u2013299]" in html
    page = _tree(html)
    failed = next(tr for tr in page.iter("tr") if "FAILED" in _text(tr))
    details = failed.find(".//details")
    assert details is not None  # the parameters, one click away on screen ...
    assert "new checkout" not in _text(details.find("summary"))
    assert '"enabled": true' in _text(details)
    printed = [e for e in failed.iter() if "print-only" in _classes(e)]
    assert any('"enabled": true' in _text(e) for e in printed)  # ... and whole on paper
    checksum = failed.find(".//code[@title]")
    assert checksum is not None
    assert checksum.get("title") == "9f" * 32


def test_a_run_cut_by_the_time_range_keeps_its_steps_in_range_and_says_so(
        tmp_path: Path) -> None:
    _write_history(tmp_path)
    whole = replay(bus=f"local:{tmp_path}", namespace="shop")
    failed = next(r for r in whole.changes if r.status == "FAILED")
    report = replay(bus=f"local:{tmp_path}", namespace="shop", since=parse_time(failed.time))
    assert "r2-request" not in [r.run_id for r in report.runs]  # it started before
    page = _tree(to_html(report, generated_at=GENERATED))
    section = _section(page, "r2-request")
    assert "started before the selected range" in _text(section.find(".//header"))
    assert "ROLLED_BACK" in _text(section.find(".//header"))  # its outcome, from the log
    assert [tr.get("id") for tr in section.findall(".//tbody/tr")] == [
        f"step-{r.position}" for r in report.changes if r.run_id == "r2-request"]
    assert "Rows shown from" in _text(_by_id(page, "verdict"))
    assert "r1-cli" not in _text(page.find(".//main"))


# The timeline --------------------------------------------------------------------------------


def test_the_timeline_has_a_lane_per_unit_an_axis_and_a_legend(report: ReplayReport,
                                                               page: ET.Element) -> None:
    timeline = page.find(".//div[@class='timeline']")
    assert timeline is not None
    lanes = [_text(u) for u in timeline.findall("div[@class='unit']")]
    assert [lane.split()[0] for lane in lanes] == ["add-tier", "seed-docs", "enable-checkout"]
    steps = all_steps(report)  # the replay's rows and the killed run's interrupted step
    assert len(steps) == len(report.changes) + 1
    marks = timeline.findall(".//a")
    assert len(marks) == len(steps)
    assert {m.get("href") for m in marks} == {f"#step-{r.position}" for r in steps}
    assert all(m.get("title") for m in marks)
    assert timeline.findall(".//div[@class='axis']//span[@class='tick']")
    legend = _text(page.find(".//ul[@class='legend']"))
    for status in ("APPLIED", "FAILED", "ROLLED_BACK", "ROLLBACK_FAILED", "STARTED",
                   "MANUAL_MARKED_AS_APPLIED", "MANUAL_MARKED_AS_ROLLED_BACK"):
        assert status in legend


def test_axis_ticks_are_round_times_inside_the_range() -> None:
    start = datetime(2026, 11, 27, 10, 30, 15, 400000, tzinfo=UTC)
    scale = Scale(start, start + timedelta(minutes=4))
    ticks = scale.ticks()
    assert 2 <= len(ticks) <= 7
    assert all(scale.start <= t <= scale.end for t in ticks)
    assert [scale.label(t) for t in ticks[:2]] == ["10:31:00", "10:32:00"]
    assert scale.caption() == "UTC, 2026-11-27"
    months = Scale(start, start + timedelta(days=90))
    assert all(t.time() == time(0) for t in months.ticks())  # whole days
    assert months.label(months.ticks()[0]) == "2026-12-03"
    assert months.caption() == "UTC"


# Escaping and print ---------------------------------------------------------------------------


def test_markup_in_the_log_is_shown_never_run(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    report = _report(tmp_path, unit3=evil)
    html = render(report, "html")
    assert "<script" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert evil in _text(_tree(html).find(".//main"))


def test_print_rules_keep_everything_readable_on_paper(report: ReplayReport) -> None:
    html = to_html(report)
    print_css = html[html.index("@media print"):]
    assert "#runs,.run+.run{break-before:page}" in print_css
    assert ".print-only{display:revert!important}" in print_css
    assert ".screen-only{display:none!important}" in print_css or \
        "nav,.screen-only{display:none!important}" in print_css
    # Every status letter is written in its mark, so black and white still tells them apart.
    page = _tree(html)
    marks = [m for m in page.iter("a") if "mark" in _classes(m)]
    assert marks, "the timeline has its marks"
    assert all((m.text or "").strip() for m in marks)


# Values as a person reads them ------------------------------------------------------------------


@pytest.mark.parametrize(("ms", "shown"), [
    (None, ""), (0.25, "0.25 ms"), (12.5, "12.5 ms"), (480.4, "480 ms"), (1520.0, "1.52 s"),
    (185_000.0, "3 min 5 s"), (7_440_000.0, "2 h 4 min")])
def test_durations(ms: float | None, shown: str) -> None:
    assert duration(ms) == shown


def test_human_time_is_utc_to_the_second() -> None:
    assert human_time("2026-11-27T11:30:15.999999+01:00") == "2026-11-27 10:30:15 UTC"
    assert human_time("") == ""


def test_number_lists_fold_into_ranges_and_short_ones_stay() -> None:
    assert compress_number_lists(str(ACCEPTED)) == "[200\u2013299]"
    assert compress_number_lists("[200, 201, 202, 204, 300]") == "[200\u2013202, 204, 300]"
    assert compress_number_lists("expected one of [200, 201]") == "expected one of [200, 201]"
    assert compress_number_lists("(1, 2, 3, 4)") == "(1\u20134)"
