"""The Postfix grammar, shape by shape, on lines in Postfix's own wording."""

from __future__ import annotations

import pyparsing as pp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtplogscan import Direction, Kind, Outcome
from smtplogscan.grammars import postfix_lines as lines
from smtplogscan.grammars.postfix import PostfixGrammar

H = "Dec  3 15:01:02 mx1"


def test_joins_peer_and_reason_across_interleaved_processes(scan_text):
    result = scan_text(
        f"{H} postfix/smtpd[11]: SSL_accept error from a.example.net[192.0.2.1]: -1\n"
        f"{H} postfix/smtpd[12]: SSL_accept error from b.example.net[192.0.2.2]: -1\n"
        f"{H} postfix/smtpd[12]: warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:ssl/statem/statem_srvr.c:1657:\n"
        f"{H} postfix/smtpd[11]: warning: TLS library problem: error:0A0000C1:SSL routines::no shared cipher:ssl/statem/statem_srvr.c:2220:\n"
        f"{H} postfix/smtpd[11]: lost connection after STARTTLS from a.example.net[192.0.2.1]\n"
        f"{H} postfix/smtpd[12]: lost connection after STARTTLS from b.example.net[192.0.2.2]\n"
    )
    by_peer = {e.peer.addr: e for e in result.events}
    assert len(result.events) == 2
    assert by_peer["192.0.2.1"].kind is Kind.NO_SHARED_CIPHER
    assert by_peer["192.0.2.1"].source.endswith(":4")
    assert by_peer["192.0.2.2"].kind is Kind.PROTOCOL_VERSION
    assert by_peer["192.0.2.2"].peer.name == "b.example.net"
    assert all(e.direction is Direction.INBOUND for e in result.events)
    assert all(e.outcome is Outcome.DROPPED for e in result.events)


def test_several_library_lines_are_one_failure(scan_text):
    result = scan_text(
        f"{H} postfix/smtpd[11]: SSL_accept error from a.example.net[192.0.2.1]: -1\n"
        f"{H} postfix/smtpd[11]: warning: TLS library problem: 11:error:14094410:SSL routines:SSL3_READ_BYTES:sslv3 alert handshake failure:s3_pkt.c:1493:SSL alert number 40:\n"
        f"{H} postfix/smtpd[11]: warning: TLS library problem: 11:error:140940E5:SSL routines:SSL3_READ_BYTES:ssl handshake failure:s3_pkt.c:1275:\n"
        f"{H} postfix/smtpd[11]: lost connection after STARTTLS from a.example.net[192.0.2.1]\n"
    )
    (event,) = result.events
    assert event.kind is Kind.HANDSHAKE_ALERT
    assert "alert handshake failure" in event.detail
    assert "ssl handshake failure" in event.detail


def test_outbound_failure_then_plaintext_delivery_is_a_downgrade(scan_text):
    result = scan_text(
        f"{H} postfix/smtp[20]: SSL_connect error to mx.example.net[198.51.100.25]:25: -1\n"
        f"{H} postfix/smtp[20]: warning: TLS library problem: error:0A00018A:SSL routines::dh key too small:ssl/statem/statem_clnt.c:2233:\n"
        f"{H} postfix/smtp[20]: 4QxY1: Cannot start TLS: handshake failure\n"
        f"{H} postfix/smtp[20]: 4QxY1: to=<a@example.net>, relay=mx.example.net[198.51.100.25]:25, delay=1, delays=0/0/1/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n"
    )
    (event,) = result.events
    assert event.kind is Kind.DH_KEY_TOO_SMALL
    assert event.outcome is Outcome.PLAINTEXT
    assert event.queue_id == "4QxY1"
    assert (event.peer.name, event.peer.addr, event.peer.port) == (
        "mx.example.net",
        "198.51.100.25",
        25,
    )
    assert not result.deliveries  # a sent mail is no deferral


def test_outbound_failure_then_deferral(scan_text):
    result = scan_text(
        f"{H} postfix/smtp[20]: SSL_connect error to mx.example.net[198.51.100.25]:25: -1\n"
        f"{H} postfix/smtp[20]: warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:ssl/statem/statem_clnt.c:1101:\n"
        f"{H} postfix/smtp[20]: 4QxY1: to=<a@example.net>, relay=mx.example.net[198.51.100.25]:25, delay=1, delays=0/0/1/0, dsn=4.7.5, status=deferred (Cannot start TLS: handshake failure)\n"
    )
    (event,) = result.events
    assert event.outcome is Outcome.DEFERRED
    assert list(result.deliveries.items()) == [
        ((result.deliveries.most_common(1)[0][0]), 1)
    ]
    (delivery,) = result.deliveries
    assert (delivery.status, delivery.peer_addr) == ("deferred", "198.51.100.25")


def test_delivery_of_another_message_does_not_take_the_outcome(scan_text):
    result = scan_text(
        f"{H} postfix/smtp[20]: SSL_connect error to mx.example.net[198.51.100.25]:25: -1\n"
        f"{H} postfix/smtp[20]: warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:ssl/statem/statem_clnt.c:1101:\n"
        f"{H} postfix/smtp[20]: 4QxY1: Cannot start TLS: handshake failure\n"
        f"{H} postfix/smtp[20]: 5ZZZZ: to=<b@example.org>, relay=mx.example.org[192.0.2.9]:25, delay=1, delays=0/0/1/0, dsn=2.0.0, status=sent (250 Ok)\n"
    )
    (event,) = result.events
    assert event.outcome is Outcome.UNKNOWN


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (
            "4QxY1: to=<a@example.net>, relay=mx.example.net[192.0.2.5]:25, delay=0.4, delays=0/0/0.4/0, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host mx.example.net[192.0.2.5])",
            Kind.STARTTLS_UNAVAILABLE,
        ),
        (
            "4QxY1: to=<a@example.net>, relay=mx.example.net[192.0.2.5]:25, delay=0.4, delays=0/0/0.4/0, dsn=4.7.0, status=deferred (host mx.example.net[192.0.2.5] refused to start TLS: 454 4.7.0 TLS not available due to local problem)",
            Kind.STARTTLS_UNAVAILABLE,
        ),
        (
            "4QxY1: to=<a@example.net>, relay=mx.example.net[192.0.2.5]:25, delay=0.4, delays=0/0/0.4/0, dsn=5.7.0, status=bounced (host mx.example.net[192.0.2.5] said: 530 5.7.0 Must issue a STARTTLS command first (in reply to MAIL FROM command))",
            Kind.TLS_REQUIRED_BY_PEER,
        ),
    ],
)
def test_policy_failures_in_status_lines(scan_text, message, kind):
    result = scan_text(f"{H} postfix/smtp[30]: {message}\n")
    (event,) = result.events
    assert event.kind is kind
    assert event.direction is Direction.OUTBOUND
    assert event.peer.addr == "192.0.2.5"
    assert event.outcome in (Outcome.DEFERRED, Outcome.BOUNCED)


def test_certificate_verification_failure_with_its_deferral(scan_text):
    result = scan_text(
        f"{H} postfix/smtp[40]: certificate verification failed for mx.example.net[203.0.113.4]:25: untrusted issuer /C=US/O=Example/CN=Example CA\n"
        f"{H} postfix/smtp[40]: Untrusted TLS connection established to mx.example.net[203.0.113.4]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
        f"{H} postfix/smtp[40]: 8ABC: Server certificate not trusted\n"
        f"{H} postfix/smtp[40]: 8ABC: to=<a@example.net>, relay=mx.example.net[203.0.113.4]:25, delay=1, delays=0/0/1/0, dsn=4.7.5, status=deferred (Server certificate not trusted)\n"
    )
    (event,) = result.events
    assert event.kind is Kind.CERT_UNTRUSTED
    assert event.culprit == "peer"
    assert event.outcome is Outcome.DEFERRED
    assert event.queue_id == "8ABC"
    assert not result.sessions  # the untrusted session was abandoned


@pytest.mark.parametrize(
    ("lines", "kind"),
    [
        (
            [
                "warning: cannot get RSA private key from file /etc/ssl/private/mx1.key: disabling TLS support"
            ],
            Kind.LOCAL_SETUP,
        ),
        (
            [
                "warning: error configuring explicit DH parameters",
                "warning: TLS library problem: error:0A00018A:SSL routines::dh key too small:ssl/ssl_lib.c:1000:",
            ],
            Kind.LOCAL_SETUP,
        ),
    ],
)
def test_our_own_setup_failures_are_local(scan_text, lines, kind):
    text = "".join(f"{H} postfix/smtpd[50]: {line}\n" for line in lines)
    (event,) = scan_text(text).events
    assert event.kind is kind
    assert event.culprit == "local"


def test_successes_count_with_protocol_and_cipher(scan_text):
    result = scan_text(
        f"{H} postfix/smtpd[60]: Anonymous TLS connection established from a.example.org[192.0.2.7]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256\n"
        f"{H} postfix/smtp[61]: Verified TLS connection established to mx.example.com[192.0.2.8]:25: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)\n"
    )
    inbound, outbound = result.sessions
    assert (inbound.direction, inbound.protocol, inbound.cipher) == (
        "inbound",
        "TLSv1.3",
        "TLS_AES_256_GCM_SHA384",
    )
    assert (outbound.direction, outbound.peer_addr) == ("outbound", "192.0.2.8")
    assert result.tls_successes == 2
    assert not result.events


def test_eof_after_a_complete_session_is_not_a_failure(scan_text):
    result = scan_text(
        f"{H} postfix/smtpd[60]: Anonymous TLS connection established from a.example.org[192.0.2.7]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
        f"{H} postfix/smtpd[60]: warning: TLS library problem: error:0A000126:SSL routines::unexpected eof while reading:ssl/record/rec_layer_s3.c:317:\n"
    )
    assert not result.events
    assert result.counts.unmatched == 0


@pytest.mark.parametrize(
    "prefix",
    [
        "Dec  3 15:01:02 mx1 postfix/smtpd[7]:",
        "2026-12-03T15:01:02.123456+01:00 mx1 postfix/smtpd[7]:",
        "2026-12-03T15:01:02+0100 mx1 postfix/smtpd[7]:",
        "Dec  3 15:01:02 mx1 postfix/submission/smtpd[7]:",
        "Dec  3 15:01:02 mx1 postfix/smtps/smtpd[7]:",
        "Dec  3 15:01:02 mx1 postfix-in/smtpd[7]:",
        "Dec  3 15:01:02 mx1 enforced-tls-smtp/smtpd[7]:",
        "mail_1  | Dec  3 15:01:02 mx1 postfix/smtpd[7]:",
        "2026-12-03T15:01:02.123456+01:00 INFO    postfix/smtpd[7]:",
    ],
)
def test_every_header_shape(scan_text, prefix):
    result = scan_text(
        f"{prefix} SSL_accept error from a.example.org[192.0.2.7]: -1\n"
        f"{prefix} warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:ssl/statem/statem_srvr.c:1657:\n"
    )
    (event,) = result.events
    assert event.kind is Kind.PROTOCOL_VERSION
    assert event.time is not None
    assert (event.time.month, event.time.day, event.time.hour) == (12, 3, 15)
    assert event.host in ("mx1", "")


def test_rfc3339_offset_is_kept(scan_text):
    result = scan_text(
        "2026-12-03T15:01:02.5+01:00 mx1 postfix/smtpd[7]: SSL_accept error from a.example.org[192.0.2.7]: lost connection\n"
    )
    (event,) = result.events
    assert event.time.isoformat() == "2026-12-03T15:01:02.500000+01:00"
    assert event.kind is Kind.CONNECTION_LOST


def test_journal_json_with_bytes_message(scan_text):
    text = (
        '{"__REALTIME_TIMESTAMP":"1796306400000000","_HOSTNAME":"mx3","SYSLOG_IDENTIFIER":"postfix/smtpd","_PID":"9",'
        '"MESSAGE":"SSL_accept error from unknown[192.0.2.99]: -1"}\n'
        '{"__REALTIME_TIMESTAMP":"1796306400000100","_HOSTNAME":"mx3","SYSLOG_IDENTIFIER":"postfix/smtpd","_PID":"9",'
        '"MESSAGE":[119,97,114,110,105,110,103,58,32,84,76,83,32,108,105,98,114,97,114,121,32,112,114,111,98,108,101,109,58,32,110,111,32,115,104,97,114,101,100,32,99,105,112,104,101,114,255]}\n'
    )
    (event,) = scan_text(text).events
    assert event.kind is Kind.NO_SHARED_CIPHER
    assert event.host == "mx3"
    assert event.time.isoformat() == "2026-12-03T14:00:00+00:00"


def test_unknown_tls_line_is_counted_not_lost(scan_text):
    result = scan_text(
        f"{H} postfix/smtpd[7]: warning: TLS handshake went sideways in a new way\n"
    )
    assert result.counts.unmatched == 1
    assert "sideways" in result.counts.unmatched_examples[0]


def test_sniff_prefers_postfix_lines():
    lines = [f"{H} postfix/smtpd[1]: connect from a.example.org[192.0.2.7]"] * 3
    assert PostfixGrammar.sniff(lines) > 0.9
    assert (
        PostfixGrammar.sniff(["2026-12-03 15:01:02 1rABCD-000123-Xy <= a@example.org"])
        == 0
    )
    assert PostfixGrammar.sniff(["#Software: Microsoft Exchange Server"]) == 0


# Postfix 3.10 writes its TLSRPT verdict as
# "TLSRPT: status=failure, domain=%s, receiving_mx=%s[%s], failure_type=%s".
TLSRPT_LINE = (
    "TLSRPT: status=failure, domain=example.net, "
    "receiving_mx=mx.example.net[192.0.2.5], failure_type=starttls-not-supported"
)


def test_tlsrpt_line_stands_for_a_policy_failure_and_takes_its_outcome(scan_text):
    result = scan_text(
        f"{H} postfix/smtp[70]: {TLSRPT_LINE}\n"
        f"{H} postfix/smtp[70]: 4QxY1: to=<a@example.net>, relay=mx.example.net[192.0.2.5]:25, delay=0.4, delays=0/0/0.4/0, dsn=4.7.4, status=deferred (TLS is required, but was not offered by host mx.example.net[192.0.2.5])\n"
    )
    (event,) = result.events
    assert (event.kind, event.culprit, event.outcome) == (
        Kind.STARTTLS_UNAVAILABLE,
        "peer",
        Outcome.DEFERRED,
    )
    assert event.extra == {"tlsrpt_failure_type": "starttls-not-supported"}
    assert event.source.endswith(":1")


def test_tlsrpt_line_joins_the_handshake_it_reports(scan_text):
    result = scan_text(
        f"{H} postfix/smtp[71]: certificate verification failed for mx.example.net[192.0.2.5]:25: certificate has expired\n"
        f"{H} postfix/smtp[71]: {TLSRPT_LINE.replace('starttls-not-supported', 'certificate-expired')}\n"
    )
    (event,) = result.events
    assert event.kind is Kind.CERT_EXPIRED
    assert event.extra == {"tlsrpt_failure_type": "certificate-expired"}


# The failure shapes are single Regex elements joined by `sequence`; they must
# read a message exactly as the pyparsing And of their parts would.
_REST = pp.Regex(r".*").leave_whitespace()("reason")
_COMPOSED = {
    "SSL_ERROR": pp.Regex(r"SSL_(?P<op>accept|connect) error (?:from|to)")
    + lines.PEER
    + pp.Suppress(":")
    + _REST,
    "VERIFY_FAILED": pp.Regex(r"(?:server )?certificate verification failed for")
    + lines.PEER
    + pp.Suppress(":")
    + _REST,
    "LOST_AFTER_STARTTLS": pp.Regex(r"(?:lost connection|timeout) after STARTTLS from")
    + lines.PEER,
    "TLSRPT": pp.Regex(r"TLSRPT: status=failure,.*?receiving_mx=") + lines.PEER + _REST,
}
_OPENINGS = st.sampled_from(
    [
        "SSL_accept error from",
        "SSL_connect error to",
        "server certificate verification failed for",
        "certificate verification failed for",
        "lost connection after STARTTLS from",
        "timeout after STARTTLS from",
        "TLSRPT: status=failure, domain=example.net, receiving_mx=",
        "TLSRPT: status=failure, receiving_mx=x, receiving_mx=",
    ]
)
_PIECES = st.sampled_from(
    [" ", "\t", "  ", "", "unknown", "mx.example.net", "[", "]", "192.0.2.4", ":",
     "25", ": ", " -1", "2001:db8::1", "x[1.2.3.4]:25 foo", "\u00a0", "\n"]
)  # fmt: skip


@given(_OPENINGS, st.lists(_PIECES, max_size=8))
def test_failure_shapes_read_as_their_composed_parts(
    opening: str, pieces: list[str]
) -> None:
    text = opening + "".join(pieces)
    for name, composed in _COMPOSED.items():
        try:
            expected: dict[str, object] | None = composed.parse_string(text).as_dict()
        except pp.ParseException:
            expected = None
        found = lines.parse(getattr(lines, name), text)
        if found is not None:
            found = {k: v for k, v in found.items() if v is not None}
        if expected is not None:
            expected = {k: v for k, v in expected.items() if v is not None}
        assert found == expected, name
