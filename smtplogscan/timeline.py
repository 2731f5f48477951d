"""Failures, successes, deferrals and bounces per hour or day, and their spikes.

The timeline counts, per bucket, the TLS failures (by direction and kind), the
successful TLS sessions, every deferred and bounced delivery whatever its reason,
and those of them a TLS failure explains. Buckets are calendar hours or days in
the report's zone; empty buckets between the first and the last record are
present with zeros, so that a chart shows the quiet hours too.

A spike is a bucket whose failures, deferrals or bounces rise well above the
buckets before it (see `is_spike`); each spike says what changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta, tzinfo
from statistics import median
from typing import TYPE_CHECKING, Any, cast

from smtplogscan.timestamps import zone_name

if TYPE_CHECKING:
    import pandas as pd

#: Up to this span of records the buckets are hours, beyond it days.
HOURLY_SPAN = timedelta(days=3)
#: How many buckets before a bucket make its baseline.
PREVIOUS = {"hour": 24, "day": 7}
#: Fewer buckets before it than this, and a bucket is never called a spike.
MIN_PREVIOUS = 3
#: A spike is at least this many times the baseline ...
SPIKE_FACTOR = 3.0
#: ... at least this many median absolute deviations above it ...
SPIKE_MADS = 3.0
#: ... and at least this many.
SPIKE_MIN = 5
#: What a spike lists at most of each change.
SPIKE_LIST = 10
#: Below this share of TLS, a deferral or bounce spike is not TLS's doing.
TLS_EXPLAINS = 0.5

_FREQ = {"hour": "h", "day": "D"}
METRICS = ("failures", "deferred", "bounced")
_COLUMNS = (
    "failures",
    "inbound",
    "outbound",
    "successes",
    "deferred",
    "bounced",
    "tls_deferred",
    "tls_bounced",
)


def choose_bucket(span: timedelta) -> str:
    """Return ``hour`` for records spanning up to `HOURLY_SPAN`, else ``day``."""
    return "hour" if span <= HOURLY_SPAN else "day"


def build(
    events: pd.DataFrame,
    sessions: pd.DataFrame,
    deliveries: pd.DataFrame,
    zone: tzinfo,
    bucket: str | None = None,
) -> dict[str, Any]:
    """Return the public timeline: buckets, their counts and the spikes."""
    facts = _facts(events, sessions, deliveries)
    if facts.empty:
        return {
            "bucket": bucket or "hour",
            "zone": zone_name(zone),
            "rows": [],
            "spikes": [],
        }

    import pandas as pd

    local = pd.DatetimeIndex(facts.index).tz_convert(zone)
    facts.index = local
    if bucket is None:
        bucket = choose_bucket(local.max() - local.min())
    table = facts.resample(_FREQ[bucket]).sum()
    # One conversion to Python for the whole table: years of days are thousands.
    columns = [str(c) for c in table.columns]
    rows = [
        _row(start, dict(zip(columns, counts, strict=True)))
        for start, counts in zip(table.index, table.to_numpy().tolist(), strict=True)
    ]

    starts = pd.DatetimeIndex(table.index)
    marks = {
        "events": _positions(starts, events["when"], zone),
        "sessions": _positions(starts, sessions["when"], zone),
        "deliveries": _positions(starts, deliveries["when"], zone),
    }
    spikes = find_spikes(rows, PREVIOUS[bucket], events, sessions, deliveries, marks)
    return {"bucket": bucket, "zone": zone_name(zone), "rows": rows, "spikes": spikes}


def _facts(
    events: pd.DataFrame, sessions: pd.DataFrame, deliveries: pd.DataFrame
) -> pd.DataFrame:
    """One row per record (or counted group of them), indexed by UTC time."""
    import pandas as pd

    parts = []
    dated = events[events["when"].notna()]
    if len(dated):
        failed: dict[str, Any] = {
            "failures": 1,
            "inbound": _flags(dated["direction"] == "inbound"),
            "outbound": _flags(dated["direction"] == "outbound"),
            "tls_deferred": _flags(dated["outcome"] == "deferred"),
            "tls_bounced": _flags(dated["outcome"] == "bounced"),
        }
        for kind in sorted(set(dated["kind"])):
            failed["kind:" + str(kind)] = _flags(dated["kind"] == kind)
        parts.append(pd.DataFrame(failed, index=_utc(dated["when"])))
    dated = sessions[sessions["when"].notna()]
    if len(dated):
        ok = {"successes": dated["count"].to_numpy()}
        parts.append(pd.DataFrame(ok, index=_utc(dated["when"])))
    dated = deliveries[deliveries["when"].notna()]
    if len(dated):
        counts = dated["count"].to_numpy()
        sent = {
            status: counts * (dated["status"] == status).to_numpy()
            for status in ("deferred", "bounced")
        }
        parts.append(pd.DataFrame(sent, index=_utc(dated["when"])))
    if not parts:
        return pd.DataFrame()
    facts = pd.concat(parts).fillna(0)
    for column in _COLUMNS:
        if column not in facts:
            facts[column] = 0
    return facts.astype(int).sort_index()


def _flags(hits: pd.Series) -> Any:
    """Return a boolean Series as an array of 0 and 1."""
    return hits.to_numpy().astype(int)


def _utc(when: pd.Series) -> pd.DatetimeIndex:
    # Frames may come in different zones; concatenating them needs one.
    import pandas as pd

    return pd.DatetimeIndex(when).tz_convert("UTC")


def _row(start: Any, counts: dict[str, int]) -> dict[str, Any]:
    row: dict[str, Any] = {"start": start.isoformat()}
    for column in _COLUMNS[:3]:
        row[column] = int(counts[column])
    row["kinds"] = {
        name[5:]: int(n) for name, n in counts.items() if name.startswith("kind:") and n
    }
    for column in _COLUMNS[3:]:
        row[column] = int(counts[column])
    return row


def _positions(starts: pd.DatetimeIndex, when: pd.Series, zone: tzinfo) -> list[int]:
    """Return, for each time, the number of its bucket (-1 for none)."""
    local = when.dt.tz_convert(zone)
    found = starts.searchsorted(local, side="right") - 1
    return [int(f) if ok else -1 for f, ok in zip(found, when.notna(), strict=True)]


def is_spike(value: int, before: Sequence[int]) -> tuple[bool, float, float]:
    """Say whether `value` is a spike after the counts `before`.

    The rule: with at least `MIN_PREVIOUS` buckets before, a value is a spike
    when it is at least `SPIKE_FACTOR` times their median, at least
    `SPIKE_MADS` median absolute deviations above that median, and at least
    `SPIKE_MIN`. Returns (spike?, baseline median, threshold).
    """
    if len(before) < MIN_PREVIOUS:
        return False, 0.0, 0.0
    base = float(median(before))
    mad = float(median(abs(b - base) for b in before))
    threshold = max(SPIKE_FACTOR * base, base + SPIKE_MADS * mad, float(SPIKE_MIN))
    return value >= threshold, base, threshold


def find_spikes(
    rows: list[dict[str, Any]],
    previous: int,
    events: pd.DataFrame,
    sessions: pd.DataFrame,
    deliveries: pd.DataFrame,
    marks: dict[str, list[int]],
) -> list[dict[str, Any]]:
    """Return the spikes of `rows`, each with what changed in it."""
    spikes = []
    # Made for the first spike, shared by the others.
    keyed: dict[str, pd.DataFrame] = {}
    names: dict[str, str] = {}
    for metric in METRICS:
        series = [int(r[metric]) for r in rows]
        for i, value in enumerate(series):
            if value < SPIKE_MIN:  # below every threshold: spare the medians
                continue
            spike, base, threshold = is_spike(value, series[max(0, i - previous) : i])
            if not spike:
                continue
            lo = max(0, i - previous)
            if not keyed:
                keyed = _keyed(events=events, sessions=sessions, deliveries=deliveries)
                names = _names(events, sessions, deliveries)
            entry = {
                "start": rows[i]["start"],
                "metric": metric,
                "value": value,
                "baseline": round(base, 1),
                "threshold": round(threshold, 1),
                **_tls_part(metric, rows[i]),
                **_changes(metric, i, lo, keyed, marks, names),
            }
            spikes.append(entry)
    spikes.sort(key=lambda s: (s["start"], METRICS.index(s["metric"])))
    return spikes


def _tls_part(metric: str, row: dict[str, Any]) -> dict[str, Any]:
    if metric == "failures":
        return {"tls": row["failures"], "tls_share": None, "note": ""}
    tls = int(row["tls_" + metric])
    # Capped: a grammar may log a TLS outcome without a delivery line for it.
    share = min(tls / row[metric], 1.0) if row[metric] else None
    note = ""
    if share is not None:
        note = f"{share:.0%} of these {metric} are TLS failures"
        if share < TLS_EXPLAINS:
            note += ": look elsewhere"
    return {
        "tls": tls,
        "tls_share": round(share, 4) if share is not None else None,
        "note": note,
    }


def peer_label(addr: Any, name: Any) -> str:
    """Return ``name [addr]``, or whichever of the two is known."""
    addr, name = str(addr or ""), str(name or "")
    if name and addr and name != addr:
        return f"{name} [{addr}]"
    return name or addr or "(no peer)"


def _tally(
    frame: pd.DataFrame,
    where: list[int],
    column: str,
    weight: str | None,
    lo: int,
    i: int,
) -> tuple[dict[str, int], dict[str, int]]:
    """Count `column` in bucket `i` and in the buckets ``lo..i-1``."""
    now: dict[str, int] = {}
    before: dict[str, int] = {}
    values = frame[column].tolist()
    weights = frame[weight].tolist() if weight else [1] * len(values)
    for value, n, at in zip(values, weights, where, strict=True):
        if at == i:
            now[value] = now.get(value, 0) + int(n)
        elif lo <= at < i:
            before[value] = before.get(value, 0) + int(n)
    return now, before


def _risen(now: dict[str, int], before: dict[str, int], buckets: int) -> list[str]:
    """The keys absent before, or rare: their usual count is a third of now's."""
    risen = [
        (n, key)
        for key, n in now.items()
        if key and SPIKE_FACTOR * before.get(key, 0) / max(buckets, 1) <= n
    ]
    return [key for _, key in sorted(risen, key=lambda t: (-t[0], t[1]))[:SPIKE_LIST]]


def _changes(
    metric: str,
    i: int,
    lo: int,
    keyed: dict[str, pd.DataFrame],
    marks: dict[str, list[int]],
    names: dict[str, str],
) -> dict[str, Any]:
    """Say which peers and kinds rose in bucket `i`, and who stopped succeeding."""
    buckets = i - lo
    failed = keyed["events"]
    ev_marks = marks["events"]
    # Filtered by a boolean Series: an empty list would select no columns instead.
    if metric != "failures":
        keep = failed["outcome"] == metric
        failed = failed[keep]
        ev_marks = [m for m, k in zip(ev_marks, keep.tolist(), strict=True) if k]
    kinds_now, kinds_before = _tally(failed, ev_marks, "kind", None, lo, i)

    if metric == "failures":
        peers_now, peers_before = _tally(failed, ev_marks, "peer", None, lo, i)
    else:
        hit = keyed["deliveries"]["status"] == metric
        sent = keyed["deliveries"][hit]
        de_marks = [
            m for m, k in zip(marks["deliveries"], hit.tolist(), strict=True) if k
        ]
        peers_now, peers_before = _tally(sent, de_marks, "peer", "count", lo, i)

    ok = keyed["sessions"]
    ok_now, ok_before = _tally(ok, marks["sessions"], "peer", "count", lo, i)
    regular = _regular(ok, marks["sessions"], lo, i)
    stopped = [
        p
        for p, n in sorted(ok_before.items(), key=lambda kv: (-kv[1], kv[0]))
        if not ok_now.get(p) and (p in peers_now or p in regular)
    ]
    return {
        "new_peers": [
            names.get(p, p) for p in _risen(peers_now, peers_before, buckets)
        ],
        "new_kinds": _risen(kinds_now, kinds_before, buckets),
        "stopped_succeeding": [names.get(p, p) for p in stopped[:SPIKE_LIST]],
    }


def _keyed(**frames: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Return each frame with a ``peer`` column: the key of each row's peer."""
    return {name: frame.assign(peer=_keys(frame)) for name, frame in frames.items()}


def _keys(frame: pd.DataFrame) -> list[str]:
    """Name each row's peer by address, or by name when the address is unknown."""
    return [
        str(a or n or "")
        for a, n in zip(frame["peer_addr"], frame["peer_name"], strict=True)
    ]


def _names(*frames: pd.DataFrame) -> dict[str, str]:
    """Return a label for each peer key, from the first real name any frame gives."""
    names: dict[str, str] = {}
    for frame in frames:
        for a, n in zip(frame["peer_addr"], frame["peer_name"], strict=True):
            key = str(a or n or "")
            if key not in names or (n and n != "unknown" and names[key] == key):
                names[key] = peer_label(a, "" if n == "unknown" else n)
    return names


def _regular(ok: pd.DataFrame, where: list[int], lo: int, i: int) -> set[str]:
    """Peers that succeeded in at least half of the buckets ``lo..i-1``."""
    seen: dict[str, set[int]] = {}
    for peer, at in zip(ok["peer"], where, strict=True):
        if lo <= at < i:
            seen.setdefault(peer, set()).add(at)
    return {p for p, hit in seen.items() if 2 * len(hit) >= max(i - lo, 1)}


def delivery_totals(events: pd.DataFrame, deliveries: pd.DataFrame) -> dict[str, Any]:
    """Return all deferred and bounced deliveries, and the share TLS explains."""

    def count(status: str) -> int:
        if deliveries.empty:
            return 0
        return int(deliveries.loc[deliveries["status"] == status, "count"].sum())

    deferred, bounced = count("deferred"), count("bounced")
    tls = int(events["outcome"].isin(["deferred", "bounced"]).sum())
    total = deferred + bounced
    return {
        "deferred_all": deferred,
        "bounced_all": bounced,
        "tls_share": round(min(tls / total, 1.0), 4) if total else None,
    }


def peer_deliveries(deliveries: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Return {peer address: {status: count}} of all deferred and bounced deliveries."""
    if deliveries.empty:
        return {}
    table = deliveries.groupby(["peer_addr", "status"])["count"].sum()
    out: dict[str, dict[str, int]] = {}
    for key, n in table.items():
        addr, status = cast(tuple[str, str], key)  # a two-level index
        out.setdefault(str(addr), {})[str(status)] = int(n)
    return out


def add_peer_deliveries(peers: list[dict[str, Any]], deliveries: pd.DataFrame) -> None:
    """Give each outbound peer its deferred and bounced deliveries, TLS or not."""
    sent = peer_deliveries(deliveries)
    for peer in peers:
        counts = sent.get(peer["peer_addr"] or "", {})
        if peer["direction"] != "outbound":
            counts = {}
        peer["deferred_all"] = counts.get("deferred", 0)
        peer["bounced_all"] = counts.get("bounced", 0)
