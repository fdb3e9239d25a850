"""The report's look: status colours (with a letter each, for black-and-white paper) and CSS.

One palette serves the badges, the timeline marks and the legend, so a colour means the same
everywhere; the CSS rules for it are generated from the palette, not written twice.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OUTCOMES", "PALETTE", "STATUSES", "Tone", "stylesheet"]


@dataclass(frozen=True)
class Tone:
    """How one status looks: fill, text colour on it, a letter for paper, what it means."""

    fill: str
    ink: str
    letter: str
    meaning: str


STATUSES: dict[str, Tone] = {
    "APPLIED": Tone("#2e7d32", "#fff", "A", "applied"),
    "MANUAL_MARKED_AS_APPLIED": Tone("#a5d6a7", "#111", "MA", "marked applied by a person"),
    "FAILED": Tone("#c62828", "#fff", "F", "apply failed"),
    "ROLLED_BACK": Tone("#ef6c00", "#fff", "R", "compensated (rolled back)"),
    "MANUAL_MARKED_AS_ROLLED_BACK": Tone("#ffcc80", "#111", "MR",
                                         "marked rolled back by a person"),
    "ROLLBACK_FAILED": Tone("#6a1b9a", "#fff", "RF", "compensation failed"),
    "STARTED": Tone("#757575", "#fff", "?", "in doubt: started, no outcome"),
}
"""Unit statuses, in Flamingock's vocabulary."""

OUTCOMES: dict[str, Tone] = {
    "SUCCEEDED": Tone("#2e7d32", "#fff", "", "applied everything it planned"),
    "FAILED": Tone("#c62828", "#fff", "", "failed, leaving partial state"),
    "ROLLED_BACK": Tone("#ef6c00", "#fff", "", "failed, and compensated what it applied"),
    "PARTIAL": Tone("#f9a825", "#111", "", "a unit failed; only what required it was skipped, "
                    "the rest applied (on_failure: isolate)"),
    "LOCK_LOST": Tone("#6a1b9a", "#fff", "", "lost the lock and stopped"),
    "STOPPED": Tone("#0277bd", "#fff", "", "stopped on request between units; nothing in "
                    "doubt, the rest is pending"),
    "REJECTED": Tone("#546e7a", "#fff", "", "refused a change request"),
    "INCOMPLETE": Tone("#fff", "#111", "", "no outcome recorded: the process died or was cut off"),
}
"""Run outcomes, plus ``INCOMPLETE`` for a run whose log ends without one."""

PALETTE = """
:root{--ink:#1d2430;--muted:#5b6472;--line:#d9dee5;--soft:#f5f7fa;--ok:#2e7d32;--bad:#c62828;
--req:#7b1fa2;--app:#1565c0}"""
"""The colours the report and the dashboard name (ink, lines, ok, bad, requested, applied):
one definition, so the two read alike."""

_BASE = PALETTE + """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);
margin:0 auto;padding:24px 32px 40px;max-width:1280px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:32px 0 10px;padding-bottom:4px;
border-bottom:2px solid var(--line)}h3{font-size:16px;margin:0}
a{color:var(--app)}
code,pre,.mono{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
code.id{overflow-wrap:anywhere}code.id.screen-only{white-space:nowrap}
.wrap{overflow-wrap:break-word}td{overflow-wrap:break-word}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0 0}
.muted{color:var(--muted)}
.meta{color:var(--muted);margin:0 0 16px}
nav{margin:8px 0 0;font-size:13px}nav a{margin-right:14px}
table{border-collapse:collapse;width:100%;margin:6px 0 0}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;font-size:12px;color:var(--muted);
text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;white-space:nowrap}
td.when{white-space:nowrap}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;font-weight:600;
border:1px solid transparent;white-space:nowrap}
.badge.incomplete{white-space:normal}
.badge.plain{background:var(--soft);border-color:var(--line);color:var(--ink)}
details.more summary{cursor:pointer}
details.more[open] summary{color:var(--muted)}
.print-only{display:none}
"""

_BANNER = """
.banner{border:2px solid;border-left-width:10px;border-radius:6px;padding:14px 18px;
margin:16px 0 8px}
.banner.ok{border-color:var(--ok);background:#edf7ee}
.banner.bad{border-color:var(--bad);background:#fdecec}
.banner .verdict{font-size:22px;font-weight:700;margin:0 0 8px}
.banner.ok .verdict{color:var(--ok)}.banner.bad .verdict{color:var(--bad)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:0}
.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
.findings{margin:12px 0 0;padding-left:22px}.findings li{margin:0 0 10px}
.findings .what{font-weight:600}
"""

_SUMMARY = """
.summary{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
.summary section{border:1px solid var(--line);border-radius:6px;padding:10px 12px}
.summary h3{font-size:14px;margin:0 0 4px}
"""

_RUNS = """
.run{border:1px solid var(--line);border-radius:8px;margin:0 0 18px;padding:14px 16px}
.run>header{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:0 0 10px}
.run>header h3{font-size:16px}
.who{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:10px;
margin:0 0 10px}
.who>div{border-left:5px solid;padding:6px 10px;background:var(--soft);border-radius:0 4px 4px 0}
.who .requested{border-color:var(--req)}.who .applied{border-color:var(--app)}
.who .role{font-size:11px;text-transform:uppercase;letter-spacing:.06em;font-weight:700}
.who .requested .role{color:var(--req)}.who .applied .role{color:var(--app)}
.who .name{font-weight:600;font-size:15px}
.run .facts{margin:0 0 8px}
.error{color:var(--bad)}
.reason{font-style:italic}
.label{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
margin-right:4px}
.run.tainted,tr.tainted>td{background:#fff4f4}
tr.tainted>td:first-child{box-shadow:inset 4px 0 0 var(--bad)}
.run.tainted{border-color:var(--bad);border-left-width:6px}
.unverified{color:var(--bad);font-weight:700;font-size:12px;white-space:nowrap}
.incomplete{border:1px dashed #555;color:#111}
tr:target>td,.run:target{outline:2px solid var(--app);outline-offset:-2px}
"""

_TIMELINE = """
.lanes{margin:8px 0 12px}
.lanes .lane{position:relative;height:24px;margin:3px 0;min-height:24px}
.lanes .bar{position:absolute;top:2px;height:20px;border-radius:4px;overflow:hidden;
white-space:nowrap;font:600 11px/20px system-ui,sans-serif;padding:0 4px;
border:1px solid rgba(0,0,0,.35);box-sizing:border-box}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:0 0 12px;padding:0;list-style:none;
font-size:12px}
.legend li{display:flex;align-items:center;gap:6px}
.timeline{display:grid;grid-template-columns:minmax(8em,16em) 1fr;column-gap:12px}
.timeline .unit{padding:4px 0;border-bottom:1px solid var(--line)}
.lane{position:relative;border-bottom:1px solid var(--line);background:var(--soft);
min-height:30px}
.track{position:absolute;top:0;bottom:0;left:0;right:2.8em}
.grid{position:absolute;top:0;bottom:0;border-left:1px dashed #c9ced6}
.mark{position:absolute;height:20px;min-width:2.4em;padding:0 2px;border-radius:4px;
font:700 10px/20px system-ui,sans-serif;
text-align:center;text-decoration:none;overflow:hidden;border:1px solid rgba(0,0,0,.35)}
.mark:hover,.mark:focus{outline:2px solid var(--ink);z-index:2}
.mark.tainted{outline:2px dashed var(--bad);outline-offset:1px}
.swatch{display:inline-block;min-width:2.2em;height:18px;border-radius:4px;text-align:center;
font:700 10px/18px system-ui,sans-serif;border:1px solid rgba(0,0,0,.35)}
.axis{position:relative;height:34px;border-top:1px solid #8a93a0}
.tick{position:absolute;top:0;transform:translateX(-50%);font-size:11px;color:var(--muted);
white-space:nowrap;padding-top:6px}
.tick::before{content:"";position:absolute;top:0;left:50%;height:5px;border-left:1px solid
#8a93a0}
.tick.end{transform:translateX(-100%)}.tick.end::before{left:100%}
.tick.start{transform:none}.tick.start::before{left:0}
.axis-caption{font-size:11px;color:var(--muted);padding-top:6px}
"""

_PRINT = """
@media print{
@page{margin:14mm}
body{font-size:10pt;padding:0;max-width:none}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
nav,.screen-only{display:none!important}
.print-only{display:revert!important}
a{color:inherit;text-decoration:none}
h2{break-after:avoid}
.banner,.summary section,tr,.legend,.who{break-inside:avoid}
#runs,.run+.run{break-before:page}
.run{border-color:#000}
table{font-size:9pt}td.when{white-space:normal}
.summary{grid-template-columns:1fr 1fr}
.run.tainted{border-style:double}
.run:target,tr:target>td{outline:none}
th{background:#eee;color:#000}
.muted,.meta,.facts dt,.label{color:#333}
.error{color:#000;font-weight:600}
tr.tainted>td:first-child{box-shadow:inset 4px 0 0 #000}
.mark.tainted{outline-color:#000}
td.checksum{width:24ch}td.checksum code{font-size:8pt}
}
"""


def _tone_rules(prefix: str, tones: dict[str, Tone]) -> str:
    return "\n".join(f".{prefix}-{name}{{background:{tone.fill};color:{tone.ink}}}"
                     for name, tone in tones.items())


def stylesheet() -> str:
    """The page's whole CSS: layout, palette, and the print rules last (they win)."""
    return "".join([_BASE, _tone_rules("s", STATUSES), "\n", _tone_rules("o", OUTCOMES),
                    _BANNER, _SUMMARY, _RUNS, _TIMELINE, _PRINT])
