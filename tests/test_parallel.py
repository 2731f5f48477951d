"""A parallel scan finds what one process finds, event for event.

The file is cut at every line end in turn, with a small overlap, so that every
handshake is split at every awkward place: between its SSL_accept line and its
reasons, between its reasons, before its outcome.
"""

from __future__ import annotations

import gzip
import json
import pickle
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from smtplogscan import Options, parallel, scan
from smtplogscan.frame import event_row, sort_events
from smtplogscan.results import settle_bounces
from smtplogscan.scan import new_result
from smtplogscan.sources import Input

from .conftest import SAMPLES

REAL = SAMPLES / "postfix" / "real-debian-openssl3.log"


def _rows(result) -> list[str]:
    return [
        json.dumps(event_row(e), sort_keys=True) for e in sort_events(result.events)
    ]


def _in_parts(path: Path, cuts: list[int], grammars, options: Options):
    parallel._registry = grammars
    result = new_result(options)
    source = Input(str(path), path)
    for start, end in zip(cuts, cuts[1:], strict=False):
        part = parallel.Part(source, start, end, options.grammar or "postfix")
        parallel.merge(result, parallel.run_part(part, options), part)
    settle_bounces(result)
    return result


@pytest.fixture
def small_overlap(monkeypatch):
    # Enough for the lines of one handshake, far less than the file: the
    # stitching must work, not the overlap hide the cut.
    monkeypatch.setattr(parallel, "OVERLAP", 4096)


def _cut_in_two_everywhere(path: Path, grammar: str, grammars, step: int = 1):
    """Cut `path` in two at every `step`-th line end; each time, the two ranges
    must find what one process finds."""
    options = Options(grammar=grammar)
    serial = scan([str(path)], grammars, options)
    assert serial.events and serial.tls_successes
    data = path.read_bytes()
    line_ends = [i + 1 for i, b in enumerate(data) if b == 0x0A][:-1]
    for cut in line_ends[::step]:
        result = _in_parts(path, [0, cut, len(data)], grammars, options)
        assert _rows(result) == _rows(serial), f"cut at byte {cut}"
        assert result.sessions == serial.sessions
        assert result.deliveries == serial.deliveries
        assert result.counts.lines == serial.counts.lines
        assert result.counts.candidates == serial.counts.candidates
    return len(line_ends[::step])


def test_every_single_cut_gives_the_same_events(grammars, small_overlap):
    assert _cut_in_two_everywhere(REAL, "postfix", grammars, step=3) > 150


@pytest.mark.parametrize(
    "path", sorted((SAMPLES / "exim").glob("*.log")), ids=lambda p: p.name
)
def test_every_cut_of_an_exim_log_gives_the_same_events(path, grammars, small_overlap):
    # Exim's joins: an outbound error waits for the delivery line of its
    # message; an arrival is remembered for the inbound error that may follow.
    assert _cut_in_two_everywhere(path, "exim", grammars) > 5


def test_many_ranges_at_once(grammars, small_overlap):
    options = Options(grammar="postfix")
    serial = scan([str(REAL)], grammars, options)
    data = REAL.read_bytes()
    line_ends = [i + 1 for i, b in enumerate(data) if b == 0x0A]
    cuts = [0, *line_ends[7:-1:29], len(data)]
    result = _in_parts(REAL, cuts, grammars, options)
    assert _rows(result) == _rows(serial)
    assert len(result.inputs) == 1
    assert result.inputs[0].counts.lines == serial.inputs[0].counts.lines


def test_worker_processes_give_the_same_report(grammars, tmp_path, monkeypatch):
    # Several files, one of them large enough (with the limit lowered) to be cut
    # into ranges, read by real worker processes.
    monkeypatch.setattr(parallel, "SPLIT_MIN", 10_000)
    monkeypatch.setattr(parallel, "OVERLAP", 8192)
    paths = [str(REAL), str(SAMPLES / "exim"), str(SAMPLES / "exchange")]
    calls: list[int] = []
    serial = scan(paths, grammars, Options(jobs=1), meanwhile=lambda: calls.append(1))
    assert calls == []  # no worker to overlap
    both = scan(paths, grammars, Options(jobs=3), meanwhile=lambda: calls.append(3))
    assert calls == [3]  # once, while the workers scan
    assert _rows(both) == _rows(serial)
    assert both.sessions == serial.sessions
    assert both.deliveries == serial.deliveries
    assert [i.name for i in both.inputs] == [i.name for i in serial.inputs]
    assert both.counts.lines == serial.counts.lines


def test_plan_cuts_only_large_plain_files_of_splittable_grammars(
    grammars, monkeypatch, tmp_path
):
    monkeypatch.setattr(parallel, "SPLIT_MIN", 10_000)
    gz = tmp_path / "mail.log.1.gz"
    gz.write_bytes(gzip.compress(REAL.read_bytes()))
    # Exchange joins a session's rows by session id, over any distance.
    exchange = SAMPLES / "exchange" / "SEND2019110406-1.LOG"
    assert exchange.stat().st_size > 10_000
    inputs = [Input(str(p), p) for p in (REAL, gz, exchange)]
    parts = list(parallel.plan(inputs, grammars, Options(jobs=4)))
    ranges = [p for p in parts if p.end is not None]
    assert len(ranges) == 4 and all(p.source.path == REAL for p in ranges)
    assert [p.start for p in ranges][0] == 0 and ranges[-1].end == REAL.stat().st_size
    data = REAL.read_bytes()
    assert all(data[p.start - 1] == 0x0A for p in ranges[1:])  # cut at line ends
    whole = [p.source.path for p in parts if p.end is None]
    assert whole == [gz, exchange]


def test_a_file_rotated_after_it_was_cut_is_named_not_misread(
    grammars, tmp_path, monkeypatch
):
    monkeypatch.setattr(parallel, "SPLIT_MIN", 10_000)
    log = tmp_path / "mail.log"
    log.write_bytes(REAL.read_bytes())
    options = Options(jobs=2)
    parts = list(parallel.plan([Input(str(log), log)], grammars, options))
    assert len(parts) == 2
    log.rename(tmp_path / "mail.log.1")  # logrotate runs between the cut and the read
    log.write_bytes(REAL.read_bytes())
    parallel._registry = grammars
    done = parallel.run_part(parts[1], options)
    assert "rotated or truncated while it was read" in str(done.errors[0])


@pytest.fixture
def memory():
    """fsspec's in-memory store: URLs whose reads go through fsspec (seek and
    all), seen by forked workers as they were at the fork."""
    fsspec = pytest.importorskip("fsspec")
    store = fsspec.filesystem("memory")
    yield store
    store.rm("/smtplogscan-ranges", recursive=True)


def test_an_object_in_storage_is_cut_like_a_file(
    grammars, monkeypatch, memory, tmp_path
):
    monkeypatch.setattr(parallel, "SPLIT_MIN", 10_000)
    monkeypatch.setattr(parallel, "OVERLAP", 8192)
    data = REAL.read_bytes()
    (tmp_path / "mail.log").write_bytes(data)
    (tmp_path / "old.log.gz").write_bytes(gzip.compress(data))
    for path in tmp_path.iterdir():
        memory.pipe(f"/smtplogscan-ranges/{path.name}", path.read_bytes())
    url = "memory://smtplogscan-ranges/mail.log"
    parts = list(parallel.plan([Input(url, None, url=url)], grammars, Options(jobs=3)))
    assert len(parts) == 3 and all(p.version is not None for p in parts)
    assert parts[0].start == 0 and parts[-1].end == len(data)
    assert all(data[p.start - 1] == 0x0A for p in parts[1:])  # cut at line ends

    names = ("mail.log", "old.log.gz")
    local = scan([str(tmp_path / n) for n in names], grammars, Options(jobs=1))
    urls = [f"memory://smtplogscan-ranges/{n}" for n in names]
    remote = scan(urls, grammars, Options(jobs=3))
    assert not remote.errors
    assert [i.counts.lines for i in remote.inputs] == [
        i.counts.lines for i in local.inputs
    ]
    assert sorted(map(_row_here, remote.events)) == sorted(map(_row_here, local.events))
    assert len(remote.events) == len(local.events) > 100


def _row_here(event) -> str:
    """An event's row without the input's name, which differs between a path
    and a URL."""
    row = event_row(event)
    row["source"] = row["source"].rpartition(":")[2]
    return json.dumps(row, sort_keys=True)


def test_an_object_rewritten_after_it_was_cut_is_named(grammars, monkeypatch, memory):
    monkeypatch.setattr(parallel, "SPLIT_MIN", 10_000)
    memory.pipe("/smtplogscan-ranges/mail.log", REAL.read_bytes())
    url = "memory://smtplogscan-ranges/mail.log"
    options = Options(jobs=2)
    parts = list(parallel.plan([Input(url, None, url=url)], grammars, options))
    assert len(parts) == 2
    memory.pipe("/smtplogscan-ranges/mail.log", REAL.read_bytes()[:1000])
    parallel._registry = grammars
    done = parallel.run_part(parts[1], options)
    assert "mail.log: rewritten or truncated while it was read" in str(done.errors[0])


def _halves(source: Input) -> list[parallel.Part]:
    data = REAL.read_bytes()
    cut = data.index(b"\n", len(data) // 2) + 1
    return [
        parallel.Part(source, 0, cut, "postfix"),
        parallel.Part(source, cut, len(data), "postfix"),
    ]


def test_a_grammar_failing_in_a_range_stops_that_range_only(
    grammars, small_overlap, monkeypatch
):
    from smtplogscan.grammars.postfix import PostfixGrammar

    def feed(self, line, lineno):
        if "[21281]: server certificate verification failed" in line:
            raise KeyError("no such peer")  # a plugin's bug, in the second half
        return real_feed(self, line, lineno)

    real_feed = PostfixGrammar.feed
    monkeypatch.setattr(PostfixGrammar, "feed", feed)
    parallel._registry = grammars
    first, second = (
        parallel.run_part(part, Options()) for part in _halves(Input(str(REAL), REAL))
    )
    assert first.errors == [] and len(first.events) > 10
    (error,) = second.errors
    assert str(error).startswith(f"{REAL}: grammar postfix failed in bytes 39,")
    assert str(error).endswith("to 78,373: KeyError: 'no such peer'")
    assert second.inputs[0].error == str(error)
    # What the second half found before the failing line is kept.
    assert all(e.source.startswith(f"{REAL}:") for e in second.events)
    assert 0 < len(second.events) < len(scan([str(REAL)], grammars).events) / 2


def test_a_read_fault_in_a_range_keeps_what_came_before(
    grammars, small_overlap, monkeypatch
):
    class Failing:
        """A file that fails with EIO on its fifth read."""

        def __init__(self, handle):
            self.handle, self.reads = handle, 0

        def read(self, size=-1):
            self.reads += 1
            if self.reads == 5:
                raise OSError(5, "Input/output error")
            return self.handle.read(size)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    opened = parallel.open_raw
    monkeypatch.setattr(parallel, "open_raw", lambda source: Failing(opened(source)))
    monkeypatch.setattr(parallel, "BLOCK_SIZE", 8192)
    parallel._registry = grammars
    done = parallel.run_part(_halves(Input(str(REAL), REAL))[0], Options())
    (error,) = done.errors
    assert str(error) == f"{REAL}: stopped reading: Input/output error"
    # A range from byte 0 reads once to find where its overlap ends, then
    # blocks of 8 KiB: three of them came before the fault. Their lines were
    # read, the piece of a line at the end too, as a whole input is read.
    assert done.counts.lines == REAL.read_bytes()[: 3 * 8192].count(b"\n") + 1
    assert done.events and all(e.source.startswith(f"{REAL}:") for e in done.events)


def test_ranges_number_their_lines_as_one_scan_does(grammars, tmp_path, small_overlap):
    # A range numbers its lines from its own start and is renumbered when
    # merged: events and the examples of unread lines must name the same lines.
    lines = REAL.read_bytes().splitlines(keepends=True)
    odd = b"Dec  3 17:01:40 mx1 postfix/smtpd[777]: TLS frobnicated the widget\n"
    log = tmp_path / "mail.log"
    log.write_bytes(
        b"".join(line + (odd if n % 97 == 0 else b"") for n, line in enumerate(lines))
    )
    options = Options(grammar="postfix")
    serial = scan([str(log)], grammars, options)
    assert serial.counts.unmatched >= 5
    data = log.read_bytes()
    line_ends = [i + 1 for i, b in enumerate(data) if b == 0x0A]
    cuts = [0, *line_ends[100:-1:211], len(data)]
    result = _in_parts(log, cuts, grammars, options)
    assert _rows(result) == _rows(serial)
    assert result.counts.unmatched_examples == serial.counts.unmatched_examples
    assert [e.source for e in sort_events(result.events)] == [
        e.source for e in sort_events(serial.events)
    ]


def test_an_event_comes_back_whole_from_a_worker():
    # Workers send events pickled, through Event.__reduce__: a field it forgets
    # would come back as its default.
    from dataclasses import fields

    from smtplogscan.records import Culprit, Direction, Event, Kind, Outcome, Peer

    event = Event(
        datetime(2026, 12, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=1))),
        "mx9",
        "exim",
        Direction.INBOUND,
        Peer("mail.example.net", "192.0.2.7", 587, "helo.example"),
        Kind.NO_SHARED_CIPHER,
        "no shared cipher",
        "mail.log:41",
        Culprit.LOCAL,
        Outcome.BOUNCED,
        "openssl-no-shared-cipher",
        "1A2B3C",
        "SSL_accept",
        {"tls_peer_dn": "CN=x"},
    )
    blank = Event(None, "", "", Direction.OUTBOUND, Peer(), Kind.OTHER, "", "")
    for field in fields(Event):
        assert getattr(event, field.name) != getattr(blank, field.name), field.name
    assert pickle.loads(pickle.dumps(event)) == event
