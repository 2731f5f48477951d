"""Keep what each run found in a Parquet history, so trends need no old logs.

Layout under the store's folder, partitioned by the UTC day of each record in the
hive style that Dask, pandas and pyarrow read (``day=undated`` holds records with
no time)::

    events/day=2026-12-03/<input>-<first line>-<last line>.parquet
    sessions/day=2026-12-03/...     successful TLS sessions, counted by peer and hour
    deliveries/day=2026-12-03/...   deferred and bounced deliveries, likewise
    inputs.json                     how far each input has been stored

**What is stored once.** Sessions and deliveries are counts per hour, not single
records, so no identity per record could tell a count read twice from one that
grew. The unit of identity is therefore a stretch of lines of an input. An input
is known by a fingerprint of its first 4 KiB of (decompressed) content, not by its
name: a log renamed or compressed by rotation (``mail.log`` -> ``mail.log.1`` ->
``mail.log.2.gz``) or copied elsewhere is the same input. ``inputs.json`` holds,
for each fingerprint, how many lines and bytes are stored. A run stores only the
lines after those: a log read again adds nothing, and a log that grew adds its new
lines. A plain file is read from where the store stopped, with the overlap of a
parallel scan, so a handshake whose first lines were stored before is completed; a
compressed file or a URL is read from the start and only its new lines are kept.
A log still being written is stored up to its last complete line. A log shorter
than 4 KiB is known by all its bytes, and found again by them once it is longer.

The data files are named by input and line range and written before
``inputs.json``: a run that dies in between leaves files that the next run, which
stores the same range again, replaces rather than adds to.

Known limits: the store does not follow ``--since``/``--until`` (it keeps
everything the logs hold); a handshake cut by the end of a run keeps the outcome
known then; and a bounce stored in a later run does not turn an event stored
earlier into ``bounced``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from smtplogscan import parallel, parquet
from smtplogscan.errors import ScanError, StoreError, UsageError
from smtplogscan.grammar import Stream
from smtplogscan.reader import LineReader
from smtplogscan.registry import Registry
from smtplogscan.results import (
    Counts,
    DeliveryKey,
    ScanResult,
    SessionKey,
    settle_bounces,
)
from smtplogscan.scan import BLOCK_SIZE, Options, grammar_name, new_result
from smtplogscan.sources import Input, open_input, open_raw, rotation_order

log = logging.getLogger(__name__)

MANIFEST = "inputs.json"
#: The bytes an input is known by.
HEAD = 4096
#: The bytes a grammar is chosen by, as a scan does.
_SNIFF = 1 << 16
_ALL_LINES = 1 << 62


@dataclass(slots=True)
class Added:
    """What one run added to the store."""

    inputs: int = 0
    events: int = 0
    sessions: int = 0
    deliveries: int = 0
    #: Inputs that cannot be stored (stdin, which is read only once).
    skipped: list[str] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)


def append(
    folder: Path, inputs: Sequence[Input], registry: Registry, options: Options
) -> Added:
    """Store what `inputs` hold beyond what the store has from them already."""
    # TODO(store): the new lines are read in a pass of their own, after the
    # report's scan: a log seen for the first time is read twice. Its records
    # could be taken from the report's scan when no window filtered them.
    _need_pyarrow()
    # Everything the logs hold, whatever the report's window: a later run
    # cannot come back for the lines left out.
    whole = replace(options, since=None, until=None, baseline=None, jobs=1)
    added = Added()
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        manifest = _read_manifest(folder)
        for source in inputs:
            if source.is_stdin:
                added.skipped.append(source.name)
                continue
            try:
                _append_input(folder, source, registry, whole, manifest, added)
            except ScanError as err:
                added.errors.append(err)
    return added


def covers(folder: Path, since: datetime | None, until: datetime | None) -> bool:
    """Say whether the period lies within the days the store holds."""
    if since is None:
        return False
    spans = [
        (datetime.fromisoformat(e["first"]), datetime.fromisoformat(e["last"]))
        for e in _read_manifest(folder)
        if e.get("first")
    ]
    if not spans:
        return False
    first = _day_start(min(s for s, _ in spans))
    last = _day_start(max(e for _, e in spans)) + timedelta(days=1)
    return first <= since and (until is None or until <= last)


def load(folder: Path, since: datetime | None, until: datetime | None) -> ScanResult:
    """Rebuild the records of a period from the store, as a scan would find them.

    Sessions and deliveries are kept per hour, so they are taken by their hour.
    """
    _need_pyarrow()
    result = ScanResult(since=since, until=until)
    rows = parquet.read(folder, "events", since, until)
    order = _input_order(r["source"] for r in rows)
    rows.sort(key=lambda r: (order.get(_path_of(r["source"]), 0), r["line"]))
    result.events.extend(parquet.row_to_event(r) for r in rows)
    for row in parquet.read(folder, "sessions", since, until):
        result.sessions[SessionKey(*parquet.row_to_key(row, SessionKey._fields))] += (
            row["count"]
        )
    for row in parquet.read(folder, "deliveries", since, until):
        result.deliveries[
            DeliveryKey(*parquet.row_to_key(row, DeliveryKey._fields))
        ] += row["count"]
    return result


def _append_input(
    folder: Path,
    source: Input,
    registry: Registry,
    options: Options,
    manifest: list[dict[str, Any]],
    added: Added,
) -> None:
    head = _head(source)
    if not head:
        return
    entry = _find(manifest, head)
    if entry is None:
        entry = {
            "head_bytes": min(len(head), HEAD),
            "head_sha256": _sha(head[:HEAD]),
            "lines": 0,
            "bytes": 0,
        }
        manifest.append(entry)
    grammar = entry.get("grammar") or grammar_name(head, registry, options, source.name)
    if grammar is None:
        return  # no mail log: the scan has said so already
    found, lines, size = _scan_new(source, registry, grammar, entry, options)
    if lines <= entry["lines"]:
        return
    settle_bounces(found)
    name = f"{entry['head_sha256'][:16]}-{entry['lines'] + 1}-{lines}"
    span = _write(folder, name, entry["head_sha256"], found, added)
    _widen(entry, span)
    entry.update(name=source.name, grammar=grammar, lines=lines, bytes=size)
    entry["stored"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write_manifest(folder, manifest)
    added.inputs += 1


def _head(source: Input) -> bytes:
    stream = open_input(source)
    try:
        parts: list[bytes] = []
        size = 0
        while size < _SNIFF:
            chunk = stream.read(_SNIFF - size)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)
    except (OSError, EOFError, ValueError) as err:
        raise StoreError(f"{source.name}: cannot read: {err}") from None
    finally:
        stream.close()


def _find(manifest: list[dict[str, Any]], head: bytes) -> dict[str, Any] | None:
    """The entry of the input whose first bytes are `head`'s, if any."""
    digests: dict[int, str] = {}
    for entry in manifest:
        size = entry["head_bytes"]
        if size > len(head):
            continue
        if size not in digests:
            digests[size] = _sha(head[:size])
        if digests[size] == entry["head_sha256"]:
            return entry
    return None


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _scan_new(
    source: Input,
    registry: Registry,
    name: str,
    entry: dict[str, Any],
    options: Options,
) -> tuple[ScanResult, int, int]:
    """Scan the lines after the stored ones; return their records, and how many
    lines and bytes the input holds now."""
    grammar = registry.get(name)
    size = parallel.plain_size(source)
    end = _last_line_end(source, size) if size else None
    if end is not None and end <= entry["bytes"]:
        return new_result(options), entry["lines"], entry["bytes"]
    if end is not None and grammar.splittable:
        part = parallel.Part(source, entry["bytes"], end, name)
        found = parallel.run_part(part, options, registry, entry["lines"] + 1)
        return found, entry["lines"] + found.counts.lines, end
    return _scan_stream(source, grammar, entry["bytes"], end, options)


def _scan_stream(
    source: Input,
    grammar_cls: Any,
    known: int,
    limit: int | None,
    options: Options,
) -> tuple[ScanResult, int, int]:
    """Read the whole input, keeping the records of the lines after its first
    `known` bytes."""
    found = new_result(options)
    counts = Counts()
    grammar = grammar_cls(
        Stream(source.name, source.mtime(), options.zone, options.year)
    )
    reader = LineReader(grammar, counts, found, 1, (known, _ALL_LINES))
    stream = open_input(source)
    try:
        left = _ALL_LINES if limit is None else limit
        while left > 0:
            block = stream.read(min(BLOCK_SIZE, left))
            if not block:
                break
            left -= len(block)
            reader.push(block)
        reader.close()
    except (OSError, EOFError, ValueError) as err:
        raise StoreError(f"{source.name}: stopped reading: {err}") from None
    finally:
        stream.close()
    return found, counts.lines, counts.bytes


def _last_line_end(source: Input, size: int) -> int:
    """The offset after the last newline of a plain file: its complete lines."""
    with open_raw(source) as handle:
        end = size
        while end > 0:
            start = max(0, end - (1 << 16))
            handle.seek(start)
            chunk = handle.read(end - start)
            at = chunk.rfind(b"\n")
            if at != -1:
                return start + at + 1
            end = start
    return 0


def _write(
    folder: Path, name: str, digest: str, found: ScanResult, added: Added
) -> list[datetime]:
    """Write the records of one range of one input; return their times."""
    events = [parquet.event_to_row(e, digest) for e in found.events]
    sessions = parquet.count_rows(found.sessions, SessionKey._fields, digest)
    deliveries = parquet.count_rows(found.deliveries, DeliveryKey._fields, digest)
    start = name.rsplit("-", 1)[0]
    for dataset, rows in (
        ("events", events),
        ("sessions", sessions),
        ("deliveries", deliveries),
    ):
        # A run that died before its manifest was written left this range,
        # maybe shorter: it is replaced, not added to.
        for stale in (folder / dataset).glob(f"day=*/{start}-*.parquet"):
            stale.unlink()
        parquet.write_days(folder / dataset, name, rows, parquet.SCHEMAS[dataset]())
    added.events += len(events)
    added.sessions += sum(r["count"] for r in sessions)
    added.deliveries += sum(r["count"] for r in deliveries)
    return [r["when"] for r in (*events, *sessions, *deliveries) if r["when"]]


def _widen(entry: dict[str, Any], times: list[datetime]) -> None:
    """Widen the span of time the entry's stored records cover."""
    if not times:
        return
    first, last = min(times), max(times)
    if entry.get("first"):
        first = min(first, datetime.fromisoformat(entry["first"]))
        last = max(last, datetime.fromisoformat(entry["last"]))
    entry["first"], entry["last"] = first.isoformat(), last.isoformat()


def _path_of(source: str) -> str:
    return source.rpartition(":")[0] or source


def _input_order(sources: Iterable[str]) -> dict[str, int]:
    """Order the inputs as a scan of their folder reads them: oldest rotation first."""
    paths = {_path_of(s) for s in sources}
    ordered = rotation_order(Path(p) for p in paths)
    return {str(p): n for n, p in enumerate(ordered)}


def _day_start(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _read_manifest(folder: Path) -> list[dict[str, Any]]:
    path = folder / MANIFEST
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return list(data["inputs"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StoreError(f"{path}: not a store's manifest: {err}") from None


def _write_manifest(folder: Path, manifest: list[dict[str, Any]]) -> None:
    path = folder / MANIFEST
    temporary = path.with_suffix(".tmp")
    text = json.dumps({"version": 1, "inputs": manifest}, indent=1, sort_keys=True)
    temporary.write_text(text + "\n", encoding="utf-8")
    os.replace(temporary, path)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Let one run at a time write to the store."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _need_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError(
            "--store needs pyarrow: pip install 'smtplogscan[store]'"
        ) from None
