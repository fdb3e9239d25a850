"""The dashboard's page: a static HTML shell, its stylesheet and its script.

The HTML holds no data at all: the script fetches ``/api/overview`` (and a tenant's
``/api/tenants/ID``) every few seconds and builds the DOM with ``textContent`` only, so no
value from the log is ever parsed as HTML. The colours are the compliance report's palette
(:mod:`flamingock_es.audit.report.style`), so a colour means the same on the page and in a
report; the few states only a live page has (pending, running, up to date, blocked) are added
here.
"""

from __future__ import annotations

from importlib.resources import files

from ..audit.report.style import OUTCOMES, PALETTE, STATUSES, Tone

__all__ = ["LEGEND", "PAGE", "SCRIPT", "stylesheet"]

_LIVE_STATUSES = {
    "PENDING": Tone("#fff", "#1d2430", "", "not run yet"),
    "NOT_STARTED": Tone("#eceff1", "#37474f", "", "planned, not started (the run stopped)"),
}
_LIVE_OUTCOMES = {
    "RUNNING": Tone("#1565c0", "#fff", "", "running"),
    "FINISHED": Tone("#2e7d32", "#fff", "", "finished"),
    "UP_TO_DATE": Tone("#a5d6a7", "#111", "", "nothing to apply: already up to date"),
    "BLOCKED": Tone("#6a1b9a", "#fff", "", "blocked: a person decides first"),
    "PENDING": Tone("#fff", "#1d2430", "", "no result yet"),
}
_CELLS = {**STATUSES, **_LIVE_STATUSES}
_RESULTS = {**OUTCOMES, **_LIVE_OUTCOMES}

LEGEND = [{"status": name, "meaning": tone.meaning} for name, tone in _CELLS.items()]
"""The grid's colours and what each means, in the page's order."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flamingock-es dashboard</title>
<link rel="stylesheet" href="dashboard.css">
<script src="dashboard.js" defer></script>
</head>
<body data-poll-ms="{poll_ms}">
<header><h1>flamingock-es <span id="workflow" class="muted"></span></h1>
<p class="meta">Read-only, from the projection store. <span id="updated"></span>
<span id="live" class="live" hidden>live</span></p></header>
<div id="notices"></div>
<section id="rollouts"><h2>Rollouts</h2><div id="rollout-list"></div></section>
<section id="grid-section"><h2>Tenants &times; units</h2><ul id="legend" class="legend"></ul>
<div class="scroll"><table id="grid"></table></div></section>
<section id="tenant" hidden><h2 id="tenant-title"></h2><div id="tenant-body"></div></section>
</body>
</html>
"""
"""The page; ``{poll_ms}`` is how often it refreshes."""

_CSS = PALETTE + """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);
margin:0 auto;padding:20px 28px 40px;max-width:1400px;background:#fff}
h1{font-size:24px;margin:0 0 2px}h2{font-size:18px;margin:26px 0 10px;padding-bottom:4px;
border-bottom:2px solid var(--line)}h3{font-size:15px;margin:0}
code,.mono{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.muted{color:var(--muted)}.meta{color:var(--muted);margin:0 0 8px}
.live{background:var(--app);color:#fff;border-radius:8px;padding:0 8px;font-size:12px}
.notice{border:2px solid #f9a825;background:#fff8e1;border-radius:6px;padding:8px 12px;
margin:8px 0}.notice code{background:#fff;padding:1px 4px;border-radius:3px}
.notice.stale{border-color:var(--bad);background:#fdecec}
table{border-collapse:collapse;margin:6px 0 0}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;font-size:12px;color:var(--muted)}
.scroll{overflow-x:auto}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;font-weight:600;
border:1px solid rgba(0,0,0,.2);white-space:nowrap}
.rollout{border:1px solid var(--line);border-radius:8px;padding:10px 14px;margin:0 0 12px}
.rollout header{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.rollout .why{font-style:italic}
.waves td,.waves th{font-size:13px}
.budget.over{color:var(--bad);font-weight:700}
#grid td.cell{min-width:7em;text-align:center;font-size:12px;font-weight:600;
border:1px solid #fff}
#grid td.cell.running{background:var(--app);color:#fff;outline:2px dashed #fff;
outline-offset:-4px}
#grid th.tenant{cursor:pointer;color:var(--app);text-decoration:underline;white-space:nowrap}
#grid tr.selected th.tenant{background:#e3f2fd}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:0 0 6px;padding:0;list-style:none;
font-size:12px}
.legend li{display:flex;align-items:center;gap:5px}
.swatch{display:inline-block;width:1.6em;height:14px;border-radius:3px;
border:1px solid rgba(0,0,0,.3)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0 10px}
.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
.ok{color:var(--ok);font-weight:600}.bad{color:var(--bad);font-weight:600}
.requested{color:var(--req)}.applied{color:var(--app)}
.error{color:var(--bad)}
#tenant-body h3{margin:18px 0 4px}
#tenant-body table{width:100%}#tenant-body th{white-space:nowrap}
#tenant-body td:first-child code,#tenant-body td:last-child code{white-space:nowrap}
code.params{overflow-wrap:anywhere}
.legend b{font-weight:600}
"""


def _tones(prefix: str, tones: dict[str, Tone]) -> str:
    return "\n".join(f".{prefix}-{name}{{background:{tone.fill};color:{tone.ink}}}"
                     for name, tone in tones.items())


def stylesheet() -> str:
    """The page's CSS: layout, then the cell (``s-``) and result (``o-``) colours."""
    return "\n".join([_CSS, _tones("s", _CELLS), _tones("o", _RESULTS),
                      ".s-PENDING,.o-PENDING{border:1px dashed #8a93a0}"])


SCRIPT = files(__package__).joinpath("dashboard.js").read_text(encoding="utf-8")
"""The page's script (``dashboard.js``, package data): polls the JSON API, builds the DOM
with ``textContent`` only."""
