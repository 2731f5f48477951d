"""Session lines counted from the buffer must count exactly what `feed` would.

The Postfix grammar names its successful-session line as a bytes pattern, and the
reader counts the lines it matches without feeding them. Every test here reads
the same bytes twice, once with that pattern and once with a grammar that has
none (so that every line is fed), and compares what the two found. The Exim
grammar's pattern is checked the same way in `test_exim_session_lines`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtplogscan import Grammar, Record, Stream
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
    """Read `body` with and without the grammar's session pattern; return what
    the first read found once both are shown to agree."""
    assert grammar.session_line is not None
    fed_grammar = type(f"Fed{grammar.__name__}", (grammar,), {"session_line": None})
    counted, counted_counts = read(grammar, body, **how)  # type: ignore[arg-type]
    fed, fed_counts = read(fed_grammar, body, **how)  # type: ignore[arg-type]
    assert counted.sessions == fed.sessions
    assert counted.events == fed.events
    assert counted.deliveries == fed.deliveries
    assert counted_counts == fed_counts
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
