"""Small HTML builders for the report: every value escaped, long ones never clipped.

Every text that comes from the log goes through :func:`text` (or a builder that calls it),
so a unit id or an error message holding markup shows as written and runs nothing. Long
values are shortened on screen with the full value one click (``<details>``) or one hover
(``title``) away, and printed whole: the ``print-only`` copy is what paper shows.
"""

from __future__ import annotations

import re
from datetime import UTC
from html import escape

from .humanize import compress_number_lists, human_time, parse_time, shorten

__all__ = [
    "badge",
    "css_token",
    "expandable",
    "facts",
    "identifier",
    "table",
    "text",
    "time_tag",
]

_TOKEN = re.compile(r"[^A-Za-z0-9_-]+")


def text(value: object) -> str:
    """``value`` escaped for HTML text and double-quoted attributes alike."""
    return escape(str(value), quote=True)


def css_token(value: str) -> str:
    """``value`` made safe as (part of) a class name or an id."""
    return _TOKEN.sub("-", value) or "none"


def time_tag(iso: str) -> str:
    """An ISO time shown as ``2026-11-27 10:30:15 UTC``; to the millisecond in ``datetime``
    (HTML allows no finer), to the microsecond in the tooltip."""
    exact = parse_time(iso)
    if exact is None:
        return ""
    machine = exact.astimezone(UTC).isoformat(timespec="milliseconds")
    return (f'<time datetime="{text(machine)}" title="{text(iso)}">'
            f"{text(human_time(exact))}</time>")


def identifier(value: str, keep: int = 12) -> str:
    """A hash, checksum or trace id: its first ``keep`` characters on screen (the whole in
    the tooltip), the whole on paper."""
    if len(value) <= keep + 2:
        return f'<code class="id">{text(value)}</code>'
    return (f'<code class="id screen-only" title="{text(value)}">{text(value[:keep])}'
            f"\u2026</code><code class=\"id print-only\">{text(value)}</code>")


def expandable(value: str, limit: int = 160, css: str = "", summary: str = "") -> str:
    """A long text (an error, parameters): its start (or ``summary``) on screen, the whole
    behind a ``<details>`` toggle and on paper. Long lists of numbers are folded into ranges
    first, so an error quoting 100 accepted status codes reads in one line."""
    full = compress_number_lists(value)
    if len(full) <= limit and "\n" not in full and not summary:
        return f'<span class="{text(css)}">{text(full)}</span>' if css else text(full)
    short = summary or shorten(full.splitlines()[0], limit)
    classes = f" {text(css)}" if css else ""
    return (f'<details class="more screen-only{classes}"><summary>{text(short)}</summary>'
            f"<pre>{text(full)}</pre></details>"
            f'<pre class="print-only{classes}">{text(full)}</pre>')


def badge(label: str, kind: str) -> str:
    """A status word in a coloured box; the word itself carries the meaning in print."""
    return f'<span class="badge {text(kind)}">{text(label)}</span>'


def facts(pairs: list[tuple[str, str]]) -> str:
    """A two-column list of facts: names, and values already in HTML; empty ones left out."""
    items = "".join(f"<dt>{text(name)}</dt><dd>{value}</dd>" for name, value in pairs if value)
    return f'<dl class="facts">{items}</dl>'


def table(head: list[str], rows: list[str], css: str = "") -> str:
    """A table with a header row; ``rows`` are complete ``<tr>`` elements."""
    cls = f' class="{text(css)}"' if css else ""
    heads = "".join(f'<th scope="col">{text(h)}</th>' for h in head)
    return (f"<table{cls}><thead><tr>{heads}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
