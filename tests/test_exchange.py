"""The Exchange grammars: protocol logs joined by session, and message tracking."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smtplogscan import (
    Direction,
    Event,
    Record,
    Stream,
    Success,
    registry,
    scan,
)
from smtplogscan.causes import catalogue, classify
from smtplogscan.grammars import exchange
from smtplogscan.grammars.exchange import ExchangeGrammar
from smtplogscan.grammars.exchange_tracking import ExchangeTrackingGrammar

from .conftest import SAMPLES, published

FOLDER = SAMPLES / "exchange"
HEADER = (
    "#Software: Microsoft Exchange Server\n#Version: 15.02.1544.004\n"
    "#Log-type: SMTP {way} Protocol Log\n#Date: 2025-03-14T10:00:00.000Z\n"
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
    "remote-endpoint,event,data,context\n"
)
RECV = (
    "2025-03-14T10:00:01.000Z,EX01\\Default Frontend EX01,08DD62A1B0C4E0{sid},{seq},"
    "203.0.113.10:25,192.0.2.9:40000,"
)
SEND = (
    "2025-03-14T10:00:01.000Z,Outbound,08DD62A1B0C4E0{sid},{seq},"
    "203.0.113.20:40000,198.51.100.9:25,"
)
# Samples whose hand-worked events need a catalogue change outside this grammar.


@pytest.fixture(scope="module")
def grammars() -> registry.Registry:
    loaded = registry.load()
    if "exchange-tracking" not in loaded.grammars:  # until its entry point is installed
        loaded.add(ExchangeTrackingGrammar, "tests")
    return loaded


def _stream() -> Stream:
    return Stream("test.log", datetime(2025, 3, 15, tzinfo=UTC), UTC)


def _feed(
    grammar: ExchangeGrammar | ExchangeTrackingGrammar, text: str
) -> list[Record]:
    out: list[Record] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        records = grammar.feed(line, lineno)
        assert records is not None, f"line {lineno} not understood: {line}"
        out += records
    return out + grammar.finish()


def _events(records: list[Record]) -> list[Event]:
    return [r for r in records if isinstance(r, Event)]


# -- sniffing ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["RECV2025031410-1.LOG", "SEND2019110406-1.LOG"])
def test_protocol_logs_sniff_high(name: str) -> None:
    lines = (FOLDER / name).read_text(encoding="utf-8").splitlines()[:64]
    assert ExchangeGrammar.sniff(lines) >= 0.9
    assert ExchangeTrackingGrammar.sniff(lines) == 0.0


def test_tracking_log_sniffs_high_only_for_its_grammar() -> None:
    lines = (FOLDER / "MSGTRK2025031411-1.LOG").read_text(encoding="utf-8").splitlines()
    assert ExchangeTrackingGrammar.sniff(lines) >= 0.9
    assert ExchangeGrammar.sniff(lines) == 0.0


def test_rows_without_header_still_sniff() -> None:
    lines = (
        (FOLDER / "SEND2019110406-1.LOG").read_text(encoding="utf-8").splitlines()[5:40]
    )
    assert ExchangeGrammar.sniff(lines) > 0.5


@pytest.mark.parametrize(
    "line",
    [
        "Jan 30 16:41:30 mx1 postfix/smtpd[1401]: SSL_accept error from"
        " unknown[192.0.2.4]: -1",
        "2022-08-13 14:01:11 TLS error on connection from mail.example.net"
        " [192.0.2.7] (SSL_accept): timed out",
    ],
)
def test_other_mtas_sniff_low(line: str) -> None:
    assert ExchangeGrammar.sniff([line] * 10) < 0.2
    assert ExchangeTrackingGrammar.sniff([line] * 10) < 0.2


# -- samples ----------------------------------------------------------------------


def test_tracking_rows_without_tls_reason_are_deliveries(
    grammars: registry.Registry,
) -> None:
    result = scan([str(FOLDER / "MSGTRK2025031411-1.LOG")], grammars)
    assert sorted((k.status, k.peer_name) for k in result.deliveries) == [
        ("bounced", "example.org"),
        ("deferred", "lab.example.net"),
    ]


# -- row shapes -------------------------------------------------------------------


def test_bom_quotes_and_two_header_blocks(grammars: registry.Registry) -> None:
    log = FOLDER / "RECV2025031410-1.LOG"
    assert log.read_bytes().startswith(b"\xef\xbb\xbf#Software")
    result = scan([str(log)], grammars)
    socket = next(e for e in result.events if e.cause == "exchange-socket-error")
    # The 2016+ certificate row: quoted, with commas and doubled quotes inside.
    assert socket.extra["local_certificate_subject"] == (
        'CN=mail.contoso.com, O="Contoso, Ltd.", L=Redmond, S=WA, C=US'
    )
    assert (
        socket.extra["local_certificate_thumbprint"]
        == "7A3F9C2E4B1D8A6F0E5C3B2A1908F7E6D5C4B3A2"
    )
    assert socket.host == "EX01.contoso.com"
    # The session after the second header block is still read as Receive.
    late = next(e for e in result.events if e.source.endswith(":49"))
    assert late.direction is Direction.INBOUND


def test_2013_certificate_rows_with_empty_endpoints_and_unicode_connector(
    grammars: registry.Registry,
) -> None:
    result = scan([str(FOLDER / "SEND2019110406-1.LOG")], grammars)
    first = next(e for e in result.events if e.source.endswith(":25"))
    assert first.extra["local_certificate_subject"] == "CN=EX02.contoso.com"
    assert first.extra["local_certificate_issuer"].startswith(
        "CN=Contoso Issuing CA 01, OU=PKI"
    )
    assert first.peer.addr == "198.51.100.40"  # from rows after the empty endpoints
    assert first.host == "EX02.contoso.com"


def test_successes_map_schannel_protocols() -> None:
    rows = [
        ("SP_PROT_TLS1_2_SERVER", "TLSv1.2"),
        ("SP_PROT_TLS1_0_CLIENT", "TLSv1.0"),
        ("SP_PROT_TLS1_SERVER", "TLSv1.0"),
        ("SP_PROT_TLS1_1_CLIENT", "TLSv1.1"),
        ("SP_PROT_TLS1_3_SERVER", "TLSv1.3"),
        ("SP_PROT_SSL3_SERVER", "SSLv3"),
    ]
    text = HEADER.format(way="Receive") + "".join(
        RECV.format(sid=f"{n:02d}", seq=1)
        + f'*,,"TLS protocol {proto} negotiation succeeded using bulk encryption'
        " algorithm CALG_AES_256 with strength 256 bits,"
        ' MAC hash algorithm CALG_SHA_384"\n'
        for n, (proto, _) in enumerate(rows)
    )
    got = [r for r in _feed(ExchangeGrammar(_stream()), text) if isinstance(r, Success)]
    assert [(s.protocol, s.cipher) for s in got] == [
        (v, "CALG_AES_256") for _, v in rows
    ]
    assert all(s.direction is Direction.INBOUND for s in got)


def test_columns_follow_the_fields_line() -> None:
    text = (
        "#Log-type: SMTP Send Protocol Log\n"
        "#Fields: session-id,event,data,context,remote-endpoint,date-time,connector-id,"
        "sequence-number,local-endpoint\n"
        "08D760DF231F00AA,<,220 mx.example.net ESMTP,,[2001:db8::25]:25,"
        "2025-03-14T10:00:00.000Z,Out,1,\n"
        "08D760DF231F00AA,*,,TLS negotiation failed with error NoCredentials,"
        "[2001:db8::25]:25,2025-03-14T10:00:01.000Z,Out,2,\n"
        "08D760DF231F00AA,-,,Local,[2001:db8::25]:25,2025-03-14T10:00:02.000Z,Out,3,\n"
    )
    (event,) = _events(_feed(ExchangeGrammar(_stream()), text))
    assert (event.peer.name, event.peer.addr, event.peer.port) == (
        "mx.example.net",
        "2001:db8::25",
        25,
    )
    assert (event.kind, event.culprit, event.direction) == (
        "local_setup",
        "local",
        Direction.OUTBOUND,
    )
    assert event.time == datetime(2025, 3, 14, 10, 0, 1, tzinfo=UTC)


def test_one_event_per_session() -> None:
    # The `*` row and the reply of the same failure are one event, at the first row.
    text = HEADER.format(way="Send") + "".join(
        SEND.format(sid="01", seq=n) + row + "\n"
        for n, row in enumerate(
            [
                "<,220 mx.example.net ESMTP,",
                "*,,TLS negotiation failed with error InvalidToken",
                "<,454 4.7.0 Failed to establish appropriate TLS channel,",
                "-,,Local",
            ]
        )
    )
    (event,) = _events(_feed(ExchangeGrammar(_stream()), text))
    assert event.source == "test.log:7"
    assert (event.cause, str(event.outcome)) == ("exchange-invalid-token", "deferred")


def test_unknown_token_is_kept_verbatim() -> None:
    text = (
        HEADER.format(way="Receive")
        + RECV.format(sid="01", seq=5)
        + ("*,,TLS negotiation failed with error MessageAltered\n")
    )
    (event,) = _events(_feed(ExchangeGrammar(_stream()), text))
    assert event.detail == "TLS negotiation failed with error MessageAltered"
    assert event.cause == "exchange-tls-negotiation-failed"


def test_open_sessions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exchange, "MAX_OPEN", 3)
    grammar = ExchangeGrammar(_stream())
    text = HEADER.format(way="Receive") + "".join(
        RECV.format(sid=f"{n:02d}", seq=1)
        + "*,,TLS negotiation failed with error SocketError\n"
        for n in range(5)
    )
    emitted = []
    for lineno, line in enumerate(text.splitlines(), 1):
        emitted += grammar.feed(line, lineno) or []
    assert len(grammar._sessions) == 3
    assert len(_events(emitted)) == 2  # the two oldest, evicted and not lost
    assert len(_events(grammar.finish())) == 3


def test_tls_looking_rows_not_understood_are_counted() -> None:
    grammar = ExchangeGrammar(_stream())
    grammar.feed(HEADER.format(way="Receive").splitlines()[2], 1)
    assert (
        grammar.feed(RECV.format(sid="01", seq=1) + "*,,TLS renegotiation refused", 2)
        is None
    )
    assert (
        grammar.feed(
            RECV.format(sid="01", seq=2)
            + "*,,Client certificate chain validation status: 'EmptyCertificate'",
            3,
        )
        == []
    )


# -- catalogue ----------------------------------------------------------------------


def test_every_exchange_entry_classifies_its_example() -> None:
    mine = [c for c in catalogue() if c.file == "25-exchange.toml"]
    assert len(mine) >= 12
    for entry in mine:
        assert entry.mta == "exchange"
        got = classify(entry.example, entry.direction or Direction.OUTBOUND, "exchange")
        assert got.id == entry.id, f"{entry.id}: example taken by {got.id}"


# -- corpus -------------------------------------------------------------------------


def _corpus(formats: tuple[str, ...]) -> list[dict[str, object]]:
    return [r for r in published("exchange") if r["format"] in formats]


def test_corpus_protocol_rows_parse() -> None:
    rows = _corpus(("exchange-smtp-send-protocol", "exchange-smtp-receive-protocol"))
    assert len(rows) >= 20
    for row in rows:
        way = "Send" if row["format"] == "exchange-smtp-send-protocol" else "Receive"
        grammar = ExchangeGrammar(_stream())
        grammar.feed(f"#Log-type: SMTP {way} Protocol Log", 1)
        assert grammar.feed(str(row["line"]), 2) is not None, row["line"]


def test_corpus_hybrid_receive_row_without_starttls_is_a_failure() -> None:
    (row,) = [
        r for r in _corpus(("exchange-smtp-receive-protocol",)) if r["is_tls_failure"]
    ]
    grammar = ExchangeGrammar(_stream())
    grammar.feed("#Log-type: SMTP Receive Protocol Log", 1)
    (event,) = _events(_feed(grammar, str(row["line"])))
    assert (event.kind, event.peer.addr) == (row["kind"], row["peer_ip"])


@pytest.mark.xfail(
    strict=True,
    reason="Exchange Online message trace text (Reason: [{LED=...}]) is neither a "
    "protocol-log nor a tracking-log row; no grammar reads message trace exports yet",
)
def test_corpus_message_trace_reason_is_read() -> None:
    (row,) = [
        r
        for r in _corpus(("exchange-online-message-trace",))
        if "SubjectMismatch" in str(r["line"])
    ]
    grammar = ExchangeTrackingGrammar(_stream())
    assert _events(_feed(grammar, str(row["line"])))
