"""Read inputs and let grammars turn them into records: the scan entry point.

Inputs are read in large byte blocks and handed to a `LineReader`, which feeds a
grammar only the lines that can matter; records go straight into a `ScanResult`,
so that what was read before a fault is kept. With more than one job, or the
Dask engine, the same work is spread over processes (see `parallel`).
"""

from __future__ import annotations

import logging
import lzma
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import BinaryIO

from smtplogscan.errors import FormatError, GrammarError, InputError, ScanError
from smtplogscan.grammar import Grammar, Stream
from smtplogscan.reader import LineReader
from smtplogscan.registry import Registry
from smtplogscan.results import InputReport, ScanResult, settle_bounces
from smtplogscan.sources import Input, expand, open_input

log = logging.getLogger(__name__)

#: Blocks small enough to stay in a core's cache while the reader goes over them.
BLOCK_SIZE = 1 << 20
SNIFF_LINES = 64
#: Below this sniff score no grammar is said to recognise an input.
MIN_SNIFF = 0.2

# zlib and lzma raise errors of their own on corrupt data.
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)


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
    meanwhile: Callable[[], object] | None = None,
) -> ScanResult:
    """Scan every input named by `paths`; errors are collected, never raised.

    `progress` is called after each block with the bytes and lines it held.
    `meanwhile` is called once while worker processes scan, if any do, for work
    of this process that can overlap theirs (the CLI imports what its report
    needs).
    """
    result = new_result(options)
    inputs, errors = expand(paths)
    result.errors.extend(errors)
    if options.engine == "dask" and inputs:
        from smtplogscan.dask_engine import scan_dask

        scan_dask(inputs, registry, options, result)
    elif options.jobs > 1 and len(inputs) > 0 and not any(i.is_stdin for i in inputs):
        from smtplogscan.parallel import scan_parallel

        scan_parallel(inputs, registry, options, result, progress, meanwhile)
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
            _scan_input(source, registry, options, report, result, progress)
        except FormatError as err:
            if source.found:
                result.skipped.append(source.name)
                continue
            report.error = str(err)
            result.errors.append(err)
        except ScanError as err:
            report.error = str(err)
            result.errors.append(err)
        except Exception as err:  # a grammar's bug stops its input, not the run
            failure = GrammarError(
                f"{source.name}: grammar {report.grammar or '?'} failed after"
                f" {report.counts.lines:,} lines: {type(err).__name__}: {err}"
            )
            log.debug("grammar failure", exc_info=True)
            report.error = str(failure)
            result.errors.append(failure)
        result.inputs.append(report)
        result.counts.add(report.counts)


def _scan_input(
    source: Input,
    registry: Registry,
    options: Options,
    report: InputReport,
    result: ScanResult,
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
        reader = LineReader(grammar, report.counts, result)
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
        return b"".join(parts), stopped_reading(source.name, err)
    return b"".join(parts), None


def stopped_reading(name: str, err: Exception) -> InputError:
    """The error of input `name` whose reading `err` stopped."""
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return InputError(f"{name}: stopped reading: {reason}")


def _choose(
    first: bytes, registry: Registry, options: Options, source: Input
) -> type[Grammar]:
    if options.grammar:
        return registry.get(options.grammar)
    if not first:
        raise FormatError(f"{source.name}: empty input")
    return detect(_head_lines(first), registry, source.name)


def grammar_name(
    head: bytes, registry: Registry, options: Options, name: str
) -> str | None:
    """Name the grammar that reads the input `name` whose first bytes are `head`:
    the one `options` names, or the one that recognises them; None if none does."""
    if options.grammar:
        return options.grammar
    try:
        return detect(_head_lines(head), registry, name).name
    except FormatError:
        return None


def _head_lines(head: bytes) -> list[str]:
    """The first lines of an input, as the grammars sniff them."""
    return [
        line.decode("utf-8", "replace").rstrip("\r")
        for line in head[: 1 << 16].split(b"\n")[:SNIFF_LINES]
    ]


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
