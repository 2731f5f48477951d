"""The contract between the engine and a log-format grammar.

A grammar is a class. Its class attributes describe it; `sniff` scores the first
lines of an input; one instance reads one stream, in order, and may keep state
between lines where one failure spans several of them (Postfix writes the peer and
the reason on separate lines of one process).

The engine calls `feed` only for lines that contain one of the grammar's
`prefilter` literals or the words ``TLS`` or ``SSL``; every other line is counted
and never leaves the byte buffer. A grammar that needs an ordinary line for a
while (the delivery that follows a failed handshake) says so with `watch`, and
the engine feeds the lines that hold that literal too until `unwatch`. A line
that `feed` answers with None was not understood: when it looks like TLS, it is
counted as unmatched and shown in the report, so that a new wording is noticed.

A grammar may also name its commonest line, the successful session, as a bytes
pattern (`session_line`): the engine then counts those lines straight from the
byte buffer, by stamp and by the pattern's groups, and asks the grammar to read
each distinct stamp (or stamp minute) and each distinct group once
(`stamp_time`, `session_of`). Cut in two at its marker (`session_head`,
`session_tail`), the pattern need not even run on every such line: the engine
remembers the heads by their shape and the tails as they are.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import ClassVar

from smtplogscan.records import Record, Success


@dataclass(frozen=True, slots=True)
class Stream:
    """What a grammar may know of the input it reads."""

    name: str
    #: When the input was last written to; anchors the year of year-less stamps.
    mtime: datetime
    #: The zone of stamps that carry no offset; None is the machine's local zone.
    zone: tzinfo | None = None
    #: The year of year-less stamps, when the user says it.
    year: int | None = None


class Grammar(ABC):
    """Turn the lines of one log format into records.

    Subclasses set the class attributes and implement `sniff` and `feed`.
    """

    #: Short unique name, used by ``--grammar`` and shown by ``smtplogscan grammars``.
    name: ClassVar[str]
    #: The MTA that writes this format, as shown in reports (``postfix``, ``exim``).
    mta: ClassVar[str]
    #: The log formats read, in words (``syslog``, ``journald-json``, ...).
    formats: ClassVar[tuple[str, ...]]
    #: Literals one of which every line that can matter contains.
    prefilter: ClassVar[tuple[str, ...]]
    #: One line on what the grammar reads.
    description: ClassVar[str] = ""
    #: True when the lines of one failure always stand within a few megabytes
    #: of each other, so that a large file may be read in parallel ranges.
    splittable: ClassVar[bool] = False
    #: A literal every successful-session line holds, for `session_line`.
    session_marker: ClassVar[str] = ""
    #: Matches a whole successful-session line as bytes, from its first byte,
    #: with a group ``stamp`` and the groups `session_groups`. Only lines that
    #: `feed` would read as one `Success` may match it.
    session_line: ClassVar[re.Pattern[bytes] | None] = None
    #: The groups of `session_line` that `session_of` reads (two or more).
    session_groups: ClassVar[tuple[str, ...]] = ()
    #: Optionally `session_line` cut in two where its marker begins: the head
    #: matches all of the line before the marker (`fullmatch`), the tail the line
    #: from the marker on (`match`), and a line whose first marker cuts it so
    #: that both match must be exactly a line `session_line` matches, with the
    #: same groups. The head holds ``stamp``, the `session_minute` groups (which
    #: must tell minutes apart even with a group that takes no part read as
    #: empty) and the first of `session_groups`, the tail the rest. The engine runs
    #: the head once per shape and the tail once per distinct tail: so the head
    #: must match a copy of itself with digits 0-5 written 0 and 6-9 written 9
    #: as it matches itself, with the same spans (tell digits apart by no
    #: finer class than ``[0-5]``).
    session_head: ClassVar[re.Pattern[bytes] | None] = None
    session_tail: ClassVar[re.Pattern[bytes] | None] = None
    #: Groups of `session_line` that together name the minute of the stamp,
    #: with its date and offset: lines of one minute then have their stamp read
    #: once. `session_line` must then only match seconds that exist (00-59).
    session_minute: ClassVar[tuple[str, ...]] = ()

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        #: Literals watched for now, besides the prefilter; see `watch`.
        self.follow: set[str] = set()
        #: Changes whenever `follow` does, so the engine notices cheaply.
        self.follow_version = 0
        #: How much unfinished state (open handshakes, sessions) the grammar let
        #: go to keep memory bounded; reported in the coverage notes.
        self.evicted = 0
        #: While this holds anything, session lines are fed rather than counted
        #: from the buffer: the grammar's state may change what they mean.
        self.pending: Collection[object] = ()

    def watch(self, literal: str) -> None:
        """Have the engine feed lines that hold `literal`, from the next line on."""
        if literal not in self.follow:
            self.follow.add(literal)
            self.follow_version += 1

    def unwatch(self, literal: str) -> None:
        """Stop feeding lines for `literal` (unless the prefilter wants them)."""
        if literal in self.follow:
            self.follow.discard(literal)
            self.follow_version += 1

    @classmethod
    @abstractmethod
    def sniff(cls, lines: Sequence[str]) -> float:
        """Score from 0 (not this format) to 1 (surely this format) the first lines."""

    @abstractmethod
    def feed(self, line: str, lineno: int) -> list[Record] | None:
        """Read one line; return the records it completes, or None if not understood.

        An empty list means the line was understood and completes nothing yet.
        """

    def stamp_time(self, stamp: bytes) -> datetime | None:
        """Return the time of the ``stamp`` group of a `session_line` match.

        Raise ValueError for a stamp that names no real time; the line is then
        fed as usual.
        """
        raise NotImplementedError

    def session_of(self, groups: tuple[bytes, ...]) -> Success:
        """Return the session that a `session_line` match with these groups is.

        Its time and source are not read: the engine counts sessions by hour.
        """
        raise NotImplementedError

    @classmethod
    def cut_pattern_fault(cls) -> str | None:
        """Say what `session_head` and `session_tail` lack, None if nothing."""
        head, tail = cls.session_head, cls.session_tail
        if head is None and tail is None:
            return None
        if head is None or tail is None or not cls.session_groups:
            return "session_head and session_tail come together, with session_groups"
        first, *rest = cls.session_groups
        ahead = ("stamp", *cls.session_minute, first)
        if any(g not in head.groupindex for g in ahead) or any(
            g not in tail.groupindex for g in rest
        ):
            return (
                f"session_head must hold the groups {', '.join(ahead)},"
                f" session_tail the groups {', '.join(rest)}"
            )
        return None

    def session_seen(self, match: re.Match[bytes]) -> None:
        """Learn what a session line counted from the buffer tells the state.

        Called for every line the engine counts by `session_line` rather than
        feeds, in order. Most grammars keep nothing from a success and need not
        override it; one that does (which connection delivered, say) reads it
        here from the match instead of from the fed line.
        """
        return None

    def finish(self) -> list[Record]:
        """Return what is still pending when the stream ends."""
        return []

    def where(self, lineno: int) -> str:
        """Name a line as ``path:line`` for an event's `source`."""
        return f"{self.stream.name}:{lineno}"
