"""Split byte blocks into lines and feed the lines that can matter to a grammar.

Each block is searched for the grammar's prefilter literals (and the words
``TLS`` and ``SSL``) with `bytes.find`, and only the lines that hold a hit are
decoded and handed to the grammar. Every other line is counted and never becomes
a Python string.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from smtplogscan.grammar import Grammar
from smtplogscan.records import Record
from smtplogscan.results import KEEP_UNMATCHED, Counts, line_order

WINDOW = 256 << 10
#: Longer lines are cut to this many bytes, so one endless line cannot fill memory.
MAX_LINE = 64 << 10
TLS_WORDS = (b"TLS", b"SSL")


def line_of(source: str) -> int:
    """Return the line number of a ``path:line`` source, 0 if it has none."""
    return line_order(source)[1]


class LineReader:
    """Split byte blocks into lines and feed the lines that can matter to a grammar."""

    def __init__(
        self,
        grammar: Grammar,
        counts: Counts,
        keep: Callable[[Iterable[Record]], None],
        first_line: int = 1,
        own: tuple[int, int] | None = None,
    ) -> None:
        """Read lines numbered from `first_line`.

        With `own` = (lo, hi), only lines lo <= n < hi are this reader's: only
        they are counted as candidates or unmatched, and only records whose
        source line lies there are kept. The lines around them are still fed,
        so that the grammar learns how handshakes began and how they end.
        """
        self.grammar = grammar
        self.counts = counts
        self._keep = keep
        self._line = first_line - 1  # lines read so far, before first_line too
        self._own = own
        self.needles = tuple(
            dict.fromkeys((*TLS_WORDS, *(w.encode() for w in grammar.prefilter)))
        )
        self._follow_version = grammar.follow_version
        self._follow = self._follow_needles()
        self._carry = b""
        self._skipping = False  # inside the rest of a line that was cut
        self._closed = False

    def push(self, block: bytes) -> None:
        """Take the next block of the stream."""
        self.counts.bytes += len(block)
        data = self._carry + block if self._carry else block
        end = data.rfind(b"\n") + 1
        if end == 0:
            self._carry = self._bound(data)
            return
        self._lines(data, end)  # before the tail: a cut tail skips what follows it
        self._carry = self._bound(data[end:])

    def close(self) -> None:
        """Feed the last, unterminated line and let the grammar flush its state."""
        if self._closed:
            return
        self._closed = True
        if self._carry or self._skipping:  # a cut line ends with the stream
            self._lines(self._carry + b"\n", len(self._carry) + 1)
            self._carry = b""
        self._emit(self.grammar.finish())
        self.counts.evicted += self.grammar.evicted

    def _bound(self, tail: bytes) -> bytes:
        # A line longer than MAX_LINE keeps its first MAX_LINE bytes; the rest
        # of it is dropped as it arrives.
        if len(tail) <= MAX_LINE:
            return tail
        if not self._skipping:
            self.counts.cut_lines += 1
            self._lines(tail[:MAX_LINE] + b"\n", MAX_LINE + 1)
            self.counts.lines -= 1  # the line is counted once, when it ends
            self._line -= 1
            self._skipping = True
        return b""

    def _lines(self, data: bytes, end: int) -> None:
        lineno = self._line + 1
        begin = 0
        if self._skipping:
            # The first line of this block ends a line already fed in part.
            begin = data.find(b"\n") + 1
            lineno += 1
            self._skipping = False
        newlines = data.count(b"\n", 0, end)
        self.counts.lines += newlines
        self._line += newlines

        # Windows of about WINDOW bytes, cut at line ends: a literal the grammar
        # starts to watch is then searched for in the rest of one window, not of
        # the whole block.
        while begin < end:
            stop = data.find(b"\n", min(begin + WINDOW, end) - 1, end) + 1
            lineno = self._window(data, begin, stop, lineno)
            begin = stop

    def _window(self, data: bytes, begin: int, end: int, lineno: int) -> int:
        """Feed the hit lines of data[begin:end]; return the number of the next line."""
        counts, grammar, emit = self.counts, self.grammar, self._emit
        feed = grammar.feed
        lo, hi = self._own or (0, 1 << 62)
        starts = self._hits(data, end, (*self.needles, *self._follow), begin)
        pos, index, candidates = begin, 0, 0
        while index < len(starts):
            start = starts[index]
            index += 1
            lineno += data.count(b"\n", pos, start)
            pos = start
            stop = data.find(b"\n", start, end)
            raw = data[start:stop]
            if len(raw) > MAX_LINE:  # a long line inside one block is cut too
                raw = raw[:MAX_LINE]
                counts.cut_lines += 1
            elif raw.endswith(b"\r"):
                raw = raw[:-1]
            line = raw.decode("utf-8", "replace")
            records = feed(line, lineno)
            if not lo <= lineno < hi:
                pass  # a line of the overlap: fed for its state, counted elsewhere
            elif records is None:
                candidates += 1
                counts.unmatched += 1
                if len(counts.unmatched_examples) < KEEP_UNMATCHED:
                    where = grammar.where(lineno)
                    counts.unmatched_examples.append(f"{where}: {line[:300]}")
            else:
                candidates += 1
            if records:
                emit(records)
            if grammar.follow_version != self._follow_version:
                starts = starts[:index] + self._refollow(
                    data, stop + 1, end, starts[index:]
                )
        counts.candidates += candidates
        return lineno + data.count(b"\n", pos, end)

    def _emit(self, records: Iterable[Record]) -> None:
        if self._own is not None:
            lo, hi = self._own
            records = [r for r in records if lo <= line_of(r.source) < hi]
        self._keep(records)

    def _follow_needles(self) -> tuple[bytes, ...]:
        return tuple(w.encode() for w in self.grammar.follow)

    def _refollow(
        self, data: bytes, begin: int, end: int, rest: list[int]
    ) -> list[int]:
        """Take up the grammar's new follow literals for the rest of the block."""
        old = set(self._follow)
        self._follow_version = self.grammar.follow_version
        self._follow = self._follow_needles()
        new = [n for n in self._follow if n not in old]
        if not new:
            return rest
        return sorted(set(rest).union(self._hits(data, end, new, begin)))

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
