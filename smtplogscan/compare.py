"""Compare the failures per peer of two periods: new, gone, worse and better peers.

The baseline period may be longer or shorter than the report's window, so its
counts are scaled by the ratio of the two lengths before they are compared: a
peer with 14 failures in the 7 days before and 2 today is as usual, not better.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from smtplogscan.timeline import peer_label

if TYPE_CHECKING:
    import pandas as pd

    from smtplogscan.results import ScanResult
    from smtplogscan.window import Window

#: A peer is worse (better) when its failures are this many times as many
#: (as few) as its scaled baseline ...
CHANGE_FACTOR = 1.5
#: ... and differ from it by at least this many.
CHANGE_MIN = 2
_HOUR = timedelta(hours=1)


def length(
    since: datetime | None, until: datetime | None, frame: pd.DataFrame
) -> timedelta:
    """Return how long a period lasts: its bounds, or else the span of its records."""
    when = frame["when"].dropna()
    first = since or (when.min().to_pydatetime() if len(when) else None)
    last = until or (when.max().to_pydatetime() if len(when) else None)
    if first is None or last is None:
        return _HOUR
    return max(last - first, _HOUR)


def compare(
    after: pd.DataFrame,
    before: pd.DataFrame,
    scale: float,
    period: dict[str, Any],
) -> dict[str, Any]:
    """Return new, gone, worse and better peers; `scale` = len(after) / len(before)."""
    now, old = _per_peer(after), _per_peer(before)
    out: dict[str, Any] = {
        "period": period,
        "scale": round(scale, 4),
        "new": [],
        "gone": [],
        "worse": [],
        "better": [],
    }
    for key in sorted(set(now) | set(old)):
        a, b = now.get(key), old.get(key)
        n_after = a["failures"] if a else 0
        n_before = b["failures"] if b else 0
        expected = n_before * scale
        row = {
            "peer": (a or b or {}).get("label", key[0]),
            "peer_addr": key[0],
            "direction": key[1],
            "before": n_before,
            "after": n_after,
            "expected": round(expected, 1),
            "kinds": (a or b or {}).get("kinds", {}),
        }
        if not n_before:
            out["new"].append(row)
        elif not n_after:
            out["gone"].append(row)
        elif n_after >= CHANGE_FACTOR * expected and n_after - expected >= CHANGE_MIN:
            out["worse"].append(row)
        elif CHANGE_FACTOR * n_after <= expected and expected - n_after >= CHANGE_MIN:
            out["better"].append(row)
    for name in ("new", "worse"):
        out[name].sort(key=lambda r: (-r["after"], r["peer"]))
    for name in ("gone", "better"):
        out[name].sort(key=lambda r: (-r["before"], r["peer"]))
    return out


def _per_peer(events: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """Count failures and kinds by peer (its address, else its name) and direction."""
    peers: dict[tuple[str, str], dict[str, Any]] = {}
    rows = zip(
        events["peer_addr"],
        events["peer_name"],
        events["direction"],
        events["kind"],
        strict=True,
    )
    for addr, name, direction, kind in rows:
        key = (str(addr or name or ""), str(direction))
        peer = peers.setdefault(key, {"failures": 0, "kinds": {}, "label": ""})
        peer["failures"] += 1
        peer["kinds"][str(kind)] = peer["kinds"].get(str(kind), 0) + 1
        if not peer["label"] or (name and name != "unknown"):
            peer["label"] = peer_label(addr, "" if name == "unknown" else name)
    return peers


def between(
    result: ScanResult,
    baseline: ScanResult,
    window: Window,
    period: Window,
    described: dict[str, Any],
) -> dict[str, Any]:
    """Compare the failures of `result` (in `window`) with `baseline` (in `period`)."""
    from smtplogscan.frame import events_frame

    after, before = events_frame(result.events), events_frame(baseline.events)
    now = length(window.since, window.until, after)
    old = length(period.since, period.until, before)
    return compare(after, before, now / old, described)
