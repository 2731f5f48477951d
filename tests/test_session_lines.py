"""Session lines counted from the buffer must count exactly what `feed` would.

The Postfix grammar names its successful-session line as a bytes pattern, whole
and cut in two at its marker, and the reader counts the lines it matches without
feeding them. Every test here reads the same bytes three times, with the cut
pattern, with the whole one and with a grammar that has none (so that every line
is fed), and compares what they found. The Exim grammar's pattern is checked the
same way in `test_exim_session_lines`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtplogscan import Grammar, Record, Stream, reader
from smtplogscan.grammars.postfix import PostfixGrammar
from smtplogscan.reader import LineReader
from smtplogscan.results import Counts, ScanResult

from .conftest import SAMPLES
from .hypothesis_profiles import fuzz

ZONE = ZoneInfo("Europe/Berlin")
MTIME = datetime(2026, 12, 31, tzinfo=UTC)


def read(
    grammar_cls: type[Grammar],
    body: bytes,
    block: int = 1 << 20,
    window: tuple[datetime | None, datetime | None] = (None, None),
    own: tuple[int, int] | None = None,
) -> tuple[ScanResult, Counts]:
    result = ScanResult(since=window[0], until=window[1])
    counts = Counts()
    grammar = grammar_cls(Stream("mail.log", MTIME, ZONE))
    reader = LineReader(grammar, counts, result, own=own)
    for at in range(0, len(body), block):
        reader.push(body[at : at + block])
    reader.close()
    return result, counts


def read_watched(
    body: bytes, grammar: type[Grammar]
) -> tuple[list[str], ScanResult, Counts]:
    """Read `body`; return the lines that went through feed, and what was found."""
    fed: list[str] = []

    class Watched(grammar):  # type: ignore[valid-type, misc]
        def feed(self, line: str, lineno: int) -> list[Record] | None:
            fed.append(line)
            return super().feed(line, lineno)  # type: ignore[no-any-return]

    result, counts = ScanResult(), Counts()
    reader = LineReader(Watched(Stream("mail.log", MTIME, ZONE)), counts, result)
    reader.push(body)
    reader.close()
    return fed, result, counts


def assert_same(
    body: bytes, grammar: type[Grammar] = PostfixGrammar, **how: object
) -> ScanResult:
    """Read `body` with and without the grammar's session pattern (and, for a
    grammar that cuts it in two, with it whole); return what the first read
    found once all are shown to agree."""
    assert grammar.session_line is not None
    fed_grammar = type(f"Fed{grammar.__name__}", (grammar,), {"session_line": None})
    counted, counted_counts = read(grammar, body, **how)  # type: ignore[arg-type]
    others = [fed_grammar]
    if grammar.session_head is not None:
        whole = {"session_head": None, "session_tail": None}
        others.append(type(f"Whole{grammar.__name__}", (grammar,), whole))
    for other in others:
        found, counts = read(other, body, **how)  # type: ignore[arg-type]
        assert counted.sessions == found.sessions, other.__name__
        assert counted.events == found.events, other.__name__
        assert counted.deliveries == found.deliveries, other.__name__
        assert counted_counts == counts, other.__name__
    return counted


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (SAMPLES / "postfix").iterdir() if ".expected" not in p.name),
)
def test_samples_count_the_same(path: Path) -> None:
    body = path.read_bytes()
    found = assert_same(body)
    if "json" not in path.name:
        assert found.tls_successes > 0  # the pattern had lines to count


def test_session_lines_are_counted_from_the_buffer() -> None:
    # The same session twice in one hour, once in the next: two keys, 3 sessions.
    line = (
        "Dec {day} {clock} mx1 postfix/smtpd[4242]: Anonymous TLS connection"
        " established from mail.example.net[192.0.2.7]: TLSv1.3 with cipher"
        " TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
    )
    body = "".join(
        line.format(day=day, clock=clock)
        for day, clock in ((" 3", "10:15:02"), (" 3", "10:59:59"), (" 3", "11:00:00"))
    ).encode()
    fed, result, counts = read_watched(body, PostfixGrammar)
    assert fed == []  # not one line went through feed
    assert counts.lines == 3 and counts.candidates == 3
    hours = sorted((key.hour, n) for key, n in result.sessions.items())
    assert hours == [
        (datetime(2026, 12, 3, 10, tzinfo=ZONE), 2),
        (datetime(2026, 12, 3, 11, tzinfo=ZONE), 1),
    ]
    key = next(iter(result.sessions))
    assert (key.host, key.direction, key.peer_name, key.peer_addr) == (
        "mx1",
        "inbound",
        "mail.example.net",
        "192.0.2.7",
    )
    assert (key.protocol, key.cipher) == ("TLSv1.3", "TLS_AES_256_GCM_SHA384")


# A session line in pieces: each has its usual form and odd ones. A drawn line
# is the usual one with a few pieces made odd, so that the pattern is tried on
# lines it must count and on near misses it must leave to feed.
PIECES: dict[str, tuple[str, ...]] = {
    "prefix": ("", "mail_1  | "),
    "stamp": (
        "Dec  3 10:15:02",
        "Dec 13 10:15:02",
        "Dec 3 10:15:02",
        "Dec  3 10:15:02.123456",
        "Dec  3 10:15:61",
        "Feb 29 10:15:02",  # no such day in 2026: an unmatched line
        "Mar 29 02:30:00",  # in the hour Berlin skips
        "Oct 25 02:30:00",  # in the hour Berlin repeats
        "2026-12-03T10:15:02.123456+01:00",
        "2026-12-03T10:15:02+05:30",
        "2026-12-03 10:15:02Z",
        "2026-12-03T10:15:02",
        "",
    ),
    "gap": (" ", "  ", "\t", "\u00a0", "\x1c"),
    "host": ("mx1", "INFO", "mx-1.example.org", "m\u00e9x", "a|b", "a/b", "mx\x1c1"),
    "program": (
        "postfix/smtpd",
        "postfix/smtp",
        "postfix-out/smtp",
        "postfix/submission/smtpd",
        "postfix/lmtp",
        "postfix/qmgr",
        "postfix/tlsproxy",
        "postfix/sm\u00e9tpd",
        "postfix/\u0661smtpd",
    ),
    "pid": ("4242", "\u0664\u0662", "42 "),
    "kind": ("Anonymous", "Untrusted", "Trusted", "Verified", "Fake"),
    "peer": (
        "from mail.example.net[192.0.2.7]",
        "to mx.example.net[192.0.2.10]:25",
        "to mx.example.net[2001:db8::10]:25",
        "from unknown[192.0.2.9]",
        "from [192.0.2.9]",
        "from m\u00e9il.example.net[192.0.2.7]",
        "from mail.example.net[192.0.2.7\u2028]",
        "from mail\u00a0x.example.net[192.0.2.7]",
        "from mail.example.net[192.0.2.7]:\u0662\u0665",
    ),
    "protocol": ("TLSv1.3", "TLS\u00a0v1.3", "TLSv1.3\x1d", ""),
    "cipher": (
        "TLS_AES_256_GCM_SHA384 (256/256 bits)",
        "ECDHE-RSA-AES256-GCM-SHA384\r",
        " ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_AES_128_GCM_SHA256\x1f(128/128 bits)",
        "TLS_AES_128\u00a0GCM_SHA256",
        "TLS_AES_128_GCM_SHA256\u0085x",
        "",
    ),
}


def session_line(**odd: str) -> str:
    """Return the usual session line with the pieces named in `odd` replaced."""
    piece = {name: forms[0] for name, forms in PIECES.items()} | odd
    gap = piece["gap"]
    header = gap.join(part for part in (piece["stamp"], piece["host"]) if part)
    return (
        f"{piece['prefix']}{header}{gap}{piece['program']}[{piece['pid']}]: "
        f"{piece['kind']} TLS connection established {piece['peer']}: "
        f"{piece['protocol']} with cipher {piece['cipher']}"
    )


@st.composite
def session_lines(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(sorted(PIECES)), max_size=3))
    return session_line(**{name: draw(st.sampled_from(PIECES[name])) for name in names})


@pytest.mark.parametrize(
    ("name", "form"), [(n, f) for n, forms in PIECES.items() for f in forms[1:]]
)
def test_each_odd_piece_between_usual_lines(name: str, form: str) -> None:
    # Between lines of the same minute, which the engine reads one stamp for.
    usual, odd = session_line(), session_line(**{name: form})
    assert_same(f"{usual}\n{odd}\n{usual}\n".encode("utf-8", "surrogateescape"))


ROUTINE = [
    "Dec  3 10:15:03 mx1 postfix/smtpd[4242]: connect from mail.example.net[192.0.2.7]",
    "Dec  3 10:15:04 mx1 postfix/smtpd[4243]: SSL_accept error from unknown[192.0.2.4]: -1",
    "Dec  3 10:15:04 mx1 postfix/smtpd[4243]: warning: TLS library problem: error:0A000102:"
    "SSL routines::unsupported protocol:../ssl/statem/statem_srvr.c:1657:",
    "Dec  3 10:15:05 mx1 postfix/smtp[777]: SSL_connect error to mx.example.net[192.0.2.10]:25: -1",
    "Dec  3 10:15:05 mx1 postfix/smtp[777]: 4B44716217A: Cannot start TLS: handshake failure",
]


@fuzz()
@given(
    st.lists(st.one_of(session_lines(), st.sampled_from(ROUTINE)), max_size=40),
    st.integers(64, 4096),
)
def test_counted_sessions_equal_fed_sessions(lines: list[str], block: int) -> None:
    body = "\n".join(lines).encode("utf-8", "surrogateescape")
    assert_same(body, block=block)


@fuzz()
@given(
    st.lists(st.one_of(session_lines(), st.sampled_from(ROUTINE)), max_size=40),
    st.sampled_from(
        [
            (datetime(2026, 12, 3, 10, 15, tzinfo=ZONE), None),
            (None, datetime(2026, 12, 3, 10, 15, 2, tzinfo=ZONE)),
            (datetime(2026, 12, 3, 10, 15, 2, tzinfo=UTC) - timedelta(hours=1), None),
        ]
    ),
)
def test_windows_count_the_same(
    lines: list[str], window: tuple[datetime | None, datetime | None]
) -> None:
    body = "\n".join(lines).encode("utf-8", "surrogateescape")
    assert_same(body, window=window)


def test_a_window_bound_inside_a_minute_splits_its_sessions() -> None:
    # Bounds on whole minutes let one stamp read stand for its minute; a bound
    # at 10:15:30 must still keep 10:15:45 and drop 10:15:10.
    body = "".join(
        f"Dec  3 10:15:{second} mx1 postfix/smtpd[1]: Anonymous TLS connection"
        f" established from a.example[192.0.2.1]: TLSv1.3 with cipher X\n"
        for second in ("10", "20", "45", "50")
    ).encode()
    since = datetime(2026, 12, 3, 10, 15, 30, tzinfo=ZONE)
    found = assert_same(body, window=(since, None))
    assert found.tls_successes == 2


def test_owned_bytes_decide_which_part_counts_a_session() -> None:
    line = (
        b"Dec  3 10:15:02 mx1 postfix/smtpd[1]: Anonymous TLS connection"
        b" established from a.example[192.0.2.1]: TLSv1.3 with cipher X\n"
    )
    body = line * 10
    cut = len(line) * 4  # lines 1-4 are one part's, lines 5-10 the other's
    first = assert_same(body, own=(0, cut))
    second = assert_same(body, own=(cut, len(body)))
    assert (first.tls_successes, second.tls_successes) == (4, 6)


# -- the pattern cut in two at its marker -----------------------------------------

MARKER = PostfixGrammar.session_marker.encode()
HEAD, TAIL = PostfixGrammar.session_head, PostfixGrammar.session_tail
# A head's shape as the reader writes it: digits 0-5 as 0, 6-9 as 9.
SHAPE = bytes.maketrans(b"0123456789", b"0000009999")


@st.composite
def redigited(draw: st.DrawFn) -> bytes:
    """A drawn session line whose digits are drawn afresh, so that stamps have
    seconds up to 99 and pids and addresses take any digits."""
    line = draw(session_lines()).encode("utf-8", "surrogateescape")
    digits = draw(st.lists(st.sampled_from(b"0123456789"), min_size=len(line)))
    return bytes(
        d if c in b"0123456789" else c for c, d in zip(line, digits, strict=False)
    )


@fuzz()
@given(st.one_of(session_lines().map(str.encode), redigited()))
def test_the_cut_pattern_reads_a_line_as_the_whole_one(line: bytes) -> None:
    assert HEAD is not None and TAIL is not None
    at = line.find(MARKER)
    whole = PostfixGrammar.session_line.match(line)  # type: ignore[union-attr]
    head, tail = HEAD.fullmatch(line[: max(at, 0)]), TAIL.match(line, max(at, 0))
    assert (whole is not None) == (at >= 0 and head is not None and tail is not None)
    if whole is not None:
        assert head is not None and tail is not None
        for part in (head, tail):
            names = part.re.groupindex
            assert {n: part[n] for n in names} == {n: whole[n] for n in names}


@fuzz()
@given(st.one_of(session_lines().map(str.encode), redigited()))
def test_a_head_matches_as_its_shape_does(line: bytes) -> None:
    # The reader runs the head pattern once per shape and reuses what it found.
    assert HEAD is not None
    head = line[: max(line.find(MARKER), 0)]
    itself, shape = HEAD.fullmatch(head), HEAD.fullmatch(head.translate(SHAPE))
    assert (itself is None) == (shape is None)
    if itself is not None and shape is not None:
        assert itself.regs == shape.regs


def test_seconds_that_do_not_exist_are_not_a_shape_of_those_that_do() -> None:
    assert HEAD is not None
    head = b"Dec  3 10:15:%s mx1 postfix/smtpd[4242]: Anonymous "
    assert HEAD.fullmatch(head % b"59") and HEAD.fullmatch(head % b"09")
    assert HEAD.fullmatch(head % b"61") is None
    assert (head % b"61").translate(SHAPE) != (head % b"51").translate(SHAPE)


class Counted:
    """A pattern that counts how often it runs."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.groupindex, self.runs, self._pattern = pattern.groupindex, 0, pattern

    def fullmatch(self, text: bytes) -> re.Match[bytes] | None:
        self.runs += 1
        return self._pattern.fullmatch(text)

    def match(self, text: bytes) -> re.Match[bytes] | None:
        self.runs += 1
        return self._pattern.match(text)


def test_each_head_shape_and_each_tail_is_read_once() -> None:
    assert HEAD is not None and TAIL is not None
    head, tail = Counted(HEAD), Counted(TAIL)
    grammar = type(
        "CountedPostfix",
        (PostfixGrammar,),
        {"session_head": head, "session_tail": tail},
    )
    # Six seconds and six pids of one shape, two peers: 36 lines.
    body = "".join(
        f"Dec  3 10:15:1{n % 6} mx1 postfix/smtpd[424{n // 6}]: Anonymous TLS"
        f" connection established from mail{n % 2}.example.net[192.0.2.7]:"
        " TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
        for n in range(36)
    ).encode()
    fed, result, counts = read_watched(body, grammar)
    assert fed == [] and result.tls_successes == 36
    assert (head.runs, tail.runs) == (1, 2)
    assert sorted(k.peer_name for k in result.sessions) == [
        "mail0.example.net",
        "mail1.example.net",
    ]


def test_a_reader_that_forgets_what_it_learnt_counts_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Room for two heads and two tails: every few lines the reader starts afresh.
    monkeypatch.setattr(reader, "_REMEMBER", 2)
    body = "".join(
        f"Dec  3 10:{minute}:0{n} mx{n % 3} postfix/smtpd[4242]: Trusted TLS"
        f" connection established from mail{n}.example.net[192.0.2.{n}]:"
        " TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)\n"
        for minute in ("15", "16")
        for n in range(10)
    ).encode()
    found = assert_same(body)
    # Ten peers, each once a minute in one hour.
    assert sorted(found.sessions.values()) == [2] * 10


def test_a_cut_pattern_without_the_groups_it_needs_is_refused() -> None:
    broken = type(
        "BrokenPostfix",
        (PostfixGrammar,),
        {"session_head": re.compile(rb"(?P<stamp>\S+) ")},
    )
    with pytest.raises(TypeError, match="session_head must hold the groups stamp"):
        read(broken, b"")


def test_stamps_of_one_minute_in_other_forms_are_told_apart() -> None:
    # Berlin's 10:15, then UTC's 10:15 (Berlin's 11:15), then Berlin's again:
    # the minute's groups differ only in one that the first stamp lacks.
    body = "".join(
        f"{stamp} mx1 postfix/smtpd[1]: Anonymous TLS connection established"
        " from a.example[192.0.2.1]: TLSv1.3 with cipher X\n"
        for stamp in ("2026-12-03T10:15:02", "2026-12-03T10:15:03Z", "Dec  3 10:15:04")
    ).encode()
    found = assert_same(body)
    hours = sorted(
        (key.hour.astimezone(ZONE).hour, n) for key, n in found.sessions.items()
    )
    assert hours == [(10, 2), (11, 1)]


def test_long_heads_and_tails_are_matched_but_not_remembered() -> None:
    # Each line's tail holds 2 KiB of its own after the cipher: still session
    # lines, but a reader that remembered such tails could be made to fill memory.
    counts, result = Counts(), ScanResult()
    grammar = PostfixGrammar(Stream("mail.log", MTIME, ZONE))
    lines = LineReader(grammar, counts, result)
    lines.push(
        b"".join(
            b"Dec  3 10:15:02 mx1 postfix/smtpd[1]: Anonymous TLS connection"
            b" established from a.example[192.0.2.1]: TLSv1.3 with cipher X "
            + str(n).encode() * (2048 // len(str(n)))
            + b"\n"
            for n in range(1, 101)
        )
    )
    lines.close()
    assert result.tls_successes == 100
    assert lines._parts is not None and len(lines._parts.heads) == 1
    assert lines._parts.tails == {}


def test_a_reader_remembers_no_more_heads_and_tails_than_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reader, "_REMEMBER", 3)
    counts, result = Counts(), ScanResult()
    lines = LineReader(PostfixGrammar(Stream("mail.log", MTIME, ZONE)), counts, result)
    # Ten peers (ten tails) on hosts of one to ten letters (ten head shapes).
    lines.push(
        b"".join(
            b"Dec  3 10:15:02 " + b"m" * n + b" postfix/smtpd[1]: Anonymous TLS"
            b" connection established from a.example[192.0.2.%d]: TLSv1.3 with"
            b" cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n" % n
            for n in range(1, 11)
        )
    )
    lines.close()
    assert result.tls_successes == 10
    assert lines._parts is not None
    assert 1 <= len(lines._parts.heads) <= 3 and 1 <= len(lines._parts.tails) <= 3
