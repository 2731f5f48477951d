"""Report figures -> the rows of bar charts that HTML templates lay out.

Mail clients block scripts and often SVG, so a chart is a table of bars whose
widths are percentages computed here; a template only places them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from smtplogscan.records import Event

#: Up to this span of data the timeline has one bar per hour, beyond it per day.
HOURLY_SPAN = timedelta(hours=48)
#: Longer runs of buckets show only the buckets with failures, not every gap.
MAX_BUCKETS = 96
#: The timeline stacks this many kinds by name; the rest share one colour.
TOP_KINDS = 8
#: A spike lists this many of the peers or kinds that changed.
SPIKE_NAMES = 5
MORE_KINDS = "more kinds"

# One colour per kind, the same in every chart and mail. Hues group the kinds:
# reds for weak keys and protocols, blues for certificates, greys for the rest.
KIND_COLOURS: dict[str, str] = {
    "dh_key_too_small": "#c0392b",
    "ee_key_too_small": "#e74c3c",
    "ca_key_too_small": "#d35400",
    "ca_md_too_weak": "#e67e22",
    "protocol_version": "#8e44ad",
    "not_tls": "#9b59b6",
    "no_shared_cipher": "#b03a6f",
    "handshake_alert": "#f39c12",
    "cert_untrusted": "#2471a3",
    "cert_expired": "#5dade2",
    "cert_name_mismatch": "#1abc9c",
    "starttls_unavailable": "#16a085",
    "tls_required_by_peer": "#27ae60",
    "connection_lost": "#7f8c8d",
    "local_setup": "#2c3e50",
    "other": "#a6acaf",
}
MORE_COLOUR = "#d5d8dc"
SUCCESS_COLOUR = "#58d68d"


@dataclass(slots=True)
class Segment:
    """One coloured part of a stacked bar."""

    name: str
    count: int
    width: str  # a CSS percentage of the whole chart's width
    colour: str


@dataclass(slots=True)
class Bar:
    """One row of a chart: a label, its total and the segments that make it up."""

    label: str
    total: int
    segments: list[Segment] = field(default_factory=list)
    note: str = ""  # shown beside the bar, e.g. a failure rate


@dataclass(slots=True)
class Chart:
    """The bars of one chart and the legend of its colours."""

    title: str
    bars: list[Bar]
    legend: list[Segment] = field(default_factory=list)
    note: str = ""


def _width(count: int, largest: int) -> str:
    return f"{100 * count / largest:.1f}%" if largest else "0%"


def colour(kind: str) -> str:
    """Return the colour that `kind` has in every chart."""
    return KIND_COLOURS.get(kind, MORE_COLOUR)


def _segments(parts: Mapping[str, int], largest: int) -> list[Segment]:
    return [
        Segment(name, count, _width(count, largest), colour(name))
        for name, count in parts.items()
        if count
    ]


def _floor(when: datetime, bucket: str) -> datetime:
    when = when.replace(minute=0, second=0, microsecond=0)
    return when.replace(hour=0) if bucket == "day" else when


def _zone(events: Sequence[Event]) -> tzinfo:
    # The first stamp's zone is the one the logs were read in (or UTC with --utc).
    for event in events:
        if event.time is not None and event.time.tzinfo is not None:
            return event.time.tzinfo
    return UTC


def _buckets(
    first: datetime, last: datetime, bucket: str, zone: tzinfo
) -> list[datetime]:
    """Every bucket start from `first` to `last`; stepping in UTC survives DST."""
    step = timedelta(hours=1)
    if last - first > MAX_BUCKETS * (step * 24 if bucket == "day" else step):
        return []
    starts: list[datetime] = []
    now = first.astimezone(UTC)
    while now <= last.astimezone(UTC) + step:
        start = _floor(now.astimezone(zone), bucket)
        if start <= last and (not starts or start != starts[-1]):
            starts.append(start)
        if len(starts) > MAX_BUCKETS:
            return []
        now += step
    return starts


def build_timeline(
    events: Sequence[Event], bucket: str | None = None
) -> dict[str, Any]:
    """Count failures per hour or day, by direction and kind, from the events."""
    zone = _zone(events)
    times = [e.time.astimezone(zone) for e in events if e.time is not None]
    if bucket is None:
        wide = bool(times) and max(times) - min(times) > HOURLY_SPAN
        bucket = "day" if wide else "hour"
    rows: dict[datetime, dict[str, Any]] = {}
    for event in events:
        if event.time is None:
            continue
        start = _floor(event.time.astimezone(zone), bucket)
        row = rows.setdefault(start, _empty_row(start))
        row["failures"] += 1
        if str(event.direction) in ("inbound", "outbound"):
            row[str(event.direction)] += 1
        row["kinds"][str(event.kind)] = row["kinds"].get(str(event.kind), 0) + 1

    starts = sorted(rows)
    if starts:
        full = _buckets(starts[0], starts[-1], bucket, zone)
        starts = full or starts
    return {
        "bucket": bucket,
        "zone": str(zone),
        "rows": [rows.get(s) or _empty_row(s) for s in starts],
        "spikes": [],
        "undated": sum(1 for e in events if e.time is None),
    }


def _empty_row(start: datetime) -> dict[str, Any]:
    return {
        "start": start.isoformat(),
        "failures": 0,
        "inbound": 0,
        "outbound": 0,
        "kinds": {},
    }


def timeline(analysis: object, events: Sequence[Event] = ()) -> dict[str, Any]:
    """Return the analysis's own timeline, or one built from `events`."""
    given = getattr(analysis, "timeline", None)
    if isinstance(given, Mapping) and given.get("rows") is not None:
        return dict(given)
    return build_timeline(events)


def _label(start: str, bucket: str, days: int) -> str:
    when = datetime.fromisoformat(start)
    if bucket == "day":
        return when.strftime("%a %Y-%m-%d")
    return when.strftime("%H:00") if days <= 1 else when.strftime("%m-%d %H:00")


def _top_kinds(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    total: Counter[str] = Counter()
    for row in rows:
        total.update({str(k): int(n) for k, n in (row.get("kinds") or {}).items()})
    return [kind for kind, _ in total.most_common(TOP_KINDS)]


def _fold(kinds: Mapping[str, int], top: Sequence[str]) -> dict[str, int]:
    """Keep the top kinds by name, in a fixed order, and add up the rest."""
    folded = {kind: int(kinds.get(kind, 0)) for kind in top}
    rest = sum(int(n) for k, n in kinds.items() if k not in top)
    if rest:
        folded[MORE_KINDS] = rest
    return folded


def _trim(
    rows: list[Mapping[str, Any]], bucket: str
) -> tuple[list[Mapping[str, Any]], str]:
    """Drop quiet buckets, then the oldest, when a timeline is too long to read."""
    if len(rows) <= MAX_BUCKETS:
        return rows, ""
    busy = [r for r in rows if int(r.get("failures") or 0)]
    note = f"{len(rows) - len(busy)} {bucket}(s) without failures are not shown."
    if len(busy) > MAX_BUCKETS:
        note += f" Only the last {MAX_BUCKETS} {bucket}s with failures are shown."
        busy = busy[-MAX_BUCKETS:]
    return busy, note


def timeline_chart(data: Mapping[str, Any]) -> Chart:
    """Stack each bucket's failures by kind, scaled to the busiest bucket."""
    bucket = str(data.get("bucket") or "hour")
    rows, trimmed = _trim(list(data.get("rows") or []), bucket)
    top = _top_kinds(rows)
    largest = max((int(r.get("failures") or 0) for r in rows), default=0)
    days = len({str(r["start"])[:10] for r in rows})
    bars = []
    for row in rows:
        failures = int(row.get("failures") or 0)
        kinds = _fold(row.get("kinds") or {}, top)
        bars.append(
            Bar(
                label=_label(str(row["start"]), bucket, days),
                total=failures,
                segments=_segments(kinds, largest),
                note=_directions(row),
            )
        )
    legend = [Segment(k, 0, "", colour(k)) for k in top]
    if any(_has_more(b) for b in bars):
        legend.append(Segment(MORE_KINDS, 0, "", MORE_COLOUR))
    title = f"Failures per {bucket} ({data.get('zone') or 'local time'})"
    undated = int(data.get("undated") or 0)
    if undated:
        trimmed += f" {undated} failure(s) without a time are not shown."
    return Chart(title, bars, legend, trimmed.strip())


def _has_more(bar: Bar) -> bool:
    return any(s.name == MORE_KINDS for s in bar.segments)


def _directions(row: Mapping[str, Any]) -> str:
    inbound, outbound = int(row.get("inbound") or 0), int(row.get("outbound") or 0)
    if not inbound and not outbound:
        return ""
    return f"{inbound} in, {outbound} out"


def peers_chart(peers: Sequence[Mapping[str, Any]], limit: int = 10) -> Chart:
    """Bar the peers with the most failures, stacked by kind."""
    shown = list(peers[:limit])
    largest = max((int(p["failures"]) for p in shown), default=0)
    bars = []
    for peer in shown:
        rate = peer.get("failure_rate")
        bars.append(
            Bar(
                label=peer_name(peer),
                total=int(peer["failures"]),
                segments=_segments(peer.get("kinds") or {}, largest),
                note="" if rate is None else f"{rate:.0%} failed",
            )
        )
    kinds = dict.fromkeys(s.name for b in bars for s in b.segments)
    legend = [Segment(k, 0, "", colour(k)) for k in kinds]
    title = f"Top {len(bars)} peers by failures" if len(peers) > limit else "Peers"
    return Chart(title, bars, legend)


def kinds_chart(kinds: Sequence[Mapping[str, Any]]) -> Chart:
    """Bar the failures of each kind."""
    largest = max((int(k["failures"]) for k in kinds), default=0)
    bars = [
        Bar(
            label=str(k["kind"]),
            total=int(k["failures"]),
            segments=_segments({str(k["kind"]): int(k["failures"])}, largest),
            note=f"{k['peers']} peer(s)",
        )
        for k in kinds
    ]
    return Chart("Failures by kind", bars)


def peer_name(peer: Mapping[str, Any]) -> str:
    """Return ``name [addr]``, or the one of them that is known."""
    name, addr = str(peer.get("peer_name") or ""), str(peer.get("peer_addr") or "")
    if not addr or addr == name:
        return name or addr
    return f"{name} [{addr}]"


def dates(data: Mapping[str, Any], totals: Mapping[str, Any]) -> tuple[str, str] | None:
    """Return the first and last day with failures, in the timeline's own zone."""
    rows = list(data.get("rows") or [])
    busy = [r for r in rows if int(r.get("failures") or 0)] or rows
    days = sorted(str(r["start"])[:10] for r in busy)
    if days:
        return days[0], days[-1]
    first, last = totals.get("first_seen"), totals.get("last_seen")
    if first and last:
        return str(first)[:10], str(last)[:10]
    return None


def build(analysis: Any, events: Sequence[Event] = ()) -> dict[str, Any]:
    """Return every chart of the HTML report, and the timeline's spikes."""
    data = timeline(analysis, events)
    spikes: list[Mapping[str, Any]] = list(data.get("spikes") or [])
    return {
        "timeline": timeline_chart(data),
        "peers": peers_chart(analysis.peers),
        "kinds": kinds_chart(analysis.kinds),
        "spikes": [spike(s, str(data.get("bucket") or "hour")) for s in spikes],
        "bucket": data.get("bucket") or "hour",
    }


def _names(values: Sequence[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:SPIKE_NAMES])
    more = len(values) - SPIKE_NAMES
    return f"{shown} and {more} more" if more > 0 else shown


def spike(given: Mapping[str, Any], bucket: str) -> dict[str, Any]:
    """Return a spike of the timeline as a heading and one line per change."""
    when = datetime.fromisoformat(str(given["start"]))
    label = when.strftime("%Y-%m-%d" if bucket == "day" else "%Y-%m-%d %H:00")
    changes = [
        f"{title}: {_names(given[key])}"
        for key, title in (
            ("new_peers", "new peers"),
            ("new_kinds", "new kinds"),
            ("stopped_succeeding", "stopped succeeding"),
        )
        if given.get(key)
    ]
    if given.get("note"):
        changes.append(str(given["note"]))
    return {
        "label": label,
        "metric": str(given.get("metric") or "failures"),
        "value": given.get("value"),
        "baseline": given.get("baseline"),
        "changes": changes,
    }
