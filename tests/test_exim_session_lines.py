"""Exim arrivals and deliveries over TLS counted from the buffer count exactly
what `feed` would.

The Exim grammar names its arrival and delivery lines with ``X=`` (``<=``,
``=>``, ``->``) as its session pattern, and learns from each arrival counted
which connection delivered (`session_seen`). As in `test_session_lines`, every
test reads the same bytes with and without that pattern and compares what the
two found.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtplogscan.grammars.exim import EximGrammar

from .conftest import SAMPLES
from .hypothesis_profiles import fuzz
from .test_session_lines import ZONE, assert_same, read_watched

CIPHER = "ECDHE_SECP256R1__RSA_PSS_RSAE_SHA256__AES_256_GCM"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (SAMPLES / "exim").iterdir() if ".expected" not in p.name),
)
def test_samples_count_the_same(path: Path) -> None:
    found = assert_same(path.read_bytes(), EximGrammar)
    assert found.tls_successes > 0


def test_deliveries_are_counted_from_the_buffer() -> None:
    # Two deliveries to one peer within 10:00-11:00 Berlin time (one stamp with
    # the zone's own offset, +0100 in December), one to another peer at 11:00.
    body = (
        f"2026-12-03 10:15:02 1xZA34-0003aH-3C => a@example.net R=dnslookup"
        f" T=remote_smtp H=mx.example.net [203.0.113.1]:25 X=TLS1.3:{CIPHER}:256"
        f' CV=yes DN="CN=mx.example.net" C="250 OK"\n'
        f"2026-12-03 10:59:59 +0100 [4242] 1xZA35-0003aI-3D -> b@example.net"
        f" R=dnslookup T=remote_smtp H=mx.example.net [203.0.113.1]:25"
        f" X=TLS1.3:{CIPHER}:256 CV=yes\n"
        "2026-12-03 11:00:00 1xZA36-0003aJ-3E => c@example.org R=dnslookup"
        " T=remote_smtp H=mx.example.org [2001:db8::1]:25"
        " I=[192.0.2.25]:41234 X=TLSv1.2:ECDHE-RSA-AES256-GCM-SHA384:256 CV=no\n"
    ).encode()
    fed, result, counts = read_watched(body, EximGrammar)
    assert fed == []
    assert counts.lines == 3 and counts.candidates == 3
    found = sorted(
        (k.hour, k.direction, k.peer_name, k.peer_addr, k.protocol, k.cipher, n)
        for k, n in result.sessions.items()
    )
    assert found == [
        (
            datetime(2026, 12, 3, 10, tzinfo=ZONE),
            "outbound",
            "mx.example.net",
            "203.0.113.1",
            "TLS1.3",
            CIPHER,
            2,
        ),
        (
            datetime(2026, 12, 3, 11, tzinfo=ZONE),
            "outbound",
            "mx.example.org",
            "2001:db8::1",
            "TLSv1.2",
            "ECDHE-RSA-AES256-GCM-SHA384",
            1,
        ),
    ]
    assert {k.host for k in result.sessions} == {""}  # a mainlog names no host


# A delivery line in pieces, the usual form first, then odd ones: near misses the
# pattern must leave to feed, and odd forms it must count as feed would.
PIECES: dict[str, tuple[str, ...]] = {
    "stamp": (
        "2026-12-03 10:15:02",
        "2026-12-03 10:15:02.123",
        "2026-12-03 10:15:02 +0100",
        "2026-12-03 10:15:02 -0530",
        "2026-12-03 10:15:61",
        "2027-02-29 10:15:02",  # no such day: an unmatched line
        "2026-03-29 02:30:00",  # in the hour Berlin skips
        "2026-10-25 02:30:00",  # in the hour Berlin repeats
        "Dec  3 10:15:02 mx1 exim[42]: 2026-12-03 10:15:02",
        " 2026-12-03 10:15:02",
        "2026-12-03\u00a010:15:02",
    ),
    "pid": ("", "[4242] ", "[4242/1] ", "[\u0664\u0662] "),
    "msgid": ("1xZA34-0003aH-3C", "1xZA34-0003aH", "1xZA34-0003aH-3C-x"),
    "arrow": ("=>", "->", "<=", "*>", "=="),
    "before": (
        " R=dnslookup T=remote_smtp",
        " R=dnslookup T=remote_smtp H=first.example [192.0.2.99]",
        " R=x T=y H=not a host",
        " X=TLS1.2:EARLIER",
        " R=m\u00e9 T=y",
        "\tR=x",
        "",
    ),
    "name": (
        "mx.example.net ",
        "",
        "m\u00e9x.example.net ",
        "mx.example.net (helo.example) ",
        "(helo.example) ",
        "mx.example.net (helo X=TLS1.0:HELO) ",
        "mx.example.net (h\u00e9lo (x) ",
        "mx.example.net\u00a0",
        "mx.example.net",
    ),
    "addr": ("203.0.113.1", "2001:db8::1", "fe80::1%eth0", "", "203.0.113.\u0661"),
    "port": (":25", "", ":\u0662\u0665", ":x"),
    "iface": (
        "",
        " I=[192.0.2.25]:41234",
        " I=[192.0.2.25] P=esmtps",
        " P=esmtps H=second.example [192.0.2.98]",
        " P=esmtps X=",
    ),
    "protocol": ("TLS1.3", "TLSv1.2", "TLS\u00e91.3", "", "TLS 1.3"),
    "cipher": (
        f"{CIPHER}:256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES\u00e9:256",
        "AES\x1c:256",
        "AES\u00a0GCM:256",
        "",
        "AES:256\r",
    ),
    "after": (' CV=yes DN="CN=mx.example.net" C="250 OK"', "", " X=TLS1.2:LATER"),
}


def delivery_line(**odd: str) -> str:
    """Return the usual delivery line with the pieces named in `odd` replaced."""
    p = {name: forms[0] for name, forms in PIECES.items()} | odd
    return (
        f"{p['stamp']} {p['pid']}{p['msgid']} {p['arrow']} user@example.net"
        f"{p['before']} H={p['name']}[{p['addr']}]{p['port']}{p['iface']}"
        f" X={p['protocol']}:{p['cipher']}{p['after']}"
    )


@pytest.mark.parametrize(
    ("name", "form"), [(n, f) for n, forms in PIECES.items() for f in forms[1:]]
)
def test_each_odd_piece_between_usual_lines(name: str, form: str) -> None:
    usual, odd = delivery_line(), delivery_line(**{name: form})
    body = f"{usual}\n{odd}\n{usual}\n".encode("utf-8", "surrogateescape")
    found = assert_same(body, EximGrammar)
    assert found.tls_successes >= 2  # the usual lines, at least, were counted


# Lines around deliveries that change what a delivery means: an outbound error
# waits for the delivery of its message (its "=>" over TLS drops it), a deferral
# settles it, arrivals are remembered for the inbound errors that follow.
ROUTINE = [
    "2026-12-03 10:15:03 1xZA34-0003aH-3C H=mx.example.net [203.0.113.1]"
    " TLS error on connection (recv): Error in the pull function.",
    "2026-12-03 10:15:03 1xZA99-0003aH-3C H=mx.rude.example [203.0.113.2]"
    " TLS error on connection (send): The TLS connection was non-properly"
    " terminated.",
    "2026-12-03 10:15:04 1xZA99-0003aH-3C == user@example.net R=dnslookup"
    " T=remote_smtp defer (-37) H=mx.rude.example [203.0.113.2]:25: TLS session:"
    " (gnutls_handshake): Error in protocol version",
    "2026-12-03 10:15:05 1xZA77-0003aH-3C <= peer@example.org"
    " H=mail.example.org [198.51.100.1]:41001 P=esmtps X=TLS1.3:AES:256 CV=no S=302",
    "2026-12-03 10:15:05 1xZA34-0003aH-3C Completed",
    # The missing close_notify of the connection of the usual arrival line.
    "2026-12-03 10:15:06 TLS error on connection from mx.example.net"
    " [203.0.113.1]:25 (recv): The TLS connection was non-properly terminated.",
    "2026-12-03 10:15:06 [4242] TLS error on connection from mx.example.net"
    " [203.0.113.1]:25 (recv): The TLS connection was non-properly terminated.",
]


@st.composite
def delivery_lines(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(sorted(PIECES)), max_size=3))
    return delivery_line(**{n: draw(st.sampled_from(PIECES[n])) for n in names})


@fuzz()
@given(
    st.lists(st.one_of(delivery_lines(), st.sampled_from(ROUTINE)), max_size=40),
    st.integers(64, 4096),
)
def test_counted_deliveries_equal_fed_deliveries(lines: list[str], block: int) -> None:
    body = "\n".join(lines).encode("utf-8", "surrogateescape")
    assert_same(body, EximGrammar, block=block)


@fuzz()
@given(
    st.lists(st.one_of(delivery_lines(), st.sampled_from(ROUTINE)), max_size=40),
    st.sampled_from(
        [
            (datetime(2026, 12, 3, 10, 15, tzinfo=ZONE), None),
            (None, datetime(2026, 12, 3, 10, 15, 2, tzinfo=ZONE)),
            (datetime(2026, 12, 3, 9, 15, 3, tzinfo=UTC), None),
        ]
    ),
)
def test_windows_count_the_same(
    lines: list[str], window: tuple[datetime | None, datetime | None]
) -> None:
    body = "\n".join(lines).encode("utf-8", "surrogateescape")
    assert_same(body, EximGrammar, window=window)


def test_an_arrival_counted_from_the_buffer_is_remembered() -> None:
    # The peer's missing close_notify after a message arrived over TLS is no
    # failure; the same error on another connection (another port) is one.
    arrival = delivery_line(arrow="<=", pid="[4242] ", name="(helo.example) ")
    error = ROUTINE[-1]  # pid 4242, 203.0.113.1, port 25: the arrival's connection
    other = error.replace("]:25 (recv)", "]:26 (recv)")
    fed, result, _ = read_watched(
        f"{arrival}\n{error}\n{other}\n".encode(), EximGrammar
    )
    assert fed == [error, other]  # the arrival was counted, not fed
    assert [(e.peer.port, e.operation) for e in result.events] == [(26, "recv")]
    (key,) = result.sessions
    assert (key.direction, key.peer_name, key.peer_addr) == (
        "inbound",
        "",
        "203.0.113.1",
    )


def test_a_waiting_failure_has_its_delivery_fed() -> None:
    # While an outbound error waits for the delivery line of its message, that
    # line must reach feed, which joins the two: here the message went out over
    # TLS, so neither error is a failure to report, and one session is counted.
    for error in (ROUTINE[0], ROUTINE[0].replace("(recv)", "(gnutls_handshake)")):
        fed, result, _ = read_watched(
            f"{error}\n{delivery_line()}\n".encode(), EximGrammar
        )
        assert fed == [error, delivery_line()]
        assert result.events == [] and result.tls_successes == 1
