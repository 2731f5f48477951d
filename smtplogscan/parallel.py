"""Scan inputs in worker processes, one part each, and merge what they find.

A part is a whole input, or a byte range of a large plain file whose grammar
allows it (`Grammar.splittable`). Ranges are cut at line ends. Each range is read
with an overlap before it, so the grammar learns how handshakes that began earlier
started, and after it, so it sees how those near the cut end; it keeps only the
records whose source line lies inside it. Every failure is thus found by exactly
the part that owns its reason line, as a single process would find it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import BinaryIO

from smtplogscan.errors import GrammarError, InputError, ScanError
from smtplogscan.grammar import Stream
from smtplogscan.reader import LineReader
from smtplogscan.registry import Registry, load
from smtplogscan.results import Counts, InputReport, ScanResult
from smtplogscan.scan import (
    BLOCK_SIZE,
    Options,
    grammar_name,
    new_result,
    scan_inputs,
    scan_into,
    stopped_reading,
)
from smtplogscan.sources import Input, is_compressed, open_raw

#: Plain files smaller than this are read whole by one worker.
SPLIT_MIN = 32 << 20
#: How far before and after its range a part reads, for the state at the cuts.
OVERLAP = 4 << 20

_registry: Registry | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """One unit of work: an input, or the byte range [start, end) of one."""

    source: Input
    start: int = 0
    end: int | None = None
    grammar: str | None = None  # known when the input was cut
    #: What the input was when it was cut, a file's inode or an object's
    #: version: a file rotated or an object rewritten since is another input.
    version: int | str | None = None


def scan_parallel(
    inputs: list[Input],
    registry: Registry,
    options: Options,
    result: ScanResult,
    progress: Callable[[int, int], None] | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> None:
    """Scan `inputs` in `options.jobs` processes into `result`, in input order;
    call `meanwhile` once they are started."""
    global _registry
    _registry = registry  # forked workers inherit it; spawned ones load their own
    parts = list(plan(inputs, registry, options))
    if len(parts) < 2:  # not worth a process
        scan_into(inputs, registry, replace(options, jobs=1), result, progress)
        return
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    pool = ProcessPoolExecutor(
        max_workers=options.jobs,
        mp_context=context,
        initializer=_start_worker,
        initargs=(tuple(str(p) for p in registry.paths),),
    )
    try:
        done_parts = pool.map(run_part, parts, [options] * len(parts))
        if meanwhile is not None:
            meanwhile()
        for part, done in zip(parts, done_parts, strict=True):
            merge(result, done, part)
            if progress is not None:
                progress(done.counts.bytes, done.counts.lines)
    except BaseException:
        # Ctrl-C, or a worker that died: stop the others now rather than let
        # them read to the end of their parts.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def plan(inputs: list[Input], registry: Registry, options: Options) -> Iterator[Part]:
    """Cut inputs into parts: large plain files of splittable grammars in ranges."""
    for source in inputs:
        found = _plain(source, SPLIT_MIN, 1 << 16) if options.jobs > 1 else None
        if found is None:
            yield Part(source)
            continue
        size, version, head = found
        grammar = grammar_name(head, registry, options, source.name)
        if grammar is None or not registry.get(grammar).splittable:
            yield Part(source)
            continue
        cuts = _cuts(source, size, options.jobs)
        for start, end in zip(cuts, cuts[1:], strict=False):
            yield Part(source, start, end, grammar, version)


def plain_size(source: Input) -> int:
    """The size of an uncompressed file or object that can be read from any
    offset; 0 for anything else (stdin, an archive, a folder)."""
    found = _plain(source)
    return found[0] if found is not None else 0


def _plain(
    source: Input, minimum: int = 1, head_size: int = 6
) -> tuple[int, int | str, bytes] | None:
    """Return the size, version (see `Part.version`) and first `head_size` bytes
    of an uncompressed file or object of at least `minimum` bytes; None for
    anything else, whose first bytes are then left unread."""
    try:
        found = _stat(source)
        if found is None or found[0] < minimum:
            return None
        with open_raw(source) as handle:
            head = handle.read(head_size)
    except (InputError, OSError, ValueError):
        return None  # read whole, where the fault is reported
    return None if is_compressed(head) else (*found, head)


def _stat(
    source: Input, handle: BinaryIO | None = None
) -> tuple[int, int | str] | None:
    """The size and version of a file or object; None for anything else. With
    `handle`, those of the file it opened, whatever its name is now."""
    if source.url:
        from smtplogscan import remote

        return remote.stat(source.url)
    if handle is not None:
        stat = os.fstat(handle.fileno())
    elif source.path is None or not source.path.is_file():
        return None
    else:
        stat = source.path.stat()
    return stat.st_size, stat.st_ino


def _cuts(source: Input, size: int, pieces: int) -> list[int]:
    """Offsets that split the input into `pieces` ranges, each cut after a newline."""
    cuts = [0]
    with open_raw(source) as handle:
        for n in range(1, pieces):
            handle.seek(size * n // pieces)
            _skip_line(handle)  # to the start of the next line
            cut = handle.tell()
            if cuts[-1] < cut < size:
                cuts.append(cut)
    cuts.append(size)
    return cuts


def _start_worker(paths: tuple[str, ...]) -> None:
    # Ctrl-C goes to the whole process group; the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _registry
    if _registry is None:  # spawned rather than forked
        from pathlib import Path

        _registry = load([Path(p) for p in paths])


def run_part(
    part: Part,
    options: Options,
    registry: Registry | None = None,
    first_line: int = 1,
) -> ScanResult:
    """Scan one part in this process; `registry` defaults to the worker's.

    A byte range numbers its lines from `first_line` at its start: counting the
    lines before it would read them all. `merge` renumbers the lines of a range
    that follows the ranges before it; a caller that knows the number of the
    range's first line says it.
    """
    registry = registry or _registry
    assert registry is not None
    solo = replace(options, jobs=1)
    if part.end is None:
        return scan_inputs([part.source], registry, solo)
    result = new_result(solo)
    report = InputReport(part.source.name, part.grammar or "")
    numbered = first_line
    try:
        numbered = _scan_range(part, registry, solo, report, result)
    except ScanError as err:
        report.error = str(err)
        result.errors.append(err)
    result.inputs.append(report)
    result.counts.add(report.counts)
    # The lines were numbered from 1 where the overlap before the range begins.
    renumber(result, part.source.name, first_line - numbered)
    return result


def _scan_range(
    part: Part,
    registry: Registry,
    options: Options,
    report: InputReport,
    result: ScanResult,
) -> int:
    """Scan a byte range into `result`; return the number its first line got.

    A fault met while reading, or a grammar that fails, ends the range with an
    error in `report` and `result`, keeping what was found before it.
    """
    source, grammar_cls = part.source, registry.get(part.grammar or "")
    assert part.end is not None
    report.mta = grammar_cls.mta
    handle, size = _open_range(part)
    with handle:
        try:
            warm = _line_start(handle, max(0, part.start - OVERLAP))
            stop = _line_start(handle, min(size, part.end + OVERLAP))
            handle.seek(warm)
        except (OSError, ValueError) as err:
            raise stopped_reading(source.name, err) from None
        grammar = grammar_cls(
            Stream(source.name, source.mtime(), options.zone, options.year)
        )
        scratch = Counts()
        own = (part.start - warm, part.end - warm)
        reader = LineReader(grammar, scratch, result, 1, own)
        try:
            fault = _push_blocks(handle, stop - warm, reader, source)
            reader.close()
        except Exception as err:  # a grammar's bug stops its range, not the run
            fault = GrammarError(
                f"{source.name}: grammar {grammar_cls.name} failed in bytes"
                f" {part.start:,} to {part.end:,}: {type(err).__name__}: {err}"
            )
        # Bounds the reader did not come to (after a fault) are the next line.
        lo, hi = (min(n, scratch.lines + 1) for n in reader.owned_lines)

    counts = report.counts
    counts.lines, counts.bytes = hi - lo, part.end - part.start
    counts.candidates, counts.unmatched = scratch.candidates, scratch.unmatched
    counts.cut_lines, counts.evicted = scratch.cut_lines, scratch.evicted
    counts.unmatched_examples = scratch.unmatched_examples
    if fault is not None:
        report.error = str(fault)
        result.errors.append(fault)
    return lo


def _push_blocks(
    handle: BinaryIO, size: int, reader: LineReader, source: Input
) -> ScanError | None:
    """Push the next `size` bytes of `handle` to `reader`; return the read fault
    that stopped it early, if one did."""
    while size > 0:
        try:
            block = handle.read(min(BLOCK_SIZE, size))
        except (OSError, ValueError) as err:
            return stopped_reading(source.name, err)
        if not block:
            break
        size -= len(block)
        reader.push(block)
    return None


def _open_range(part: Part) -> tuple[BinaryIO, int]:
    """Open the input of a range, checked to be the one that was cut; return it
    and its size."""
    source = part.source
    assert part.end is not None
    handle = open_raw(source)
    found = _stat(source, handle)
    size, version = found if found is not None else (0, None)
    if part.version is not None and version != part.version or size < part.end:
        handle.close()
        changed = "rewritten" if source.url else "rotated"
        raise InputError(f"{source.name}: {changed} or truncated while it was read")
    return handle, size


def renumber(result: ScanResult, name: str, by: int) -> None:
    """Add `by` to the line numbers of input `name` in the sources of `result`."""
    if not by:
        return
    prefix = f"{name}:"

    def moved(where: str) -> str:
        line, colon, text = where[len(prefix) :].partition(":")
        if not where.startswith(prefix) or not line.isdigit():
            return where
        return f"{prefix}{int(line) + by}{colon}{text}"

    for event in result.events:
        event.source = moved(event.source)
    for bounce in result.bounces:
        bounce.source = moved(bounce.source)
    for counts in (result.counts, *(i.counts for i in result.inputs if i.name == name)):
        counts.unmatched_examples = [moved(e) for e in counts.unmatched_examples]
    if result.baseline is not None:
        renumber(result.baseline, name, by)


def _line_start(handle: BinaryIO, offset: int) -> int:
    """The offset of the first line that starts at or after `offset`."""
    if offset == 0:
        return 0
    handle.seek(offset - 1)
    _skip_line(handle)
    return int(handle.tell())


def _skip_line(handle: BinaryIO) -> None:
    """Move past the next newline, reading a piece at a time, never a whole line:
    a log can hold a line of hundreds of megabytes."""
    while True:
        start = handle.tell()
        piece = handle.read(1 << 16)
        if not piece:
            return
        end = piece.find(b"\n")
        if end >= 0:
            handle.seek(start + end + 1)
            return


def merge(result: ScanResult, part: ScanResult, where: Part) -> None:
    """Add a part's findings to `result`; the ranges of one input become one input.

    `part` may hold several parts already merged, `where` being the first of
    them: only its first input can continue the last input of `result`.
    """
    last = result.inputs[-1] if result.inputs else None
    first = part.inputs[0] if part.inputs else None
    if where.start > 0 and last and first and last.name == first.name:
        # The next range of the same file numbered its lines from its start.
        renumber(part, first.name, last.counts.lines)
    result.events.extend(part.events)
    result.sessions.update(part.sessions)
    result.deliveries.update(part.deliveries)
    result.bounces.extend(part.bounces)
    result.errors.extend(part.errors)
    result.skipped.extend(part.skipped)
    result.counts.add(part.counts)
    if result.baseline is not None and part.baseline is not None:
        merge(result.baseline, part.baseline, where)
    for index, report in enumerate(part.inputs):
        last = result.inputs[-1] if result.inputs else None
        joins = index == 0 and where.start > 0
        if joins and last is not None and last.name == report.name:
            last.counts.add(report.counts)  # the next range of the same file
            last.error = last.error or report.error
        else:
            result.inputs.append(report)


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
