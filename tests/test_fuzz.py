"""Fuzzing: hostile and broken lines never crash a grammar, the scan or a renderer.

Inputs are random bytes, real sample lines mutated (bytes inserted, cut,
deleted, a host name swapped for a hostile value), NUL and control bytes, CR
and CRLF line ends, invalid UTF-8, long lines and many peers. The properties:

- a grammar's `sniff`, `feed` and `finish` never raise and keep their contract;
- a scan never raises, and every line is counted once: parsed, ignored or
  unmatched (lines >= candidates >= unmatched), and every line holding a
  prefilter literal reaches the grammar;
- every renderer runs, and what it writes is safe: no terminal control
  character in text, no markup from the log in HTML, no CSV cell a
  spreadsheet would run as a formula.

HYPOTHESIS_PROFILE=long (see tests/hypothesis_profiles.py and
scripts/fuzz_long.py) runs the same tests over many more inputs.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtplogscan import Options, ScanResult, registry, scan
from smtplogscan.analysis import analyse
from smtplogscan.errors import ScanError
from smtplogscan.frame import sort_events
from smtplogscan.grammar import Stream
from smtplogscan.reader import MAX_LINE, TLS_WORDS
from smtplogscan.records import Delivery, Event, Success
from smtplogscan.report import (
    iter_event_lines,
    render_csv,
    render_html,
    render_json,
    render_text,
)

from .conftest import SAMPLES
from .hypothesis_profiles import fuzz

REGISTRY = registry.load()
GRAMMARS = sorted(REGISTRY.grammars)


def _grammar_of(path: Path) -> str:
    if path.parent.name != "exchange":
        return path.parent.name
    return "exchange-tracking" if path.name.startswith("MSGTRK") else "exchange"


def _sample_files() -> dict[Path, list[bytes]]:
    files = sorted(
        p
        for p in SAMPLES.rglob("*")
        if p.is_file()
        and "expected" not in p.name
        and p.suffix in {".log", ".LOG", ".json"}
    )
    return {p: p.read_bytes().splitlines() for p in files}


SAMPLE_FILES = _sample_files()
SAMPLE_LINES = [line for lines in SAMPLE_FILES.values() for line in lines if line]

#: Values a stranger can put in a log: markup, terminal escapes, formulas,
#: header breaks, NUL, invalid UTF-8, a bidi override.
HOSTILE = (
    b"<script>alert(1)</script>",
    b'"><img src=x onerror=alert(1)>',
    b"<svg onload=alert(1)>",
    b"\x1b[31mred\x1b[0m",
    b"\x1b]0;pwned\x07",
    b"\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\",
    b"\x1bc",
    b"\xc2\x9b2J",  # C1 CSI, as UTF-8
    b"\x9b2J",  # C1 CSI, as a raw byte (invalid UTF-8)
    b"=cmd|' /C calc'!A0",
    b"+1+1",
    b"-2+3",
    b"@SUM(A1)",
    b"\tTAB",
    b"\rCR",
    b"\x00NUL\x00",
    b"\xff\xfe\xc3\x28",
    b"\xe2\x80\xae",  # U+202E right-to-left override
    b"Subject: x\r\nBcc: victim@example.org",
    b"{{ 7*7 }}{% raw %}",
    b"%s%n%x",
    b"[[[]]]:::",
)
#: Host names and addresses in sample lines, the slots a peer fills.
_SLOT = re.compile(rb"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
# Escaped text may still read "onerror=": only a tag from the log could run it.
_MARKUP = ("<script", "<img", "<svg")


# -- strategies ---------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, line: bytes | None = None) -> bytes:
    """A real line with a few random edits."""
    if line is None:
        line = draw(st.sampled_from(SAMPLE_LINES))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(("insert", "hostile", "slot", "delete", "cut")))
        at = draw(st.integers(0, len(line)))
        if op == "insert":
            line = line[:at] + draw(st.binary(max_size=12)) + line[at:]
        elif op == "hostile":
            line = line[:at] + draw(st.sampled_from(HOSTILE)) + line[at:]
        elif op == "slot":
            slots = list(_SLOT.finditer(line))
            if slots:
                slot = draw(st.sampled_from(slots))
                value = draw(st.sampled_from(HOSTILE))
                line = line[: slot.start()] + value + line[slot.end() :]
        elif op == "delete":
            line = line[:at] + line[at + draw(st.integers(1, 20)) :]
        else:
            line = line[:at]
    return line


def lines() -> st.SearchStrategy[bytes]:
    """One line's bytes (it may hold CR, NUL or even LF: the file decides)."""
    return st.one_of(
        st.sampled_from(SAMPLE_LINES),
        mutated(),
        st.binary(max_size=200),
        st.sampled_from(HOSTILE),
        # Long, but under the cut: long lines are tested on their own.
        st.builds(
            lambda line, n: line * n,
            st.sampled_from(SAMPLE_LINES),
            st.integers(50, 300),
        ).map(lambda b: b[: MAX_LINE - 1]),
    )


@st.composite
def logs(draw: st.DrawFn) -> bytes:
    """A log: a sample file with some lines edited, added or dropped."""
    base = list(draw(st.sampled_from(list(SAMPLE_FILES.values()))))
    for _ in range(draw(st.integers(0, 12))):
        at = draw(st.integers(0, len(base)))
        op = draw(st.sampled_from(("replace", "add", "drop", "repeat")))
        if op == "add" or not base:
            base.insert(at, draw(lines()))
        elif at < len(base):
            if op == "replace":
                base[at] = draw(mutated(base[at]))
            elif op == "drop":
                del base[at]
            else:
                base.insert(at, base[at])
    end = draw(st.sampled_from((b"\n", b"\r\n", b"\r\r\n")))
    body = end.join(base)
    if draw(st.booleans()):
        body += end
    return body


def as_fed(raw: bytes) -> str:
    """A line as the engine hands it to `feed`."""
    raw = raw.removesuffix(b"\r")
    return raw.decode("utf-8", "replace")


# -- grammars -----------------------------------------------------------------------


def _stream() -> Stream:
    return Stream("fuzz.log", datetime(2026, 12, 31, tzinfo=UTC))


def _check_records(records: object) -> None:
    assert records is None or isinstance(records, list)
    for record in records or []:
        assert isinstance(record, Event | Success | Delivery)


def feed_all(name: str, raw_lines: Sequence[bytes]) -> None:
    """Feed lines to a fresh grammar as the engine would, and finish it."""
    cls = REGISTRY.get(name)
    texts = [as_fed(part) for raw in raw_lines for part in raw.split(b"\n")]
    score = cls.sniff(texts)
    assert 0.0 <= float(score) <= 1.0
    grammar = cls(_stream())
    for lineno, text in enumerate(texts, 1):
        _check_records(grammar.feed(text, lineno))
    _check_records(grammar.finish())


@pytest.mark.parametrize("name", GRAMMARS)
@fuzz()
@given(data=st.lists(lines(), max_size=30))
def test_grammar_never_raises_on_hostile_lines(name: str, data: list[bytes]) -> None:
    feed_all(name, data)


@pytest.mark.parametrize("name", GRAMMARS)
@fuzz()
@given(data=st.lists(mutated(), min_size=1, max_size=30))
def test_grammar_never_raises_on_mutated_sample_lines(
    name: str, data: list[bytes]
) -> None:
    feed_all(name, data)


@pytest.mark.parametrize("name", GRAMMARS)
def test_grammar_reads_every_sample_line_cut_at_every_position(name: str) -> None:
    for raw in SAMPLE_LINES:
        feed_all(name, [raw[:cut] for cut in range(len(raw) + 1)])


# -- the pipeline -------------------------------------------------------------------


def scan_bytes(tmp: Path, body: bytes, grammar: str | None) -> ScanResult:
    path = tmp / "mail.log"
    path.write_bytes(body)
    return scan([str(path)], REGISTRY, Options(grammar=grammar))


def expected_lines(body: bytes) -> int:
    """Newline-terminated lines, plus a final partial one."""
    return body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


def check_counts(result: ScanResult, body: bytes) -> None:
    """Every line is counted once, and every line a grammar wants reaches it."""
    counts = result.counts
    if not result.inputs or not result.inputs[0].grammar:
        return  # no grammar recognised the input: nothing was read
    assert counts.bytes == len(body)
    assert counts.lines == expected_lines(body)
    assert 0 <= counts.unmatched <= counts.candidates <= counts.lines
    wanted = (
        *(w.encode() for w in TLS_WORDS),
        *(w.encode() for w in REGISTRY.get(result.inputs[0].grammar).prefilter),
    )
    split = body.split(b"\n")
    if body.endswith(b"\n"):
        split.pop()
    # Edits can join lines past MAX_LINE: only those may be cut.
    assert counts.cut_lines <= sum(len(line) > MAX_LINE for line in split)
    fed_at_least = sum(1 for line in split if any(w in line for w in wanted))
    assert counts.candidates >= fed_at_least


def render_all(result: ScanResult) -> dict[str, str]:
    """Run every renderer; return what each wrote, and the rows CSV must hold."""
    analysis = analyse(result, UTC)
    examples = result.counts.unmatched_examples
    events = sort_events(result.events)
    return {
        "text": render_text(analysis, examples),
        "json": render_json(analysis, examples),
        "csv": render_csv(analysis),
        "html": render_html(analysis, examples, None, result.events),
        "jsonl": "".join(iter_event_lines(events, "jsonl")),
        "events_csv": "".join(iter_event_lines(events, "csv")),
        "csv_rows": str(len(analysis.peers) + 1),
        "events_csv_rows": str(len(events) + 1),
    }


def check_safe(out: dict[str, str]) -> None:
    """Nothing from the log escapes into a terminal, a browser or a spreadsheet."""
    assert not _CONTROL.search(out["text"]), repr(_CONTROL.search(out["text"]))
    html = out["html"].lower()
    for tag in _MARKUP:
        assert tag not in html, tag
    json.loads(out["json"])
    for line in out["jsonl"].splitlines():
        json.loads(line)
    for name in ("csv", "events_csv"):
        # newline="" as the csv module asks: a CR inside a cell stays in it.
        rows = list(csv.reader(io.StringIO(out[name], newline="")))
        assert len(rows) == int(out[name + "_rows"]), name  # no row injected
        for row in rows[1:]:
            for cell in row:
                assert not cell.startswith(_FORMULA), (name, cell)


def check_pipeline(tmp: Path, body: bytes, grammar: str | None) -> ScanResult:
    result = scan_bytes(tmp, body, grammar)
    assert all(isinstance(e, ScanError) for e in result.errors)
    check_counts(result, body)
    check_safe(render_all(result))
    return result


@fuzz("slow")
@given(body=logs(), grammar=st.sampled_from([None, *GRAMMARS]))
def test_pipeline_on_edited_sample_logs(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, grammar: str | None
) -> None:
    check_pipeline(tmp_path_factory.mktemp("fuzz"), body, grammar)


@fuzz("slow")
@given(
    parts=st.lists(lines(), max_size=40),
    end=st.sampled_from((b"\n", b"\r\n")),
    grammar=st.sampled_from(GRAMMARS),
)
def test_pipeline_on_random_lines(
    tmp_path_factory: pytest.TempPathFactory,
    parts: list[bytes],
    end: bytes,
    grammar: str,
) -> None:
    check_pipeline(tmp_path_factory.mktemp("fuzz"), end.join(parts), grammar)


@fuzz("slow")
@given(body=st.binary(max_size=4096), grammar=st.sampled_from([None, *GRAMMARS]))
def test_pipeline_on_random_bytes(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, grammar: str | None
) -> None:
    check_pipeline(tmp_path_factory.mktemp("fuzz"), body, grammar)


@pytest.mark.parametrize("path", list(SAMPLE_FILES), ids=lambda p: p.name)
def test_pipeline_on_every_line_cut_at_every_position(
    tmp_path: Path, path: Path
) -> None:
    # Header rows stay whole, so that the Exchange grammars read the cut rows.
    head = [line for line in SAMPLE_FILES[path] if line.startswith(b"#")]
    cut = [
        line[:at]
        for line in SAMPLE_FILES[path]
        if not line.startswith(b"#")
        for at in range(len(line) + 1)
    ]
    body = b"\n".join(head + cut) + b"\n"
    result = check_pipeline(tmp_path, body, _grammar_of(path))
    assert result.inputs[0].grammar == _grammar_of(path)


#: Hostile values that still read as a host name: no line break, no brackets.
NAMES = [h for h in HOSTILE if not any(c in h for c in b"\r\n[] ")]


def test_pipeline_with_thousands_of_distinct_hostile_peers(tmp_path: Path) -> None:
    peers = 3000
    body = b"".join(
        b"Dec  3 15:01:02 mx1 postfix/smtpd[%d]: SSL_accept error from "
        b"%s-%d.example[192.0.%d.%d]: -1\n"
        b"Dec  3 15:01:02 mx1 postfix/smtpd[%d]: warning: TLS library problem: "
        b"error:0A000102:SSL routines::unsupported protocol\n"
        % (n, NAMES[n % len(NAMES)], n, n // 250, n % 250, n)
        for n in range(peers)
    )
    result = check_pipeline(tmp_path, body, "postfix")
    assert len(result.events) == peers
    assert len(analyse(result, UTC).peers) == peers


def test_long_lines_never_stop_a_scan(tmp_path: Path) -> None:
    # Lines over the cut, inside a block and across blocks: whatever is
    # counted, nothing raises and the rest is still read.
    sample = SAMPLE_FILES[SAMPLES / "postfix" / "openssl11-syslog.log"]
    long = b"SSL_accept error TLS " + b"x[" * MAX_LINE
    body = b"\n".join([*sample, long, long + long, *sample, long]) + b"\n"
    result = scan_bytes(tmp_path, body, "postfix")
    assert not result.errors
    assert len(result.events) == 14
    render_all(result)
