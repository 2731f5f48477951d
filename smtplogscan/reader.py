"""Split byte blocks into lines and feed the lines that can matter to a grammar.

Each window of a block (about `WINDOW` bytes, cut at a line end) is searched once
for all the literals that can matter, the grammar's `prefilter` and the words
``TLS`` and ``SSL``, with an Aho-Corasick automaton (``ahocorasick_rs``); only
the lines that hold a hit become Python objects. Lines of a successful session,
the bulk of the hits in a busy log, are counted from the buffer when the grammar
names their shape (`Grammar.session_line`); the others are decoded and fed. When
the grammar also cuts that shape in two at its marker (`Grammar.session_head`),
a session line costs two slices and two lookups: its head is matched once per
shape (digits read as 0-5 or 6-9) and its tail once per distinct tail.
Literals the grammar watches for a while (`Grammar.watch`) are few and change
often, so they are searched with `bytes.find` instead.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable, Iterable
from functools import cache, lru_cache
from operator import itemgetter
from typing import Any, Literal

from ahocorasick_rs import BytesAhoCorasick, MatchKind

from smtplogscan.grammar import Grammar
from smtplogscan.records import Record
from smtplogscan.results import KEEP_UNMATCHED, Counts, Place, ScanResult, line_order

WINDOW = 256 << 10
#: Longer lines are cut to this many bytes, so one endless line cannot fill memory.
MAX_LINE = 64 << 10
TLS_WORDS = ("TLS", "SSL")
#: Sessions counted by their groups: a tuple of them, or with a cut pattern the
#: head's group and a tuple of the tail's (see `_Parts`).
Tally = dict[tuple[Any, ...], int]
#: Where the session lines of a stamp that names no real time go: to `feed`,
#: which counts them as not understood.
_FEED: Tally = {}


def line_of(source: str) -> int:
    """Return the line number of a ``path:line`` source, 0 if it has none."""
    return line_order(source)[1]


@lru_cache(maxsize=64)
def _automaton(
    needles: tuple[bytes, ...],
) -> Callable[[memoryview], list[tuple[int, int, int]]]:
    # Leftmost-first: where the session marker (listed first) and "TLS" start
    # at the same byte, the hit is the marker's.
    found = BytesAhoCorasick(list(needles), matchkind=MatchKind.LeftmostFirst)
    return found.find_matches_as_indexes


_NEVER = 1 << 62  # a line number or offset no stream reaches

#: The stamp of the session lines before the first: no line holds a newline.
_NO_STAMP = b"\n"
#: A session head's shape: digits 0-5 written 0, 6-9 written 9.
_SHAPE = bytes.maketrans(b"0123456789", b"0000009999")
#: How many head shapes, and how many tails, a reader remembers; past that it
#: forgets them all and learns them again. Longer heads and tails than
#: _REMEMBER_BYTES (none that a real session line has) are matched each time,
#: so that hostile lines cannot fill memory: at most 8 MiB in all.
_REMEMBER = 1 << 13
_REMEMBER_BYTES = 512
#: What a head shape tells: where the stamp ends, how to take out the groups
#: that name its minute (a group that takes no part reads as empty), and the
#: span of the head's session group.
Shape = tuple[int, Callable[[bytes], object], int, int]


class _Parts:
    """The heads and tails of session lines read so far, for a grammar that cuts
    its session pattern in two (`Grammar.session_head`, `Grammar.session_tail`).

    `heads` maps a head's shape to what the head pattern found in it (False:
    not a session head); `tails` maps a tail to its groups (False: not a
    session tail). Both are only read by the caller; misses go to `head` and
    `tail`, which remember what they find.
    """

    def __init__(self, grammar: Grammar, minute: tuple[str, ...]) -> None:
        head, tail = grammar.session_head, grammar.session_tail
        fault = grammar.cut_pattern_fault()
        if fault:
            raise TypeError(f"grammar {grammar.name}: {fault}")
        assert head is not None and tail is not None
        first, *rest = grammar.session_groups
        self._head, self._tail = head.fullmatch, tail.match
        self._minute, self._first, self._rest = minute, first, tuple(rest)
        self.heads: dict[bytes, Shape | Literal[False]] = {}
        self.tails: dict[bytes, tuple[bytes | None, ...] | Literal[False]] = {}

    def head(self, head: bytes) -> Shape | Literal[False]:
        match = self._head(head)
        shape: Shape | Literal[False] = False
        if (
            match is not None
            and match.start("stamp") == 0
            and match.start(self._first) >= 0
        ):
            shape = (
                match.end("stamp"),
                itemgetter(*(slice(*match.span(g)) for g in self._minute)),
                *match.span(self._first),
            )
        _remember(self.heads, head.translate(_SHAPE), shape)
        return shape

    def tail(self, tail: bytes) -> tuple[bytes | None, ...] | Literal[False]:
        match = self._tail(tail)
        groups: tuple[bytes | None, ...] | Literal[False] = False
        if match is not None:
            groups = tuple(match[g] for g in self._rest)
        _remember(self.tails, tail, groups)
        return groups


def _remember(memo: dict[bytes, Any], key: bytes, value: object) -> None:
    """Keep `value` under `key`, forgetting all of `memo` once it is full; a
    key longer than _REMEMBER_BYTES is not kept."""
    if len(key) > _REMEMBER_BYTES:
        return
    if len(memo) >= _REMEMBER:
        memo.clear()
    memo[key] = value


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@cache
def keep_freed_blocks() -> None:
    """Let this process reuse the memory of the blocks it has read.

    Readers take a block of megabytes every few milliseconds and drop it soon
    after. By default glibc maps blocks that large afresh, or hands the top of
    its heap back to the kernel once they are freed, so that every block is
    read into newly zeroed pages: a page fault each 4 KiB, a fifth of the time
    of a scan. Keeping up to 64 MiB of freed heap avoids that. Elsewhere than
    glibc this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # musl has no mallopt
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)  # glibc's ceiling for it
    mallopt(_M_TRIM_THRESHOLD, 64 << 20)


class LineReader:
    """Split byte blocks into lines and feed the lines that can matter to a grammar."""

    def __init__(
        self,
        grammar: Grammar,
        counts: Counts,
        into: ScanResult,
        first_line: int = 1,
        own: tuple[int, int] | None = None,
    ) -> None:
        """Read lines numbered from `first_line`, keeping what they hold in `into`.

        With `own` = (start, end), only the lines that start at offsets start
        <= offset < end from where the reader began (both line starts) are this
        reader's: only they are counted as candidates or unmatched, and only
        records whose source line is one of them are kept. The lines around
        them are still fed, so that the grammar learns how handshakes began and
        how they end.
        """
        keep_freed_blocks()
        self.grammar = grammar
        self.counts = counts
        self._into = into
        self._line = first_line - 1  # lines read so far, before first_line too
        self._own = own or (0, _NEVER)
        # The numbers of the first line owned and of the first one after them,
        # known once the reader has come to their offsets.
        self.owned_lines = (_NEVER, _NEVER)
        self._offset = 0  # the stream offset of the next block
        marker = grammar.session_marker if grammar.session_line is not None else ""
        words = (
            (marker, *TLS_WORDS, *grammar.prefilter)
            if marker
            else (*TLS_WORDS, *grammar.prefilter)
        )
        self.needles = tuple(dict.fromkeys(w.encode() for w in words))
        self._find = _automaton(self.needles)
        self._marked = 0 if marker else -1  # the needle index of session lines
        self._follow_version = grammar.follow_version
        self._follow = self._follow_needles()
        # Sessions counted from the buffer: place -> groups -> lines. `_tally` is
        # where the sessions of the last stamp (`_stamp`) go: None if nowhere.
        self._tallies: dict[Place, Tally] = {}
        self._tally: Tally | None = _FEED
        self._stamp = _NO_STAMP
        # With bounds on whole minutes, sessions of one minute go to one place,
        # and a stamp needs reading once a minute rather than once a second.
        self._minute: object = None
        minute = grammar.session_minute if into.bounds_on_minutes() else ()
        # Groups by number: a match finds them faster than by name.
        number = grammar.session_line.groupindex if grammar.session_line else None
        self._groups: tuple[int, ...] = ()
        self._minute_groups: tuple[int, ...] = ()
        if number is not None:
            self._groups = tuple(number[g] for g in grammar.session_groups)
            self._minute_groups = tuple(number[g] for g in minute or ("stamp",))
        # The grammar's session_seen, when it learns from counted lines.
        overridden = type(grammar).session_seen is not Grammar.session_seen
        self._seen = grammar.session_seen if overridden else None
        # A session pattern cut in two; not for a grammar that needs each match.
        cut = grammar.session_head is not None and grammar.session_tail is not None
        self._parts = (
            _Parts(grammar, minute or ("stamp",))
            if cut and number is not None and self._seen is None
            else None
        )
        self._carry = b""
        self._skipping = False  # inside the rest of a line that was cut
        self._closed = False

    def push(self, block: bytes) -> None:
        """Take the next block of the stream."""
        self.counts.bytes += len(block)
        base = self._offset - len(self._carry)
        self._offset += len(block)
        data = self._carry + block if self._carry else block
        end = data.rfind(b"\n") + 1
        if end == 0:
            self._carry = self._bound(data, base)
            return
        self._lines(data, end, base)  # before the tail: a cut tail skips what follows
        self._carry = self._bound(data[end:], base + end)

    def close(self) -> None:
        """Feed the last, unterminated line and let the grammar flush its state."""
        if self._closed:
            return
        self._closed = True
        if self._carry or self._skipping:  # a cut line ends with the stream
            base = self._offset - len(self._carry)
            self._lines(self._carry + b"\n", len(self._carry) + 1, base)
            self._carry = b""
        if self._own[1] < _NEVER:  # a part that the stream ended inside
            lo, hi = self.owned_lines
            self.owned_lines = (min(lo, self._line + 1), min(hi, self._line + 1))
        self._emit(self.grammar.finish())
        self.counts.evicted += self.grammar.evicted
        session_of, count = self.grammar.session_of, self._into.count_sessions
        cut = self._parts is not None
        for place, tally in self._tallies.items():
            for key, n in tally.items():
                groups = (key[0], *key[1]) if cut else key
                count(session_of(groups), place, n)
        self._tallies.clear()

    def _bound(self, tail: bytes, base: int) -> bytes:
        # A line longer than MAX_LINE keeps its first MAX_LINE bytes; the rest
        # of it is dropped as it arrives.
        if len(tail) <= MAX_LINE:
            return tail
        if not self._skipping:
            self.counts.cut_lines += 1
            self._lines(tail[:MAX_LINE] + b"\n", MAX_LINE + 1, base)
            self.counts.lines -= 1  # the line is counted once, when it ends
            self._line -= 1
            self._skipping = True
        return b""

    def _lines(self, data: bytes, end: int, base: int) -> None:
        """Read the lines of data[:end]; `base` is the stream offset of data[0]."""
        lineno = self._line + 1
        begin = 0
        if self._skipping:
            # The first line of this block ends a line already fed in part.
            begin = data.find(b"\n") + 1
            lineno += 1
            self._skipping = False

        # Windows of about WINDOW bytes, cut at line ends: a literal the grammar
        # starts to watch is then searched for in the rest of one window, not of
        # the whole block.
        view = memoryview(data)
        mine = (self._own[0] - base, self._own[1] - base)  # the owned bytes of data
        self._number_owned(data, begin, end, lineno, mine)
        while begin < end:
            stop = data.find(b"\n", min(begin + WINDOW, end) - 1, end) + 1
            lineno = self._window(data, view[begin:stop], begin, stop, lineno, mine)
            begin = stop
        # The windows counted the lines of data[:end] as they went.
        self.counts.lines += lineno - 1 - self._line
        self._line = lineno - 1

    def _number_owned(
        self, data: bytes, begin: int, end: int, lineno: int, mine: tuple[int, int]
    ) -> None:
        """Learn the numbers of the owned lines' bounds that lie in data[:end]."""
        lo, hi = self.owned_lines
        if lo == _NEVER and mine[0] <= end:
            lo = lineno + data.count(b"\n", begin, max(begin, mine[0]))
        if hi == _NEVER and mine[1] <= end:
            hi = lineno + data.count(b"\n", begin, max(begin, mine[1]))
        self.owned_lines = (lo, hi)

    def _window(
        self,
        data: bytes,
        view: memoryview,
        begin: int,
        end: int,
        lineno: int,
        mine: tuple[int, int],
    ) -> int:
        """Read the hit lines of data[begin:end], the first numbered `lineno`;
        return the number of the line after them."""
        find, rfind, count = data.find, data.rfind, data.count
        lo, hi = mine
        grammar, marked = self.grammar, self._marked
        session = grammar.session_line.match if grammar.session_line else None
        seen = self._seen
        groups, minute_groups = self._groups, self._minute_groups
        parts = self._parts
        heads, tails = (parts.heads, parts.tails) if parts else ({}, {})
        pending = grammar.pending
        # Watched lines to read, ending with a start no line has.
        follow = [*self._hits(data, end, self._follow, begin), _NEVER]
        next_follow = 0
        floor = begin - 1 if begin else 0  # the newline before the window
        # Lines are numbered up to `pos`; hits before `last` are on lines read.
        pos = last = begin
        candidates = 0
        stamp, minute, tally = self._stamp, self._minute, self._tally
        for needle, at, _ in self._find(view):
            at += begin
            if at < last:
                continue
            start = rfind(b"\n", floor, at) + 1
            watched = False
            while follow[next_follow] <= start:
                if follow[next_follow] < start:  # a watched line without a needle
                    lineno += count(b"\n", pos, follow[next_follow])
                    pos = follow[next_follow]
                    follow = self._read(data, pos, end, lineno, follow, next_follow)
                else:
                    watched = True
                next_follow += 1
            last = find(b"\n", at, end) + 1
            if needle == marked and not pending and not watched:
                if parts is not None:
                    # The cut pattern: the head by its shape, the tail as it is.
                    head = data[start:at]
                    shape = heads.get(head.translate(_SHAPE))
                    if shape is None:
                        shape = parts.head(head)
                    tail = data[at : last - 1]
                    rest = tails.get(tail)
                    if rest is None:
                        rest = parts.tail(tail)
                    if shape and rest is not False and last - start <= MAX_LINE:
                        stamp_end, minute_of, first, stop = shape
                        if stamp_end != len(stamp) or not data.startswith(stamp, start):
                            stamp = head[:stamp_end]
                            this = minute_of(head)
                            if this != minute:
                                minute = this
                                tally = self._tally_of(stamp)
                        if tally is not _FEED:
                            if lo <= start < hi:
                                candidates += 1
                                if tally is not None:
                                    pair = (head[first:stop], rest)
                                    tally[pair] = tally.get(pair, 0) + 1
                            continue
                elif session is not None:
                    match = session(data, start, last - 1)
                    if match is not None and last - start <= MAX_LINE:
                        if match["stamp"] != stamp:
                            stamp = match["stamp"]
                            if match.group(*minute_groups) != minute:
                                minute = match.group(*minute_groups)
                                tally = self._tally_of(stamp)
                        if tally is not _FEED:
                            if seen is not None:
                                seen(match)
                            if lo <= start < hi:
                                candidates += 1
                                if tally is not None:
                                    key = match.group(*groups)
                                    tally[key] = tally.get(key, 0) + 1
                            continue
            lineno += count(b"\n", pos, start)
            pos = start
            follow = self._read(data, start, end, lineno, follow, next_follow)
        while follow[next_follow] < _NEVER:
            lineno += count(b"\n", pos, follow[next_follow])
            pos = follow[next_follow]
            next_follow += 1
            follow = self._read(data, pos, end, lineno, follow, next_follow)
        self._stamp, self._minute, self._tally = stamp, minute, tally
        self.counts.candidates += candidates
        return lineno + count(b"\n", pos, end)

    def _tally_of(self, stamp: bytes) -> Tally | None:
        """Return the count that the sessions of a new stamp go to (None: none);
        _FEED when the stamp names no real time, so that its lines are fed."""
        try:
            when = self.grammar.stamp_time(stamp)
        except ValueError:
            return _FEED
        place = self._into.place(when)
        return None if place is None else self._tallies.setdefault(place, {})

    def _read(
        self,
        data: bytes,
        start: int,
        end: int,
        lineno: int,
        follow: list[int],
        done: int,
    ) -> list[int]:
        """Decode and feed the line at `start`; return the watched lines still
        to read after index `done`, updated if the grammar now watches others."""
        counts, grammar = self.counts, self.grammar
        stop = data.find(b"\n", start, end)
        raw = data[start:stop]
        if len(raw) > MAX_LINE:  # a long line inside one block is cut too
            raw = raw[:MAX_LINE]
            counts.cut_lines += 1
        elif raw.endswith(b"\r"):
            raw = raw[:-1]
        line = raw.decode("utf-8", "replace")
        records = grammar.feed(line, lineno)
        lo, hi = self.owned_lines
        if not lo <= lineno < hi:
            pass  # a line of the overlap: fed for its state, counted elsewhere
        elif records is None:
            counts.candidates += 1
            counts.unmatched += 1
            if len(counts.unmatched_examples) < KEEP_UNMATCHED:
                where = grammar.where(lineno)
                counts.unmatched_examples.append(f"{where}: {line[:300]}")
        else:
            counts.candidates += 1
        if records:
            self._emit(records)
        if grammar.follow_version != self._follow_version:
            return self._refollow(data, stop + 1, end, follow, done)
        return follow

    def _emit(self, records: Iterable[Record]) -> None:
        lo, hi = self.owned_lines
        if lo > 1 or hi < _NEVER:
            records = [r for r in records if lo <= line_of(r.source) < hi]
        self._into.keep(records)

    def _follow_needles(self) -> tuple[bytes, ...]:
        return tuple(w.encode() for w in self.grammar.follow)

    def _refollow(
        self, data: bytes, begin: int, end: int, follow: list[int], done: int
    ) -> list[int]:
        """Take up the grammar's new watched literals for the rest of the window."""
        old = set(self._follow)
        self._follow_version = self.grammar.follow_version
        self._follow = self._follow_needles()
        new = [n for n in self._follow if n not in old]
        if not new:
            return follow
        rest = set(follow[done:]).union(self._hits(data, end, new, begin))
        return follow[:done] + sorted(rest)

    @staticmethod
    def _hits(
        data: bytes, end: int, needles: Iterable[bytes], begin: int = 0
    ) -> list[int]:
        """Return the start of every line in data[begin:end] that holds a needle."""
        starts: set[int] = set()
        find, rfind = data.find, data.rfind
        for needle in needles:
            pos = find(needle, begin, end)
            while pos != -1:
                start = rfind(b"\n", 0, pos) + 1
                starts.add(start)
                stop = find(b"\n", pos, end)
                pos = find(needle, stop, end)
        return sorted(starts)
