"""Bounded memory: long lines are cut, and the state joining lines is bounded.

A log can hold a line without end, or millions of processes, messages and
sessions that begin a failure and never finish it. Neither may make memory grow
with the input: lines are cut at MAX_LINE and counted, and every grammar keeps
at most a fixed number of pending joins, letting the oldest go (and counting
them in its `evicted` attribute).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from smtplogscan import Grammar, Options, Record, registry, scan
from smtplogscan.grammar import Stream
from smtplogscan.grammars import exchange, exim, postfix
from smtplogscan.reader import MAX_LINE
from smtplogscan.registry import Registry
from smtplogscan.scan import BLOCK_SIZE

STREAM = Stream("mem.log", datetime(2026, 12, 31, tzinfo=UTC))

# -- the generated logs: many distinct joins, none of which ever completes ----------


def postfix_lines(n: int) -> Iterator[bytes]:
    """Reasons with no handshake (distinct pids) and successes of 500 peers."""
    for i in range(n):
        if i % 2:
            yield (
                b"Dec  3 15:01:02 mx1 postfix/smtpd[%d]: warning: TLS library problem: "
                b"error:0A000126:SSL routines::unexpected eof while reading:"
                b"ssl/record/rec_layer_s3.c:%d:\n" % (i, i)
            )
        else:
            yield (
                b"Dec  3 15:01:02 mx1 postfix/smtpd[%d]: Anonymous TLS connection "
                b"established from peer%d.example[192.0.2.%d]: TLSv1.3 with cipher "
                b"TLS_AES_256_GCM_SHA384 (256/256 bits)\n" % (i, i % 500, i % 250)
            )


def exim_lines(n: int) -> Iterator[bytes]:
    """Outbound read errors of distinct messages whose delivery never comes."""
    for i in range(n):
        yield (
            b"2026-12-03 15:01:02 1t%04d-%06d-AB H=mx%d.example.net [192.0.2.%d]:25 "
            b"TLS error on connection (recv): The TLS connection was non-properly "
            b"terminated.\n" % (i // 1_000_000, i % 1_000_000, i % 500, i % 250)
        )


def exchange_lines(n: int) -> Iterator[bytes]:
    """Sessions with distinct ids that never close."""
    yield (
        b"#Software: Microsoft Exchange Server\n#Version: 15.0.1497.2\n"
        b"#Log-type: SMTP Receive Protocol Log\n#Date: 2019-11-04T06:00:00.117Z\n"
        b"#Fields: date-time,connector-id,session-id,sequence-number,"
        b"local-endpoint,remote-endpoint,event,data,context\n"
    )
    for i in range(n):
        yield (
            b"2019-11-04T06:00:31.002Z,EX01\\Default,08D7%012X,1,203.0.113.10:25,"
            b"192.0.2.%d:4%04d,<,EHLO peer%d.example.org,\n"
            % (i, i % 250, i % 10_000, i % 500)
        )


LOGS: dict[str, Callable[[int], Iterator[bytes]]] = {
    "postfix": postfix_lines,
    "exim": exim_lines,
    "exchange": exchange_lines,
}


def write(path: Path, lines: Iterator[bytes]) -> Path:
    with path.open("wb") as handle:
        batch: list[bytes] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 20_000:
                handle.write(b"".join(batch))
                batch.clear()
        handle.write(b"".join(batch))
    return path


# -- each grammar's state stays bounded (in process, quick) -------------------------


def feed(grammar: Grammar, lines: Iterator[bytes]) -> int:
    records = 0
    for lineno, raw in enumerate(lines, 1):
        for text in raw.decode().splitlines():
            records += len(grammar.feed(text, lineno) or [])
    return records


def test_postfix_keeps_a_bounded_number_of_open_handshakes() -> None:
    grammar = postfix.PostfixGrammar(STREAM)
    n = 3 * postfix._KEEP_OPEN
    feed(grammar, postfix_lines(n))
    assert len(grammar._open) <= postfix._KEEP_OPEN
    assert grammar.evicted == n // 2 - postfix._KEEP_OPEN
    # An "unexpected eof" with no handshake is no failure, early or late.
    assert grammar.finish() == []


def test_postfix_evicts_a_pending_handshake_as_finish_would() -> None:
    grammar = postfix.PostfixGrammar(STREAM)
    records = feed(
        grammar,
        (
            b"Dec  3 15:01:02 mx1 postfix/smtpd[%d]: SSL_accept error from "
            b"p%d.example[192.0.2.1]: -1\n" % (i, i)
            for i in range(postfix._KEEP_OPEN + 5)
        ),
    )
    assert records == grammar.evicted == 5  # let go, but reported, not lost
    assert len(grammar.finish()) == postfix._KEEP_OPEN


def test_postfix_keeps_a_bounded_number_of_reasons_per_process() -> None:
    grammar = postfix.PostfixGrammar(STREAM)
    line = (
        b"Dec  3 15:01:02 mx1 postfix/smtpd[7]: warning: TLS library problem: "
        b"error:0A000102:SSL routines::unsupported protocol\n"
    )
    feed(grammar, iter([line] * 10_000))
    (handshake,) = grammar._open.values()
    assert len(handshake.reasons) <= postfix._KEEP_REASONS


def test_exim_keeps_a_bounded_number_of_waiting_failures() -> None:
    grammar = exim.EximGrammar(STREAM)
    n = exim._KEEP_WAITING + 500
    feed(grammar, exim_lines(n))
    assert len(grammar._waiting) <= exim._KEEP_WAITING
    assert grammar.evicted == 500


def test_exim_reports_an_evicted_handshake_failure() -> None:
    grammar = exim.EximGrammar(STREAM)
    lines = (
        b"2026-12-03 15:01:02 1t0000-%06d-AB H=mx.example.net [192.0.2.1]:25 "
        b"TLS error on connection (SSL_connect): error:0A000410:SSL routines::"
        b"sslv3 alert handshake failure\n" % i
        for i in range(exim._KEEP_WAITING + 3)
    )
    assert feed(grammar, lines) == grammar.evicted == 3


def test_exchange_keeps_a_bounded_number_of_open_sessions() -> None:
    grammar = exchange.ExchangeGrammar(STREAM)
    feed(grammar, exchange_lines(exchange.MAX_OPEN + 700))
    assert len(grammar._sessions) <= exchange.MAX_OPEN
    assert grammar.evicted == 700


# -- the whole command, as a process: peak memory flat as the input grows -----------

#: Runs a command and prints the peak resident memory of its process tree, in KiB.
PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,"
    " stderr=subprocess.PIPE)\n"
    "sys.stderr.buffer.write(done.stderr)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(done.returncode)\n"
)


def peak_kib(*args: str) -> tuple[int, subprocess.CompletedProcess[str]]:
    """Run the CLI in a fresh wrapper process; return its peak RSS in KiB."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, sys.executable, "-m", "smtplogscan", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return int(done.stdout.split()[-1]), done


N = 60_000


@pytest.mark.parametrize("name", sorted(LOGS))
def test_memory_stays_flat_while_the_input_grows_tenfold(
    tmp_path: Path, name: str
) -> None:
    small = write(tmp_path / "small.log", LOGS[name](N))
    large = write(tmp_path / "large.log", LOGS[name](10 * N))
    base = ("events", "--grammar", name, "--output", str(tmp_path / "out"))
    peak_small, done = peak_kib(*base, str(small))
    assert done.returncode == 0, done.stderr
    peak_large, done = peak_kib(*base, str(large))
    assert done.returncode == 0, done.stderr
    assert peak_large < 1.5 * peak_small, (peak_small, peak_large)


#: What reading a line of 50 MiB or more may add to the peak: the blocks in flight
#: and the first MAX_LINE bytes of the line, with room for the allocator's slack.
FEW_BLOCKS_KIB = (8 * BLOCK_SIZE + 4 * MAX_LINE) // 1024 + 8 * 1024


def test_a_50_mb_line_without_newline_is_not_buffered(tmp_path: Path) -> None:
    short = tmp_path / "short.log"
    short.write_bytes(b"Dec  3 15:01:02 mx1 postfix/smtpd[7]: TLS\n")
    endless = tmp_path / "endless.log"
    with endless.open("wb") as handle:
        for _ in range(50):
            handle.write(b"TLS " * (1 << 18))  # 1 MiB, no newline
    base = ("events", "-j", "1", "--grammar", "postfix", "-o", str(tmp_path / "o"))
    peak_short, _ = peak_kib(*base, str(short))
    peak_endless, done = peak_kib(*base, str(endless))
    assert done.returncode == 0, done.stderr
    # A few blocks and the cut line in flight at most, never the 50 MiB line.
    assert peak_endless - peak_short < FEW_BLOCKS_KIB, (
        peak_short,
        peak_endless,
    )


def test_a_long_line_is_not_buffered_when_a_file_is_split(tmp_path: Path) -> None:
    short = tmp_path / "short.log"
    short.write_bytes(b"Dec  3 15:01:02 mx1 postfix/smtpd[7]: TLS\n")
    endless = tmp_path / "endless.log"
    with endless.open("wb") as handle:
        for _ in range(150):
            handle.write(b"TLS " * (1 << 18))
    base = ("events", "-j", "2", "--grammar", "postfix", "-o", str(tmp_path / "o"))
    peak_short, _ = peak_kib(*base, str(short))
    peak_endless, done = peak_kib(*base, str(endless))
    assert done.returncode == 0, done.stderr
    assert peak_endless - peak_short < FEW_BLOCKS_KIB, (
        peak_short,
        peak_endless,
    )


# -- long lines are cut and counted, and the lines around them kept -----------------


class Recorder(Grammar):
    """Takes every line holding TLS and remembers its number and length."""

    name = "recorder"
    mta = "test"
    formats = ("any",)
    prefilter = ("TLS",)
    seen: ClassVar[list[tuple[int, int]]] = []

    @classmethod
    def sniff(cls, lines: Sequence[str]) -> float:
        return 1.0

    def feed(self, line: str, lineno: int) -> list[Record] | None:
        self.seen.append((lineno, len(line)))
        return []


@pytest.fixture
def recorded(tmp_path: Path) -> Callable[[bytes], tuple[list[tuple[int, int]], object]]:
    reg = Registry()
    reg.add(Recorder, "test")

    def run(body: bytes) -> tuple[list[tuple[int, int]], object]:
        Recorder.seen = []
        path = tmp_path / "long.log"
        path.write_bytes(body)
        result = scan([str(path)], reg, Options(grammar="recorder", jobs=1))
        assert not result.errors
        return list(Recorder.seen), result.counts

    return run


def test_a_line_over_the_limit_across_blocks_is_cut_once(recorded) -> None:  # type: ignore[no-untyped-def]
    long = b"TLS " + b"x" * (BLOCK_SIZE + 100)
    seen, counts = recorded(long + b"\nTLS after\n")
    assert [n for n, _ in seen] == [1, 2]
    assert max(size for _, size in seen) <= MAX_LINE
    assert (counts.lines, counts.cut_lines) == (2, 1)  # type: ignore[attr-defined]


def test_the_line_before_a_long_unfinished_line_is_read(recorded) -> None:  # type: ignore[no-untyped-def]
    seen, counts = recorded(b"TLS first\n" + b"TLS " + b"x" * (2 * MAX_LINE))
    assert [n for n, _ in seen] == [1, 2]
    assert (counts.lines, counts.cut_lines) == (2, 1)  # type: ignore[attr-defined]


def test_a_long_last_line_without_newline_is_counted(recorded) -> None:  # type: ignore[no-untyped-def]
    seen, counts = recorded(b"TLS " + b"x" * (BLOCK_SIZE + 2 * MAX_LINE))
    assert [n for n, _ in seen] == [1]
    assert (counts.lines, counts.cut_lines) == (1, 1)  # type: ignore[attr-defined]


def test_a_line_over_the_limit_inside_a_block_is_cut(recorded) -> None:  # type: ignore[no-untyped-def]
    seen, counts = recorded(b"TLS " + b"y" * (3 * MAX_LINE) + b"\nTLS after\n")
    assert [n for n, _ in seen] == [1, 2]
    assert max(size for _, size in seen) <= MAX_LINE
    assert (counts.lines, counts.cut_lines) == (2, 1)  # type: ignore[attr-defined]


def test_registry_of_the_builtins_loads() -> None:
    assert {"postfix", "exim", "exchange"} <= set(registry.load().grammars)
