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
    groups: dict[str, set[str]] = {}
    pairs = events[["cause", "peer_addr", "peer_name"]].drop_duplicates()
    for cause, addr, name in zip(
        pairs["cause"], pairs["peer_addr"], pairs["peer_name"], strict=True
    ):
        unrelated = groups.setdefault(str(cause), set())
        if addr or name:
            unrelated.add(_unrelated(addr, name))
    return {cause: len(unrelated) for cause, unrelated in groups.items()}


_PEER = ["peer_addr", "direction"]
#: Each peer shows the most frequent value of these columns ...
_MOST = ("peer_name", "mta", "cause", "detail")
#: ... and the count of each value of these.
_COUNTED = ("kind", "outcome", "host")
#: Peer names that name no one.
_NAMELESS = frozenset({"", "unknown"})

_PeerCounts = dict[tuple[str, str], dict[str, int]]


def _counts(events: pd.DataFrame, column: str) -> _PeerCounts:
    """Count the values of `column` for each peer and direction.

    The values of one peer are in the order they first appear in `events`.
    """
    counts: _PeerCounts = {}
    sizes = events.groupby([*_PEER, column], sort=False).size()
    for (addr, direction, value), n in cast(Iterable[tuple[Any, int]], sizes.items()):
        counts.setdefault((addr, direction), {})[str(value)] = int(n)
    return counts


def _most(values: dict[str, int], skip: frozenset[str] = frozenset()) -> str:
    """Return the most frequent value, the first seen of those as frequent."""
    best, top = "", 0
    for value, n in values.items():
        if n > top and value not in skip:
            best, top = value, n
    return best


def _by_count(values: dict[str, int]) -> dict[str, int]:
    """Return the values that are not empty, the most frequent first."""
    kept = [(value, n) for value, n in values.items() if value]
    return dict(sorted(kept, key=lambda kv: (-kv[1], kv[0])))


def _peers(
    events: pd.DataFrame,
    successes: pd.DataFrame,
    spread: dict[str, int],
    causes: dict[str, Cause],
) -> list[dict[str, Any]]:
    ok = successes.groupby(_PEER)["count"].sum().to_dict() if len(successes) else {}
    logged = set(zip(successes["direction"], successes["mta"], strict=True))
    counts = {column: _counts(events, column) for column in (*_MOST, *_COUNTED)}
    seen = events.groupby(_PEER)["when"].agg(["size", "min", "max"])

    peers: list[dict[str, Any]] = []
    for key, size, first, last in zip(
        seen.index, seen["size"], seen["min"], seen["max"], strict=True
    ):
        addr, direction = key
        mta = _most(counts["mta"][key])
        cause = causes[_most(counts["cause"][key])]
        failures, good = int(size), int(ok.get(key, 0))
        rated = (direction, mta) in logged
        peers.append(
            {
                "peer_addr": addr or None,
                "peer_name": _most(counts["peer_name"][key], _NAMELESS)
                or addr
                or NO_PEER,
                "direction": direction,
                "mta": mta,
                "hosts": sorted(h for h in counts["host"][key] if h),
                "failures": failures,
                "successes": good,
                "failure_rate": round(failures / (failures + good), 4)
                if rated
                else None,
                "kinds": _by_count(counts["kind"][key]),
                "outcomes": _by_count(counts["outcome"][key]),
                "first_seen": _iso(first),
                "last_seen": _iso(last),
                "culprit": _culprit(cause, spread.get(cause.id, 0)),
                "cause": cause.id,
                "cause_text": cause.cause,
                "advice": cause.advice(mta),
                "detail": _most(counts["detail"][key]),
            }
        )
    peers.sort(key=lambda p: (-p["failures"], p["peer_name"]))
    return peers


def _kinds(events: pd.DataFrame) -> list[dict[str, Any]]:
    by_kind = events.groupby("kind")["peer_addr"]
    sizes = by_kind.size()
    rows = [
        {"kind": str(kind), "failures": int(failures), "peers": int(peers)}
        for kind, failures, peers in zip(
            sizes.index, sizes, by_kind.nunique(), strict=True
        )
    ]
    return sorted(rows, key=lambda r: (-r["failures"], r["kind"]))


def _causes(
    events: pd.DataFrame, spread: dict[str, int], causes: dict[str, Cause]
) -> list[dict[str, Any]]:
    by_cause = events.groupby("cause")
    sizes = by_cause.size()
    # A failure's peer is its name, else its address, if either is known.
    who = events["peer_name"].where(events["peer_name"] != "", events["peer_addr"])
    named = events.assign(who=who)[who != ""].groupby("cause")["who"].unique()
    rows = []
    for cause_id, failures, example, mtas in zip(
        sizes.index,
        sizes,
        by_cause["detail"].first(),
        by_cause["mta"].unique(),
        strict=True,
    ):
        cause = causes[str(cause_id)]
        peers = sorted(named.get(cause_id, ()))
        culprit = _culprit(cause, spread.get(cause.id, 0))
        rows.append(
            {
                "cause": cause.id,
                "kind": str(cause.kind),
                "culprit": culprit,
                "failures": int(failures),
                "peers": len(peers),
                "peer_names": peers[:10],
                "cause_text": cause.cause,
                "advice": {m: cause.advice(m) for m in sorted(mtas)},
                "note": cause.note,
                "spread": culprit != str(cause.culprit),
                "example": str(example),
            }
        )
    return sorted(rows, key=lambda r: (r["culprit"] != "local", -r["failures"]))


def _hosts(events: pd.DataFrame, successes: pd.DataFrame) -> list[dict[str, Any]]:
    ok = successes.groupby("host")["count"].sum().to_dict() if len(successes) else {}
    by_host = events.groupby("host")["peer_addr"]
    sizes = by_host.size()
    rows = [
        {
            "host": str(host),
            "failures": int(failures),
            "peers": int(peers),
            "successes": int(ok.get(host, 0)),
        }
        for host, failures, peers in zip(
            sizes.index, sizes, by_host.nunique(), strict=True
        )
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
