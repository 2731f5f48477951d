"""The Exim grammar: sniffing, every line shape, the samples and the corpus."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from smtplogscan import (
    Delivery,
    Event,
    Outcome,
    Record,
    Stream,
    Success,
)
from smtplogscan.grammars.exim import EximGrammar

from .conftest import ROOT, published

SAMPLES = ROOT / "sample_logs" / "exim"
STAMP = "2026-12-03 15:01:02 "


def feed(*lines: str) -> list[Record]:
    grammar = EximGrammar(Stream("test", datetime(2026, 12, 31, tzinfo=UTC)))
    out: list[Record] = []
    for number, line in enumerate(lines, start=1):
        out.extend(grammar.feed(line, number) or [])
    return out + grammar.finish()


def events(*lines: str) -> list[Event]:
    return [r for r in feed(*lines) if isinstance(r, Event)]


# -- sniffing -------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.log")), ids=lambda p: p.name)
def test_sniffs_its_samples_high(path: Path) -> None:
    lines = path.read_text().splitlines()[:64]
    assert EximGrammar.sniff(lines) >= 0.7


def test_sniffs_postfix_low() -> None:
    lines = [
        "Apr 14 19:24:31 mx1 postfix/smtpd[4787]: connect from unknown[192.0.2.4]",
        "Apr 14 19:24:31 mx1 postfix/smtpd[4787]: SSL_accept error from "
        "unknown[192.0.2.4]: -1",
    ]
    assert EximGrammar.sniff(lines) == 0.0
    for path in sorted((ROOT / "sample_logs" / "postfix").glob("*.log")):
        assert EximGrammar.sniff(path.read_text().splitlines()[:64]) < 0.2


# -- line shapes ----------------------------------------------------------------------

INBOUND = [
    (
        "TLS error on connection from mx.example.net (helo.example.net) "
        "[192.0.2.7]:41003 I=[192.0.2.25]:25 (gnutls_handshake): "
        "No supported cipher suites have been found.",
        ("mx.example.net", "helo.example.net", "192.0.2.7", 41003),
        "no_shared_cipher",
        "gnutls_handshake",
    ),
    (
        "TLS error on connection from (helo.example.net) [192.0.2.7] (SSL_accept): "
        "error:0A000102:SSL routines::unsupported protocol",
        ("", "helo.example.net", "192.0.2.7", None),
        "protocol_version",
        "SSL_accept",
    ),
    (
        "TLS error on connection from [2001:db8::7]:41003 (gnutls_handshake): "
        "An unexpected TLS packet was received.",
        ("", "", "2001:db8::7", 41003),
        "not_tls",
        "gnutls_handshake",
    ),
    (
        "TLS error on connection from (real.example.org - 198.51.100.9 -) "
        "[127.0.0.1]:11146 (SSL_accept): error:140760FC:SSL routines:"
        "SSL23_GET_CLIENT_HELLO:unknown protocol",
        ("real.example.org", "real.example.org - 198.51.100.9 -", "198.51.100.9", None),
        "not_tls",
        "SSL_accept",
    ),
    (
        "TLS error on connection from mail.example.org [192.0.2.8] (recv): "
        "A TLS fatal alert has been received.: Certificate is bad",
        ("mail.example.org", "", "192.0.2.8", None),
        "cert_untrusted",
        "recv",
    ),
    (
        "TLS error on connection from mail.example.org [192.0.2.8] "
        "(cert/key setup: cert=/etc/exim4/mx.pem key=/etc/exim4/mx.key): "
        "Error while reading file.",
        ("mail.example.org", "", "192.0.2.8", None),
        "local_setup",
        "cert/key setup: cert=/etc/exim4/mx.pem key=/etc/exim4/mx.key",
    ),
]


@pytest.mark.parametrize(("text", "peer", "kind", "op"), INBOUND)
@pytest.mark.parametrize(
    "prefix",
    [
        STAMP,
        "2026-12-03 15:01:02 +0100 [1234] ",
        "Dec  3 15:01:02 mx1 exim[1234]: " + STAMP,
        "Dec  3 15:01:02 mx1 exim[1234]: ",
    ],
    ids=["mainlog", "zone-pid", "syslog", "syslog-only"],
)
def test_inbound_failure(
    prefix: str, text: str, peer: tuple[str, str, str, int | None], kind: str, op: str
) -> None:
    (event,) = events(prefix + text)
    got = (event.peer.name, event.peer.helo, event.peer.addr, event.peer.port)
    assert got == peer
    assert (event.direction, event.kind, event.operation) == ("inbound", kind, op)
    assert event.outcome is Outcome.DROPPED
    assert event.time is not None and event.time.minute == 1
    assert event.host == ("mx1" if prefix.startswith("Dec") else "")
    assert event.detail in text


def test_proxy_address_kept() -> None:
    (event,) = events(STAMP + INBOUND[3][0])
    assert event.extra["proxy_addr"] == "127.0.0.1"


def test_zone_offset_is_read() -> None:
    (event,) = events("2026-12-03 15:01:02 +0100 " + INBOUND[0][0])
    assert event.time == datetime(2026, 12, 3, 14, 1, 2, tzinfo=UTC)


MSG = STAMP + "1xZA35-0003ay-0w "

OUTBOUND = [
    (
        [
            MSG + "== user@example.net R=dnslookup T=remote_smtp defer (-37) "
            "H=mx.example.net [203.0.113.5]:25: TLS session: (gnutls_handshake): "
            "The Diffie-Hellman prime sent by the server is not acceptable "
            "(not long enough)."
        ],
        "dh_key_too_small",
        "deferred",
        25,
    ),
    (
        [
            MSG + "H=mx.example.net [203.0.113.5] TLS error on connection (recv): "
            "A TLS fatal alert has been received: Certificate is required",
            MSG + "== user@example.net R=dnslookup T=remote_smtp defer (-37) "
            "H=mx.example.net [203.0.113.5]:25: TLS session: error on first read",
        ],
        "handshake_alert",
        "deferred",
        None,
    ),
    (
        [
            MSG + "[203.0.113.5] SSL verify error: depth=0 error=self-signed "
            "certificate cert=/CN=mx.example.net",
            MSG + "** user@example.net R=dnslookup T=remote_smtp "
            "H=mx.example.net [203.0.113.5]: TLS session: (SSL_connect): "
            "error:0A000086:SSL routines::certificate verify failed",
        ],
        "cert_untrusted",
        "bounced",
        None,
    ),
    (
        [
            MSG + "TLS session: (certificate verification failed): certificate "
            "invalid: delivering unencrypted to H=mx.example.net [203.0.113.5]:25 "
            "(not in hosts_require_tls)",
            MSG + "=> user@example.net R=dnslookup T=remote_smtp "
            'H=mx.example.net [203.0.113.5]:25 C="250 OK"',
        ],
        "cert_untrusted",
        "plaintext",
        25,
    ),
    (
        [
            MSG + "TLS error on connection to mx.example.net [203.0.113.5] "
            "(SSL_connect): error:0A00018A:SSL routines::dh key too small",
            MSG + "TLS session failure: delivering unencrypted to mx.example.net "
            "[203.0.113.5] (not in hosts_require_tls)",
        ],
        "dh_key_too_small",
        "plaintext",
        None,
    ),
    (
        [
            MSG + "H=mx.example.net [203.0.113.5]:25: a TLS session is required, "
            "but the server did not offer TLS support",
            MSG + "== user@example.net R=dnslookup T=remote_smtp defer (-38) "
            "H=mx.example.net [203.0.113.5]:25: a TLS session is required, but "
            "the server did not offer TLS support",
        ],
        "starttls_unavailable",
        "deferred",
        25,
    ),
    (
        [
            MSG + "** user@example.net R=dnslookup T=remote_smtp H=mx.example.net "
            "[203.0.113.5]: a TLS session is required, but an attempt to start "
            "TLS failed"
        ],
        "starttls_unavailable",
        "bounced",
        None,
    ),
]


@pytest.mark.parametrize(("lines", "kind", "outcome", "port"), OUTBOUND)
def test_outbound_failure(
    lines: list[str], kind: str, outcome: str, port: int | None
) -> None:
    (event,) = events(*lines)
    assert (event.direction, event.kind, event.outcome) == ("outbound", kind, outcome)
    assert (event.peer.addr, event.peer.port) == ("203.0.113.5", port)
    assert event.queue_id == "1xZA35-0003ay-0w"
    assert event.source == "test:1"


def test_every_deferral_and_bounce_is_a_delivery() -> None:
    records = feed(
        MSG + "== user@example.net R=dnslookup T=remote_smtp defer (111): "
        "Connection refused",
        MSG + "** user@example.net R=dnslookup T=remote_smtp H=mx.example.net "
        "[203.0.113.5]: SMTP error from remote mail server after RCPT TO:"
        "<user@example.net>: 550 5.1.1 no such user",
    )
    deliveries = [r for r in records if isinstance(r, Delivery)]
    assert [d.status for d in deliveries] == [Outcome.DEFERRED, Outcome.BOUNCED]
    assert not [r for r in records if isinstance(r, Event)]


@pytest.mark.parametrize(
    ("line", "direction", "protocol", "cipher", "helo"),
    [
        (
            "1xZA2r-0003Zg-00 <= peer@example.net H=(mail.example.org) "
            "[198.51.100.1]:41001 P=esmtps X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256"
            "__AES_256_GCM:256 CV=no S=302",
            "inbound",
            "TLS1.3",
            "ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM",
            "mail.example.org",
        ),
        (
            "1xZA2r-0003Zg-00 => user@example.org R=dnslookup T=remote_smtp "
            "H=mx.example.org [198.51.100.1] X=TLSv1.2:ECDHE-RSA-AES256-GCM-SHA384:256"
            ' CV=yes DN="/CN=mx.example.org" C="250 OK"',
            "outbound",
            "TLSv1.2",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "",
        ),
    ],
)
def test_success(
    line: str, direction: str, protocol: str, cipher: str, helo: str
) -> None:
    (success,) = feed(STAMP + line)
    assert isinstance(success, Success)
    assert (success.direction, success.protocol, success.cipher) == (
        direction,
        protocol,
        cipher,
    )
    assert (success.peer.addr, success.peer.helo) == ("198.51.100.1", helo)


def test_close_notify_after_delivery_is_not_a_failure() -> None:
    inbound = [
        "2026-12-03 15:01:02 [13494] 1xZA2Z-0003Ve-1X <= peer@example.net "
        "H=(relay.example.org) [198.51.100.2]:41002 P=esmtps "
        "X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no S=303",
        "2026-12-03 15:01:02 [13494] TLS error on connection from "
        "(relay.example.org) [198.51.100.2]:41002 (recv): "
        "The TLS connection was non-properly terminated.",
    ]
    outbound = [
        MSG + "H=mx.example.net [203.0.113.2] TLS error on connection (recv): "
        "Error in the pull function.",
        MSG + "=> user@example.net R=may T=remote_may H=mx.example.net "
        "[203.0.113.2]:25 X=TLS1.3:ECDHE_SECP256R1__RSA_PSS_RSAE_SHA256__AES_256_GCM"
        ':256 CV=yes C="250 OK queued"',
    ]
    assert not events(*inbound)
    assert not events(*outbound)
    # The same error on a connection that delivered nothing is a failure.
    (event,) = events(inbound[1])
    assert event.kind == "connection_lost"


def test_untrue_tls_looking_line_is_unmatched() -> None:
    grammar = EximGrammar(Stream("test", datetime(2026, 12, 31, tzinfo=UTC)))
    assert grammar.feed(STAMP + "TLS error on something new", 1) is None
    assert grammar.feed(STAMP + "Start queue run: pid=1234", 2) == []


# -- the public corpus ----------------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [r for r in published("exim") if r["is_tls_failure"] and r["primary"]],
    ids=lambda r: str(r["line"])[:60],
)
def test_corpus_failures(row: dict[str, object]) -> None:
    found = events(str(row["line"]))
    assert len(found) == 1
    assert found[0].kind == row["kind"]
    assert found[0].direction == row["direction"]


def test_corpus_non_failures_give_no_event() -> None:
    for row in published("exim"):
        if not row["is_tls_failure"]:
            assert not events(str(row["line"])), row["line"]


def test_prefilter_passes_every_parsed_line() -> None:
    for path in SAMPLES.glob("*.log"):
        grammar = EximGrammar(Stream("test", datetime(2026, 12, 31, tzinfo=UTC)))
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if grammar.feed(line, number):
                assert any(word in line for word in EximGrammar.prefilter), line


def test_sniff_knows_a_log_of_message_lines_only() -> None:
    # A grep for one message id: every line carries it, none is a <= or => line.
    lines = [
        "2026-12-03 15:01:02 1rABCD-000123-Xy H=mx.example.net [192.0.2.1] "
        "TLS error on connection (gnutls_handshake): The Diffie-Hellman prime "
        "sent by the server is not acceptable (not long enough)."
    ] * 5
    assert EximGrammar.sniff(lines) > 0.9
