"""Events -> the tables a report shows: per peer, per kind, per cause, per host.

Everything here returns plain, JSON-ready values (dicts, lists, str, int, float),
so that every output format renders the same figures.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, cast

from smtplogscan import timeline as timeline_mod
from smtplogscan.causes import Cause, by_id
from smtplogscan.frame import deliveries_frame, events_frame, sessions_frame
from smtplogscan.records import Culprit, Kind
from smtplogscan.results import ScanResult
from smtplogscan.timestamps import local_zone

if TYPE_CHECKING:
    import pandas as pd

#: A peer-blaming cause seen from this many unrelated peers points at our side.
SPREAD_PEERS = 5
# Kinds where the peer told us it refused our offer: from one peer, that peer's
# policy is strict or old; from many unrelated peers, our side is the odd one.
_SPREAD_KINDS = frozenset(
    {
        Kind.HANDSHAKE_ALERT,
        Kind.CERT_UNTRUSTED,
        Kind.NO_SHARED_CIPHER,
        Kind.PROTOCOL_VERSION,
    }
)
NO_PEER = "(no peer)"


@dataclass(slots=True)
class Analysis:
    """The figures of one report."""

    totals: dict[str, Any]
    peers: list[dict[str, Any]]
    kinds: list[dict[str, Any]]
    causes: list[dict[str, Any]]
    hosts: list[dict[str, Any]]
    unknown_reasons: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    #: Counts per hour or day, and spikes; the shape is in `timeline.build`.
    timeline: dict[str, Any] = field(default_factory=dict)
    #: The report's window against another period, when one was asked for.
    comparison: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the report as the public JSON object."""
        return {
            "totals": self.totals,
            "peers": self.peers,
            "kinds": self.kinds,
            "causes": self.causes,
            "hosts": self.hosts,
            "unknown_reasons": self.unknown_reasons,
            "notes": self.notes,
            "inputs": self.inputs,
            "timeline": self.timeline,
            **({"comparison": self.comparison} if self.comparison is not None else {}),
        }


def analyse(
    result: ScanResult, zone: tzinfo | None = None, bucket: str | None = None
) -> Analysis:
    """Aggregate a scan's records into the tables of a report.

    Times are shown in `zone` (None: the machine's); `bucket` (``hour`` or
    ``day``) overrides the timeline's choice.
    """
    shown = zone or local_zone()
    events = events_frame(result.events)
    events["when"] = events["when"].dt.tz_convert(shown)
    successes = sessions_frame(result.sessions)
    deliveries = deliveries_frame(result.deliveries)
    spread = _spread(events)
    causes = by_id()

    peers = _peers(events, successes, spread, causes)
    timeline_mod.add_peer_deliveries(peers, deliveries)
    totals = _totals(result, events, peers)
    totals.update(timeline_mod.delivery_totals(events, deliveries))
    return Analysis(
        totals=totals,
        peers=peers,
        kinds=_kinds(events),
        causes=_causes(events, spread, causes),
        hosts=_hosts(events, successes),
        unknown_reasons=_unknown(events),
        notes=_notes(result, successes),
        inputs=[
            {
                "name": i.name,
                "grammar": i.grammar,
                "lines": i.counts.lines,
                "error": i.error or None,
            }
            for i in result.inputs
        ],
        timeline=timeline_mod.build(events, successes, deliveries, shown, bucket),
    )


def _iso(value: Any) -> str | None:
    return None if value is None or str(value) == "NaT" else value.isoformat()


def _culprit(cause: Cause, peers_with_cause: int) -> str:
    if peers_with_cause >= SPREAD_PEERS and cause.kind in _SPREAD_KINDS:
        return str(Culprit.LOCAL)
    return str(cause.culprit)


def _unrelated(addr: str, name: str) -> str:
    """Group a peer with its neighbours: same /24 (/48 for IPv6) or same domain."""
    try:
        ip = ipaddress.ip_address(addr)
        prefix = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
    except ValueError:
        labels = [p for p in name.lower().split(".") if p]
        return ".".join(labels[-2:]) or addr


def _spread(events: pd.DataFrame) -> dict[str, int]:
    """Count, per cause, the unrelated peers it was seen from."""
    spread: dict[str, int] = {}
    for cause, group in events.groupby("cause"):
        groups = {
            _unrelated(a, n)
            for a, n in zip(group["peer_addr"], group["peer_name"], strict=True)
            if a or n
        }
        spread[str(cause)] = len(groups)
    return spread


_PEER = ["peer_addr", "direction"]


def _mode(events: pd.DataFrame, column: str) -> dict[tuple[str, str], str]:
    """Return the most frequent value of `column` for each peer and direction."""
    counts = (
        events.groupby([*_PEER, column], sort=False).size().rename("n").reset_index()
    )
    top = counts.sort_values("n", ascending=False, kind="stable").drop_duplicates(_PEER)
    return {
        (a, d): str(v)
        for a, d, v in zip(top["peer_addr"], top["direction"], top[column], strict=True)
    }


def _tally(events: pd.DataFrame, column: str) -> dict[tuple[str, str], dict[str, int]]:
    """Return {value: count} of `column` for each peer and direction."""
    tallies: dict[tuple[str, str], dict[str, int]] = {}
    sizes = events.groupby([*_PEER, column]).size()
    for (addr, direction, value), n in cast(Iterable[tuple[Any, int]], sizes.items()):
        if value:
            tallies.setdefault((addr, direction), {})[str(value)] = int(n)
    return {
        k: dict(sorted(v.items(), key=lambda kv: -kv[1])) for k, v in tallies.items()
    }


def _peers(
    events: pd.DataFrame,
    successes: pd.DataFrame,
    spread: dict[str, int],
    causes: dict[str, Cause],
) -> list[dict[str, Any]]:
    ok = successes.groupby(_PEER)["count"].sum().to_dict() if len(successes) else {}
    logged = (
        set(successes["direction"] + "/" + successes["mta"])
        if len(successes)
        else set()
    )
    named = events[(events["peer_name"] != "") & (events["peer_name"] != "unknown")]
    names = _mode(named, "peer_name")
    mtas, cause_ids, details = (_mode(events, c) for c in ("mta", "cause", "detail"))
    kinds, outcomes, hosts = (_tally(events, c) for c in ("kind", "outcome", "host"))
    seen = events.groupby(_PEER)["when"].agg(["size", "min", "max"])

    peers: list[dict[str, Any]] = []
    for (addr, direction), row in cast(Iterable[tuple[Any, Any]], seen.iterrows()):
        key = (addr, direction)
        mta, cause = mtas[key], causes[cause_ids[key]]
        failures, good = int(row["size"]), int(ok.get(key, 0))
        rated = f"{direction}/{mta}" in logged
        peers.append(
            {
                "peer_addr": addr or None,
                "peer_name": names.get(key) or addr or NO_PEER,
                "direction": direction,
                "mta": mta,
                "hosts": sorted(hosts.get(key, {})),
                "failures": failures,
                "successes": good,
                "failure_rate": round(failures / (failures + good), 4)
                if rated
                else None,
                "kinds": kinds.get(key, {}),
                "outcomes": outcomes.get(key, {}),
                "first_seen": _iso(row["min"]),
                "last_seen": _iso(row["max"]),
                "culprit": _culprit(cause, spread.get(cause.id, 0)),
                "cause": cause.id,
                "cause_text": cause.cause,
                "advice": cause.advice(mta),
                "detail": details[key],
            }
        )
    peers.sort(key=lambda p: (-p["failures"], p["peer_name"]))
    return peers


def _kinds(events: pd.DataFrame) -> list[dict[str, Any]]:
    rows = [
        {
            "kind": str(kind),
            "failures": len(group),
            "peers": group["peer_addr"].nunique(),
        }
        for kind, group in events.groupby("kind")
    ]
    return sorted(rows, key=lambda r: (-r["failures"], r["kind"]))


def _causes(
    events: pd.DataFrame, spread: dict[str, int], causes: dict[str, Cause]
) -> list[dict[str, Any]]:
    rows = []
    for cause_id, group in events.groupby("cause"):
        cause = causes[str(cause_id)]
        mtas = sorted(set(group["mta"]))
        peers = sorted(
            {
                n or a
                for n, a in zip(group["peer_name"], group["peer_addr"], strict=True)
                if n or a
            }
        )
        culprit = _culprit(cause, spread.get(cause.id, 0))
        rows.append(
            {
                "cause": cause.id,
                "kind": str(cause.kind),
                "culprit": culprit,
                "failures": len(group),
                "peers": len(peers),
                "peer_names": peers[:10],
                "cause_text": cause.cause,
                "advice": {m: cause.advice(m) for m in mtas},
                "note": cause.note,
                "spread": culprit != str(cause.culprit),
                "example": str(group["detail"].iloc[0]),
            }
        )
    return sorted(rows, key=lambda r: (r["culprit"] != "local", -r["failures"]))


def _hosts(events: pd.DataFrame, successes: pd.DataFrame) -> list[dict[str, Any]]:
    ok = successes.groupby("host")["count"].sum().to_dict() if len(successes) else {}
    rows = [
        {
            "host": str(host),
            "failures": len(group),
            "peers": group["peer_addr"].nunique(),
            "successes": int(ok.get(host, 0)),
        }
        for host, group in events.groupby("host")
    ]
    return sorted(rows, key=lambda r: -r["failures"])


def _unknown(events: pd.DataFrame) -> list[dict[str, Any]]:
    other = events[events["kind"] == str(Kind.OTHER)]
    counts = other["detail"].value_counts()
    return [{"detail": str(d), "failures": int(n)} for d, n in counts.head(50).items()]


def _totals(
    result: ScanResult, events: pd.DataFrame, peers: list[dict[str, Any]]
) -> dict[str, Any]:
    outcomes = Counter(events["outcome"])
    return {
        "lines": result.counts.lines,
        "bytes": result.counts.bytes,
        "inputs": len(result.inputs),
        "failures": len(events),
        "tls_successes": result.tls_successes,
        "peers": len(peers),
        "inbound_failures": int((events["direction"] == "inbound").sum()),
        "outbound_failures": int((events["direction"] == "outbound").sum()),
        "plaintext": outcomes.get("plaintext", 0),
        "deferred": outcomes.get("deferred", 0),
        "bounced": outcomes.get("bounced", 0),
        "local_action": sum(1 for p in peers if p["culprit"] == "local"),
        "unmatched_tls_lines": result.counts.unmatched,
        "cut_lines": result.counts.cut_lines,
        "first_seen": _iso(events["when"].min()) if len(events) else None,
        "last_seen": _iso(events["when"].max()) if len(events) else None,
    }


def _notes(result: ScanResult, successes: pd.DataFrame) -> list[str]:
    notes = []
    counts = result.counts
    if counts.unmatched:
        notes.append(
            f"{counts.unmatched} TLS-looking line(s) matched no rule;"
            " examples are listed"
            " under 'unmatched lines'."
        )
    for mta in sorted({i.mta for i in result.inputs if i.mta}):
        if len(successes) and (successes["mta"] == mta).any():
            continue
        if mta == "postfix":
            notes.append(
                "No successful TLS sessions are logged by Postfix,"
                " so there is no failure"
                " rate: set smtpd_tls_loglevel = 1 and smtp_tls_loglevel = 1."
            )
        else:
            notes.append(f"No successful TLS sessions were found in the {mta} logs.")
    if counts.evicted:
        notes.append(
            f"{counts.evicted} handshake(s) or session(s) never completed and were let"
            " go to keep memory bounded; their lines may be missing from the counts."
        )
    if counts.cut_lines:
        notes.append(f"{counts.cut_lines} over-long line(s) were cut to 64 KiB.")
    for error in result.errors:
        notes.append(f"Not fully read: {error}")
    if result.skipped:
        names = ", ".join(result.skipped[:5]) + (
            ", …" if len(result.skipped) > 5 else ""
        )
        notes.append(
            f"{len(result.skipped)} file(s) in the folders read are no log a grammar"
            f" knows and were skipped: {names}"
        )
    return notes
