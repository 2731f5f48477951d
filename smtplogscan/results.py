"""What a scan found: failures one by one, successes and deliveries as counts.

Failures are kept as events. Successful TLS sessions and deliveries, which are as
many as the mails, are counted by peer and hour, so that memory grows with the
number of peers and hours, not with the length of the log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from smtplogscan.errors import ScanError
from smtplogscan.records import Delivery, Event, Outcome, Record, Success

#: How many unmatched TLS-looking lines a report keeps as examples.
KEEP_UNMATCHED = 20


@dataclass(slots=True)
class Counts:
    """What a scan read, for the coverage notes of a report."""

    lines: int = 0
    candidates: int = 0
    unmatched: int = 0
    cut_lines: int = 0
    #: Multi-line state that never completed and was let go to bound memory.
    evicted: int = 0
    bytes: int = 0
    unmatched_examples: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        """Add the counts of another input to these."""
        self.lines += other.lines
        self.candidates += other.candidates
        self.unmatched += other.unmatched
        self.cut_lines += other.cut_lines
        self.evicted += other.evicted
        self.bytes += other.bytes
        room = KEEP_UNMATCHED - len(self.unmatched_examples)
        self.unmatched_examples.extend(other.unmatched_examples[: max(room, 0)])


@dataclass(slots=True)
class InputReport:
    """How one input was read."""

    name: str
    grammar: str = ""
    mta: str = ""
    counts: Counts = field(default_factory=Counts)
    error: str = ""


class SessionKey(NamedTuple):
    """What successful TLS sessions are counted by."""

    host: str
    mta: str
    direction: str
    peer_addr: str
    peer_name: str
    protocol: str
    cipher: str
    hour: datetime | None  # the start of the hour, in the stamp's own offset


class DeliveryKey(NamedTuple):
    """What deferred and bounced deliveries are counted by."""

    host: str
    mta: str
    peer_addr: str
    peer_name: str
    status: str
    hour: datetime | None


class Place(NamedTuple):
    """Where a record is counted: which result (see `ScanResult.place`), which hour."""

    depth: int
    hour: datetime | None


_new_tuple = tuple.__new__


class _Hours:
    """Floor times to the hour, remembering the last one: grammars hand the same
    datetime object to every line of one stamp."""

    __slots__ = ("_when", "_hour")

    def __init__(self) -> None:
        self._when: datetime | None = None
        self._hour: datetime | None = None

    def __call__(self, when: datetime | None) -> datetime | None:
        if when is not self._when:
            self._when = when
            self._hour = (
                None
                if when is None
                else when.replace(minute=0, second=0, microsecond=0)
            )
        return self._hour


@dataclass(slots=True)
class ScanResult:
    """Everything a scan found, and what it could not read.

    Failures are kept one by one. Successful sessions and deliveries, which are
    as many as the mails, are counted by peer and hour, so that memory grows
    with the number of peers and hours, not with the length of the log.
    """

    events: list[Event] = field(default_factory=list)
    sessions: Counter[SessionKey] = field(default_factory=Counter)
    deliveries: Counter[DeliveryKey] = field(default_factory=Counter)
    counts: Counts = field(default_factory=Counts)
    inputs: list[InputReport] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    #: Files found in folders that no grammar recognised.
    skipped: list[str] = field(default_factory=list)
    #: Records from `since` (included) to `until` (excluded) are kept; records
    #: with no time are always kept, since no window can exclude them.
    since: datetime | None = None
    until: datetime | None = None
    #: Where records outside the window go instead, for a comparison.
    baseline: ScanResult | None = None
    #: Bounces with a queue id wait here until `settle_bounces` links them to
    #: the failures of the same mail.
    bounces: list[Delivery] = field(default_factory=list)
    _hour: _Hours = field(default_factory=_Hours, repr=False)

    @property
    def tls_successes(self) -> int:
        """How many TLS sessions succeeded."""
        return sum(self.sessions.values())

    def keep(self, records: Iterable[Record]) -> None:
        """Keep failures; count successes and deliveries."""
        for record in records:
            # By the record's own time, before it is counted by hour: a window
            # starting 10:30 must not take a session of 10:15.
            place = self.place(record.time)
            if place is None:
                continue
            if isinstance(record, Success):  # the most frequent by far
                self.count_sessions(record, place, 1)
                continue
            target = self._at(place.depth)
            if isinstance(record, Event):
                target.events.append(record)
            elif record.status is Outcome.BOUNCED and record.queue_id:
                target.bounces.append(record)
            else:
                target.count_delivery(record)

    def count_delivery(self, record: Delivery) -> None:
        """Count a deferred or bounced delivery by peer and hour."""
        peer = record.peer
        key = DeliveryKey(
            record.host,
            record.mta,
            peer.addr,
            peer.name,
            str(record.status),
            self._hour(record.time),
        )
        self.deliveries[key] += 1

    def bounds_on_minutes(self) -> bool:
        """Say whether every window bound, the baseline's too, is a whole minute."""
        bounds = (self.since, self.until)
        if any(b is not None and (b.second or b.microsecond) for b in bounds):
            return False
        return self.baseline is None or self.baseline.bounds_on_minutes()

    def place(self, when: datetime | None) -> Place | None:
        """Say where a record of this time is counted: in this result, in its
        baseline (depth 1) or the baseline's, and in which hour; None if nowhere."""
        target: ScanResult | None = self
        depth = 0
        while target is not None:
            windowed = target.since is not None or target.until is not None
            if not windowed or target.within(when):
                return Place(depth, target._hour(when))
            target, depth = target.baseline, depth + 1
        return None

    def count_sessions(self, session: Success, place: Place, n: int) -> None:
        """Count `n` sessions like `session` where `place` says."""
        peer = session.peer
        # tuple.__new__ skips the Python-level constructor of a NamedTuple: this
        # runs once per mail with grammars that have no session pattern.
        key = _new_tuple(
            SessionKey,
            (
                session.host,
                session.mta,
                session.direction.value,
                peer.addr,
                peer.name,
                session.protocol,
                session.cipher,
                place.hour,
            ),
        )
        self._at(place.depth).sessions[key] += n

    def _at(self, depth: int) -> ScanResult:
        """This result (0), its baseline (1), or the baseline's (2)."""
        target = self
        for _ in range(depth):
            assert target.baseline is not None
            target = target.baseline
        return target

    def within(self, when: datetime | None) -> bool:
        """Say whether a record of this time belongs in the window."""
        if when is None:
            return True
        if when.tzinfo is None:  # a plugin's naive time: the machine's local time
            when = when.astimezone()
        if self.since is not None and when < self.since:
            return False
        return self.until is None or when < self.until


def settle_bounces(result: ScanResult) -> None:
    """Mark the last failure before each bounce of the same mail as bounced.

    A mail that failed TLS, waited in the queue and expired is logged as bounced
    far from its failures (qmgr's ``status=expired``), often in another part of
    a parallel scan; linking them here gives the same answer either way.
    """
    if not result.bounces:
        return
    bounced = {b.queue_id for b in result.bounces} - {""}
    last: dict[str, Event] = {}
    in_order: list[tuple[tuple[str, int], int, Event | Delivery]] = [
        *((line_order(e.source), 0, e) for e in result.events if e.queue_id in bounced),
        *((line_order(b.source), 1, b) for b in result.bounces),
    ]
    in_order.sort(key=lambda item: (item[0], item[1]))
    for _, _, record in in_order:
        if isinstance(record, Event):
            last[record.queue_id] = record
            continue
        event = last.pop(record.queue_id, None)
        if event is not None:
            if event.outcome in (Outcome.DEFERRED, Outcome.UNKNOWN):
                event.outcome = Outcome.BOUNCED
            if not record.peer.addr and not record.peer.name:
                record.peer = event.peer
        result.count_delivery(record)
    result.bounces.clear()


def line_order(source: str) -> tuple[str, int]:
    """Order ``path:line`` sources as the lines stand in the inputs."""
    path, _, line = source.rpartition(":")
    return (path, int(line)) if line.isdigit() else (source, 0)
