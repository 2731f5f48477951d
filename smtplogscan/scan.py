"""Read inputs, keep the lines that can matter, and let grammars turn them into records.

The fast path: the input is read in large byte blocks, each block is searched for
the grammar's prefilter literals (and the words ``TLS`` and ``SSL``) with
`bytes.find`, and only the lines that hold a hit are decoded and handed to the
grammar. Every other line is counted and never becomes a Python string.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import BinaryIO, NamedTuple

from smtplogscan.errors import FormatError, InputError, ScanError
from smtplogscan.grammar import Grammar, Stream
from smtplogscan.records import Delivery, Event, Outcome, Record, Success
from smtplogscan.registry import Registry
from smtplogscan.sources import Input, expand, open_input

log = logging.getLogger(__name__)

BLOCK_SIZE = 8 << 20
WINDOW = 256 << 10
#: Longer lines are cut to this many bytes, so one endless line cannot fill memory.
MAX_LINE = 64 << 10
SNIFF_LINES = 64
#: Below this sniff score no grammar is said to recognise an input.
MIN_SNIFF = 0.2
#: How many unmatched TLS-looking lines a report keeps as examples.
KEEP_UNMATCHED = 20
TLS_WORDS = (b"TLS", b"SSL")

_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, ValueError)
try:  # zlib and lzma raise their own errors on corrupt data
    import lzma
    import zlib

    _READ_ERRORS += (zlib.error, lzma.LZMAError)
except ImportError:  # pragma: no cover - both ship with CPython
    pass


@dataclass(slots=True)
class Counts:
    """What a scan read, for the coverage notes of a report."""

    lines: int = 0
    candidates: int = 0
    unmatched: int = 0
    cut_lines: int = 0
    bytes: int = 0
    unmatched_examples: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        """Add the counts of another input to these."""
        self.lines += other.lines
        self.candidates += other.candidates
        self.unmatched += other.unmatched
        self.cut_lines += other.cut_lines
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
        windowed = self.since is not None or self.until is not None
        for record in records:
            # By the record's own time, before it is counted by hour: a window
            # starting 10:30 must not take a session of 10:15.
            if windowed and not self.within(record.time):
                if self.baseline is not None:
                    self.baseline.keep((record,))
                continue
            if isinstance(record, Event):
                self.events.append(record)
            elif isinstance(record, Success):
                peer = record.peer
                self.sessions[
                    SessionKey(
                        record.host,
                        record.mta,
                        str(record.direction),
                        peer.addr,
                        peer.name,
                        record.protocol,
                        record.cipher,
                        self._hour(record.time),
                    )
                ] += 1
            elif record.status is Outcome.BOUNCED and record.queue_id:
                self.bounces.append(record)
            else:
                self.count_delivery(record)

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

    def within(self, when: datetime | None) -> bool:
        """Say whether a record of this time belongs in the window."""
        if when is None:
            return True
        if when.tzinfo is None:  # a plugin's naive time: the machine's local time
            when = when.astimezone()
        if self.since is not None and when < self.since:
            return False
        return self.until is None or when < self.until


@dataclass(frozen=True, slots=True)
class Options:
    """How to read: which grammar, which zone and year for stamps that lack them."""

    grammar: str | None = None
    zone: tzinfo | None = None
    year: int | None = None
    #: Keep only records from `since` (included) to `until` (excluded).
    since: datetime | None = None
    until: datetime | None = None
    #: Send records outside that window but inside this one (since, until) to
    #: `ScanResult.baseline`, so that one scan feeds a comparison.
    baseline: tuple[datetime | None, datetime | None] | None = None
    #: Worker processes; 1 reads everything in this process.
    jobs: int = 1
    #: ``local`` (this machine's processes) or ``dask`` (tasks on a Dask cluster).
    engine: str = "local"
    #: The Dask scheduler's address; None starts a local cluster of `jobs` workers.
    scheduler: str | None = None


def scan(
    paths: Sequence[str],
    registry: Registry,
    options: Options = Options(),
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Scan every input named by `paths`; errors are collected, never raised.

    `progress` is called after each block with the bytes and lines it held.
    """
    result = new_result(options)
    inputs, errors = expand(paths)
    result.errors.extend(errors)
    if options.engine == "dask" and inputs:
        from smtplogscan.dask_engine import scan_dask

        scan_dask(inputs, registry, options, result)
    elif options.jobs > 1 and len(inputs) > 0 and not any(i.is_stdin for i in inputs):
        from smtplogscan.parallel import scan_parallel

        scan_parallel(inputs, registry, options, result, progress)
    else:
        scan_into(inputs, registry, options, result, progress)
    settle_bounces(result)
    if result.baseline is not None:
        settle_bounces(result.baseline)
    return result


def new_result(options: Options) -> ScanResult:
    """An empty result with the time window (and baseline) of `options`."""
    result = ScanResult(since=options.since, until=options.until)
    if options.baseline is not None:
        result.baseline = ScanResult(
            since=options.baseline[0], until=options.baseline[1]
        )
    return result


def scan_inputs(
    inputs: Sequence[Input], registry: Registry, options: Options
) -> ScanResult:
    """Scan `inputs` in this process, leaving bounces for the caller to settle."""
    result = new_result(options)
    scan_into(inputs, registry, options, result, None)
    return result


def scan_into(
    inputs: Sequence[Input],
    registry: Registry,
    options: Options,
    result: ScanResult,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Scan `inputs` one after the other in this process, into `result`."""
    for source in inputs:
        report = InputReport(source.name)
        try:
            # Records go straight into the result, so that what was read
            # before a fault is kept.
            _scan_input(source, registry, options, report, result.keep, progress)
        except FormatError as err:
            if source.found:
                result.skipped.append(source.name)
                continue
            report.error = str(err)
            result.errors.append(err)
        except ScanError as err:
            report.error = str(err)
            result.errors.append(err)
        result.inputs.append(report)
        result.counts.add(report.counts)


def settle_bounces(result: ScanResult) -> None:
    """Mark the last failure before each bounce of the same mail as bounced.

    A mail that failed TLS, waited in the queue and expired is logged as bounced
    far from its failures (qmgr's ``status=expired``), often in another part of
    a parallel scan; linking them here gives the same answer either way.
    """
    last: dict[str, Event] = {}
    in_order: list[tuple[tuple[str, int], int, Event | Delivery]] = [
        *((line_order(e.source), 0, e) for e in result.events if e.queue_id),
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


def _scan_input(
    source: Input,
    registry: Registry,
    options: Options,
    report: InputReport,
    keep: Callable[[Iterable[Record]], None],
    progress: Callable[[int, int], None] | None,
) -> None:
    stream = open_input(source)
    try:
        block, fault = _read(stream, source)
        if fault is not None and not block:
            raise fault
        grammar_cls = _choose(block, registry, options, source)
        report.grammar, report.mta = grammar_cls.name, grammar_cls.mta
        grammar = grammar_cls(
            Stream(source.name, source.mtime(), options.zone, options.year)
        )
        reader = LineReader(grammar, report.counts, keep)
        while block:
            lines = report.counts.lines
            reader.push(block)
            if progress is not None:
                progress(len(block), report.counts.lines - lines)
            if fault is not None:
                break
            block, fault = _read(stream, source)
        reader.close()
        if fault is not None:
            raise fault
    finally:
        stream.close()


def _read(stream: BinaryIO, source: Input) -> tuple[bytes, InputError | None]:
    """Read the next block; on a fault, return what came before it and the fault."""
    parts: list[bytes] = []
    size = 0
    # read1 hands over what a decompressor has so far, so the part of a
    # truncated or corrupt archive before the damage is not lost with it.
    read = getattr(stream, "read1", stream.read)
    try:
        while size < BLOCK_SIZE:
            chunk = read(BLOCK_SIZE - size)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
    except _READ_ERRORS as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return b"".join(parts), InputError(f"{source.name}: stopped reading: {reason}")
    return b"".join(parts), None


def _choose(
    first: bytes, registry: Registry, options: Options, source: Input
) -> type[Grammar]:
    if options.grammar:
        return registry.get(options.grammar)
    if not first:
        raise FormatError(f"{source.name}: empty input")
    head = [
        line.decode("utf-8", "replace").rstrip("\r")
        for line in first[: 1 << 16].split(b"\n")[:SNIFF_LINES]
    ]
    return detect(head, registry, source.name)


def detect(lines: Sequence[str], registry: Registry, name: str) -> type[Grammar]:
    """Return the grammar that scores `lines` highest, or raise FormatError."""
    best: tuple[float, type[Grammar] | None] = (0.0, None)
    for loaded in registry.grammars.values():
        try:
            score = float(loaded.grammar.sniff(lines))
        except Exception as err:  # a plugin's bug must not stop the scan
            log.warning(
                "grammar %s failed to sniff %s: %s", loaded.grammar.name, name, err
            )
            continue
        if score > best[0]:
            best = (score, loaded.grammar)
    if best[1] is None or best[0] < MIN_SNIFF:
        raise FormatError(
            f"{name}: no grammar recognises this input; name one with --grammar"
        )
    return best[1]


def line_of(source: str) -> int:
    """Return the line number of a ``path:line`` source, 0 if it has none."""
    line = source.rpartition(":")[2]
    return int(line) if line.isdigit() else 0


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
        self._carry = self._bound(data[end:])
        self._lines(data, end)

    def close(self) -> None:
        """Feed the last, unterminated line and let the grammar flush its state."""
        if self._closed:
            return
        self._closed = True
        if self._carry:
            self._lines(self._carry + b"\n", len(self._carry) + 1)
            self._carry = b""
        self._emit(self.grammar.finish())

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
        counts, grammar = self.counts, self.grammar
        feed = grammar.feed
        starts = self._hits(data, end, (*self.needles, *self._follow), begin)
        pos, index = begin, 0
        while index < len(starts):
            start = starts[index]
            index += 1
            lineno += data.count(b"\n", pos, start)
            pos = start
            stop = data.find(b"\n", start, end)
            raw = data[start:stop]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            line = raw.decode("utf-8", "replace")
            records = feed(line, lineno)
            if self._own is not None and not self._own[0] <= lineno < self._own[1]:
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
                starts = starts[:index] + self._refollow(
                    data, stop + 1, end, starts[index:]
                )
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
