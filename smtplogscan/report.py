"""Render an analysis, or a list of events, as text, JSON, CSV or HTML.

Log values are chosen by strangers (a HELO name is whatever the peer sends), so
every renderer cleans what it prints: control characters and ANSI escapes never
reach a terminal, HTML is escaped by jinja2's autoescape, and a CSV cell that a
spreadsheet would run as a formula is quoted with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smtplogscan.frame import EVENT_FIELDS, event_row
from smtplogscan.records import Event

if TYPE_CHECKING:
    import jinja2

    from smtplogscan.analysis import Analysis

WIDTH = 100
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean(value: object) -> str:
    """Return `value` as text with escape sequences and control characters removed."""
    text = "" if value is None else str(value)
    return _CONTROL.sub("", text)


def csv_cell(value: object) -> str:
    """Return a CSV cell that no spreadsheet will evaluate as a formula."""
    text = "" if value is None else str(value)
    # The csv module quotes a cell only for the characters of its line
    # terminator ("\n"), while spreadsheets also end a row at a bare CR: a CR
    # left unquoted would start a row, and a formula, of the log's choosing.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _cell(value: object, width: int, right: bool = False) -> str:
    text = clean(value)
    if len(text) > width:
        text = text[: max(width - 1, 0)] + "…"
    return text.rjust(width) if right else text.ljust(width)


def _peer_label(peer: dict[str, Any], width: int) -> str:
    """``name [addr]`` in `width` columns, shortening the name, never the address."""
    name, addr = clean(peer.get("peer_name")), clean(peer.get("peer_addr") or "")
    if not addr or addr == name:
        return _cell(name, width)
    tail = f" [{addr}]"
    room = width - len(tail)
    if room < 4:
        return _cell(addr, width)
    if len(name) <= room:
        return _cell(name + tail, width)
    return _cell(name, room) + tail


def _wrap(value: object, indent: int = 4, width: int = WIDTH) -> str:
    pad = " " * indent
    return textwrap.fill(
        clean(value),
        width=width,
        initial_indent=pad,
        subsequent_indent=pad,
        break_long_words=True,
        break_on_hyphens=False,
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _pairs(counts: dict[str, int], limit: int = 3) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{n} {k}" if n > 1 else k for k, n in items[:limit])
    return text + (", …" if len(items) > limit else "")


def _bar(value: int, largest: int, width: int = 30) -> str:
    """Draw `value` as a bar of ``#``, the largest value filling `width`."""
    if value <= 0 or largest <= 0:
        return ""
    return "#" * max(1, round(value / largest * width))


def _share(part: int, whole: int) -> str:
    # Capped: a grammar may log a TLS outcome without a delivery line for it.
    return f"{min(part / whole, 1.0):.0%}" if whole else "-"


def _stamp(iso: str, bucket: str = "hour") -> str:
    """Shorten an ISO 8601 bucket start to ``YYYY-MM-DD HH:MM`` or the date."""
    return iso[:10] if bucket == "day" else iso[:16].replace("T", " ")


def environment(
    template_dir: Path | None = None, html: bool = False
) -> jinja2.Environment:
    """Build the jinja2 environment; templates in `template_dir` override ours."""
    # Imported here: the JSON and CSV reports need no templates.
    import jinja2
    from markupsafe import Markup

    def clean_markup(value: object) -> object:
        # Markup was built by a template or filter and is trusted; log text is not.
        return value if isinstance(value, Markup) else clean(value)

    loaders: list[jinja2.BaseLoader] = []
    if template_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(template_dir)))
    loaders.append(jinja2.PackageLoader("smtplogscan", "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=html,
        finalize=clean_markup if html else clean,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        peer_label=_peer_label,
        cell=_cell,
        wrap=_wrap,
        percent=_percent,
        pairs=_pairs,
        clean=clean,
    )
    env.filters.update(bar=_bar, share=_share, stamp=_stamp)
    return env


def render_text(
    analysis: Analysis, examples: Sequence[str] = (), template_dir: Path | None = None
) -> str:
    """Render the report a postmaster reads top to bottom in a terminal."""
    template = environment(template_dir).get_template("report.txt.j2")
    return template.render(a=analysis, examples=examples, width=WIDTH)


def render_json(analysis: Analysis, examples: Sequence[str] = ()) -> str:
    """Render the report as the public JSON object."""
    body = analysis.to_json()
    body["unmatched_examples"] = list(examples)
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


PEER_COLUMNS = (
    "peer_addr",
    "peer_name",
    "direction",
    "mta",
    "failures",
    "successes",
    "failure_rate",
    "kinds",
    "outcomes",
    "first_seen",
    "last_seen",
    "culprit",
    "cause",
    "advice",
)


def render_csv(analysis: Analysis) -> str:
    """Render the per-peer table as CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PEER_COLUMNS)
    for peer in analysis.peers:
        row = []
        for column in PEER_COLUMNS:
            value = peer[column]
            if isinstance(value, dict):
                value = ";".join(f"{k}={v}" for k, v in value.items())
            row.append(csv_cell(value))
        writer.writerow(row)
    return out.getvalue()


def iter_event_lines(
    events: Iterable[Event], fmt: str, utc: bool = False
) -> Iterable[str]:
    """Yield events one line each, as JSON Lines or CSV (with a header first)."""
    if fmt == "jsonl":
        for event in events:
            yield json.dumps(event_row(event, utc), ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EVENT_FIELDS)
    for event in events:
        row = event_row(event, utc)
        writer.writerow([csv_cell(row[f]) for f in EVENT_FIELDS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # no event at all: the header alone still says what it is
        yield buffer.getvalue()


#: The HTML report lists this many peers; the CSV and JSON reports list all.
HTML_PEERS = 200


def render_html(
    analysis: Analysis,
    examples: Sequence[str] = (),
    template_dir: Path | None = None,
    events: Sequence[Event] = (),
) -> str:
    """Render the report as one self-contained HTML page.

    The timeline comes from `analysis.timeline` when the analysis has one, else
    it is counted from `events`.
    """
    from smtplogscan import __version__, charts

    template = environment(template_dir, html=True).get_template("report.html.j2")
    return template.render(
        a=analysis,
        examples=examples,
        data=analysis.to_json(),
        charts=charts.build(analysis, events),
        colour=charts.colour,
        limit=HTML_PEERS,
        version=__version__,
    )
