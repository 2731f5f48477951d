"""Exchange: TLS failures and successes in SMTP Receive and Send protocol logs.

Exchange writes each connector's SMTP conversation as CSV rows under a header block
(``#Software``, ``#Version``, ``#Log-type``, ``#Date``, ``#Fields``). Rows of one
session share a session id and interleave with other sessions; the ``event`` column
says what a row is (``+`` connect, ``-`` disconnect, ``<`` received, ``>`` sent,
``*`` information). One failure is spread over several rows: the peer is in the
endpoints and the EHLO row, the certificate in one row (2016 and later) or in
several (2013), the reason in a ``*`` row or a reply. This grammar keeps each open
session's rows and turns a session into records when its ``-`` row arrives.

The column order is read from ``#Fields``; the documented order is assumed only
until a ``#Fields`` line is seen. Message tracking logs are read by
`ExchangeTrackingGrammar` in ``exchange_tracking.py``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pyparsing as pp

from smtplogscan import (
    Direction,
    Event,
    Grammar,
    Outcome,
    Peer,
    Record,
    Stream,
    Success,
    classify,
    parse_iso,
)

#: Sessions never closed are dropped, oldest first, beyond this many.
MAX_OPEN = 10_000


def named_regex(pattern: str, name: str) -> pp.Regex:
    """Build a named pyparsing Regex; its compiled `.re` serves the hot path."""
    element = pp.Regex(pattern)
    element.set_name(name)
    return element


# The order Microsoft documents; used until a #Fields line says otherwise.
DEFAULT_FIELDS = (
    "date-time,connector-id,session-id,sequence-number,local-endpoint,"
    "remote-endpoint,event,data,context"
).split(",")

# #Log-type: SMTP Receive Protocol Log
LOG_TYPE = named_regex(
    r"#Log-type: *SMTP (?P<way>Send|Receive) Protocol Log", "log type"
)

# 2023-01-11T15:59:51.433Z,EX01\Default Frontend EX01,08DB2F4C1A2B3C4D,1,...
ROW = named_regex(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?,[^,]*,[0-9A-Fa-f]{16},\d+,",
    "protocol log row",
)

# *,,"TLS protocol SP_PROT_TLS1_2_SERVER negotiation succeeded using bulk
#   encryption algorithm CALG_AES_256 with strength 256 bits, MAC hash ..."
SUCCEEDED = named_regex(
    r"TLS protocol SP_PROT_(?P<proto>SSL[23]|TLS1(?:_(?P<minor>\d))?)_"
    r"(?P<role>SERVER|CLIENT) negotiation succeeded"
    r"(?: using bulk encryption algorithm (?P<bulk>\w+))?",
    "TLS negotiation succeeded",
)

# Rows that state a failure, as a `*` row or as a reply:
#   *,,TLS negotiation failed with error UnknownCredentials
#   <,454 4.7.0 Failed to establish appropriate TLS channel: Access Denied,
#   >,451 5.7.3 Must issue a STARTTLS command first,
#   *,,451 5.7.3 STARTTLS is required to send mail
#   <,450 4.7.320 Certificate validation failed,
#   *,,454 4.7.5 The certificate specified in TlsCertificateName of the
#       SendConnector could not be found.
FAILURE = named_regex(
    r"TLS negotiation failed with error"
    r"|Failed to establish appropriate TLS channel"
    r"|Must issue a STARTTLS command first"
    r"|STARTTLS is required"
    r"|[Cc]ertificate validation failed"
    r"|TlsCertificateName.*could not be found"
    r"|TLS not available",
    "TLS failure",
)

# <,220 mx.example.net Microsoft ESMTP MAIL Service ready at ...   (the peer's banner)
BANNER = named_regex(
    r"220[ -](?P<name>[A-Za-z0-9-]*[A-Za-z][\w.-]*\.[\w.-]+)", "banner"
)

# >,250  EX01.contoso.com Hello [192.0.2.7] SIZE 37748736 PIPELINING ... STARTTLS
HELLO = named_regex(r"250[ -] *(?P<name>\S+) Hello\b", "EHLO answer")

# EHLO mail.example.net   /   HELO [192.0.2.7]
GREETING = named_regex(r"(?:EHLO|HELO) +(?P<name>\S+)", "EHLO command")

# The 2016+ certificate row: every value in `data`, every label in `context`:
#   *, CN=mx.contoso.com CN=Contoso CA 0F1E... 3A4B...(40 hex) 2025-01-17T15:15:33.000Z
#   2027-01-17T15:15:33.000Z mx.contoso.com;contoso.com,Sending certificate Subject ...
# Subject and issuer are split at the first space that is not after a comma and
# comes before an attribute name: a distinguished name separates its parts with
# ", ", so that space ends the subject.
CERT_ROW = named_regex(
    r"\s*(?P<subject>.*?)(?<!,) (?=[A-Za-z]{1,8}=)(?P<issuer>.*)"
    r" (?P<serial>[0-9A-Fa-f]+) (?P<thumbprint>[0-9A-Fa-f]{40})"
    r" (?P<not_before>\d{4}-\S+) (?P<not_after>\d{4}-\S+)(?: (?P<names>.*))?$",
    "certificate row",
)

_row, _succeeded, _failure = ROW.re.match, SUCCEEDED.re.match, FAILURE.re.search
_PROTOCOLS = {"SSL2": "SSLv2", "SSL3": "SSLv3"}
# The labels of the 2013 certificate rows: *,CN=mx.contoso.com,Certificate subject
_CERT_LABELS = {
    "Certificate subject": "subject",
    "Certificate issuer name": "issuer",
    "Certificate thumbprint": "thumbprint",
    "Certificate serial number": "serial",
}
_CERT_KEEP = ("subject", "issuer", "thumbprint", "not_after")
# `*` rows with TLS words that are routine: chatter, capability lists, look-alikes.
_ROUTINE = (
    "chain validation status",
    "TlsDomainCapabilities",
    "X-ANONYMOUSTLS",
    "sending message with RecordId",
    "Session Failover",
)


@dataclass(slots=True)
class _Session:
    """What the rows of one SMTP session said so far."""

    direction: Direction
    connector: str
    addr: str = ""
    port: int | None = None
    helo: str = ""
    banner: str = ""  # the peer's name in its 220 banner (outbound)
    ours: str = ""  # our name: our EHLO (outbound) or our 250 Hello (inbound)
    starttls_offered: bool = False
    tls_up: bool = False
    missing_line: int = 0  # the EHLO answer that lacked STARTTLS (inbound)
    missing_time: datetime | None = None
    reason: str = ""
    reason_line: int = 0
    reason_time: datetime | None = None
    reply: str = ""  # the first SMTP reply code that came with the failure
    derived: bool = False  # the reason is ours: the log states none in words
    success: tuple[str, str, int, datetime | None] | None = None
    cert_role: str = ""  # "local" or "peer": whose certificate rows follow
    certs: dict[str, str] = field(default_factory=dict)


class ExchangeGrammar(Grammar):
    """Read Exchange SMTP Receive and Send protocol logs (2013 to 2019)."""

    name = "exchange"
    mta = "exchange"
    formats = ("SMTP Receive protocol log", "SMTP Send protocol log")
    prefilter = (
        "#Fields:",
        "#Log-type:",
        ",-,",  # the disconnect row that closes a session
        ",<,220 ",  # the peer's banner in a Send log: its name
        ',<,"220 ',  # the same banner, quoted because it holds a comma
        "EHLO",
        "HELO",
        "Hello",
        "STARTTLS",
        "Certificate",
        "certificate",
    )
    description = "Exchange SMTP protocol logs, joined by session id"

    def __init__(self, stream: Stream) -> None:
        super().__init__(stream)
        self._fields = _index(DEFAULT_FIELDS)
        self._direction = Direction.UNKNOWN
        self._sessions: dict[tuple[Direction, str], _Session] = {}
        #: Sessions closed early to keep `_sessions` bounded; the engine may
        #: report it.
        self.evicted = 0

    @classmethod
    def sniff(cls, lines: Sequence[str]) -> float:
        text = [line.lstrip("\ufeff") for line in lines]
        if any(LOG_TYPE.re.match(line) for line in text):
            return 1.0
        if any(line.startswith("#Log-type:") for line in text):
            return 0.0  # another Exchange log: message tracking, connectivity
        hits = sum(1 for line in text if _row(line))
        return 0.8 * hits / len(text) if text else 0.0

    def feed(self, line: str, lineno: int) -> list[Record] | None:
        line = line.lstrip("\ufeff")
        if line.startswith("#"):
            return self._header(line)

        values = split_row(line)
        if values is None or len(values) < len(self._fields) - 1:
            return None if _row(line) or "TLS" in line else []
        get = self._fields.get

        def column(name: str) -> str:
            at = get(name)
            return values[at] if at is not None and at < len(values) else ""

        session_id, event = column("session-id"), column("event")
        if not session_id or not event:
            return None
        data, context = column("data"), column("context")
        session, out = self._session(session_id, column("connector-id"))
        _endpoint(session, column("remote-endpoint"))
        time = self._time(column("date-time"))

        if event == "-":
            out += self._close((session.direction, session_id))
        elif event == "*":
            info = self._info(session, data, context, lineno, time)
            return None if info is None and not out else out + (info or [])
        else:
            self._talk(session, event, data, lineno, time)
        return out

    def finish(self) -> list[Record]:
        out: list[Record] = []
        for key in list(self._sessions):
            out += self._close(key)
        return out

    # -- rows ---------------------------------------------------------------------

    def _header(self, line: str) -> list[Record]:
        if line.startswith("#Fields:"):
            names = [n.strip() for n in line[len("#Fields:") :].split(",")]
            self._fields = _index(names)
        elif (match := LOG_TYPE.re.match(line)) is not None:
            way = match["way"]
            self._direction = (
                Direction.INBOUND if way == "Receive" else Direction.OUTBOUND
            )
        elif line.startswith("#Log-type:"):
            self._direction = Direction.UNKNOWN
        return []

    def _info(
        self,
        session: _Session,
        data: str,
        context: str,
        lineno: int,
        time: datetime | None,
    ) -> list[Record] | None:
        text = context or data
        if (match := _succeeded(text)) is not None:
            session.tls_up = True
            protocol = _protocol(match["proto"], match["minor"])
            session.success = (protocol, match["bulk"] or "", lineno, time)
            if session.direction is Direction.UNKNOWN:
                session.direction = (
                    Direction.INBOUND
                    if match["role"] == "SERVER"
                    else Direction.OUTBOUND
                )
            return []
        if _failure(text) is not None:
            self._fail(session, text, lineno, time)
            return []
        if _certificate(session, data, context):
            return []
        if any(r in text for r in _ROUTINE):
            return []
        return None if ("TLS" in text or "SSL" in text) else []

    def _talk(
        self,
        session: _Session,
        event: str,
        data: str,
        lineno: int,
        time: datetime | None,
    ) -> None:
        # `<` is what we received, from the client (Receive) or the server (Send).
        from_peer = event == "<"
        if _failure(data) is not None:
            self._fail(session, data, lineno, time)
        elif (match := GREETING.re.match(data)) is not None:
            if from_peer:
                session.helo = match["name"]
            else:
                session.ours = match["name"]
        elif (match := HELLO.re.match(data)) is not None:
            if not from_peer:
                session.ours = match["name"]
                self._offer(session, data, lineno, time)
        elif "STARTTLS" in data:
            session.starttls_offered = True
        elif from_peer and not session.banner:
            if (match := BANNER.re.match(data)) is not None:
                session.banner = match["name"]

    def _offer(
        self, session: _Session, data: str, lineno: int, time: datetime | None
    ) -> None:
        # Our Receive connector answers EHLO in one row. X-ANONYMOUSTLS without
        # STARTTLS there means TLS is on but no certificate fits the connector's
        # FQDN, so Internet peers cannot start TLS.
        if "STARTTLS" in data:
            session.starttls_offered = True
        elif "X-ANONYMOUSTLS" in data and not session.tls_up:
            session.missing_line, session.missing_time = lineno, time

    def _fail(
        self, session: _Session, text: str, lineno: int, time: datetime | None
    ) -> None:
        # One event a session: the `*` row and the reply that follow one failure
        # are the same failure, and the first row says the most.
        reply = text[:3] if text[:3].isdigit() else ""
        if session.reason:
            session.reply = session.reply or reply
            return
        session.reason, session.reason_line, session.reason_time = text, lineno, time
        session.reply = reply
        if "STARTTLS is required to send mail" in text and not session.starttls_offered:
            # Our own Send connector's verdict, not the peer's: say so in words
            # that the catalogue cannot take for the peer's 5.7.3 demand.
            session.certs["reply_text"] = text
            session.reason, session.derived = _NOT_OFFERED, True

    # -- sessions -------------------------------------------------------------------

    def _session(
        self, session_id: str, connector: str
    ) -> tuple[_Session, list[Record]]:
        key = (self._direction, session_id)
        session = self._sessions.get(key)
        if session is not None:
            return session, []
        out: list[Record] = []
        if len(self._sessions) >= MAX_OPEN:
            self.evicted += 1
            out = self._close(next(iter(self._sessions)))
        session = _Session(self._direction, connector)
        self._sessions[key] = session
        return session, out

    def _close(self, key: tuple[Direction, str]) -> list[Record]:
        session = self._sessions.pop(key, None)
        if session is None:
            return []
        out: list[Record] = []
        peer = self._peer(session)
        host = _host(session)
        if session.success is not None:
            protocol, cipher, lineno, time = session.success
            out.append(
                Success(
                    time,
                    host,
                    self.mta,
                    session.direction,
                    peer,
                    protocol,
                    cipher,
                    self.where(lineno),
                )
            )
        if not session.reason and session.missing_line and not session.tls_up:
            session.reason, session.derived = _NOT_ADVERTISED, True
            session.reason_line = session.missing_line
            session.reason_time = session.missing_time
        if session.reason:
            out.append(self._event(session, peer, host))
        return out

    def _event(self, session: _Session, peer: Peer, host: str) -> Event:
        cause = classify(session.reason, session.direction, self.mta)
        extra = dict(session.certs)
        if session.reply:
            extra["reply"] = session.reply
        return Event(
            time=session.reason_time,
            host=host,
            mta=self.mta,
            direction=session.direction,
            peer=peer,
            kind=cause.kind,
            detail=session.reason,
            source=self.where(session.reason_line),
            culprit=cause.culprit,
            outcome=_outcome(session),
            cause=cause.id,
            operation="STARTTLS",
            extra=extra,
        )

    def _peer(self, session: _Session) -> Peer:
        if session.direction is Direction.OUTBOUND:
            name = session.banner
        else:
            name = session.helo
        return Peer(name=name, addr=session.addr, port=session.port, helo=session.helo)

    def _time(self, stamp: str) -> datetime | None:
        try:
            return parse_iso(stamp, self.stream.zone) if stamp else None
        except ValueError:
            return None


# The details this grammar writes itself, where the log states no reason in words.
_NOT_OFFERED = (
    "the peer's EHLO answer did not offer STARTTLS and the Send connector requires TLS"
)
_NOT_ADVERTISED = "our EHLO answer offered X-ANONYMOUSTLS but not STARTTLS"


def split_row(line: str) -> list[str] | None:
    """Split one CSV row; only quoted rows pay for the csv module."""
    if '"' not in line:
        return line.split(",")
    try:
        return next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None


def _index(names: Sequence[str]) -> dict[str, int]:
    return {name: at for at, name in enumerate(names)}


def _endpoint(session: _Session, endpoint: str) -> None:
    # 192.0.2.7:25, [2001:db8::7]:25, or empty on certificate rows of some builds.
    if not endpoint or session.addr:
        return
    addr, _, port = endpoint.rpartition(":")
    if not addr or not port.isdigit():
        session.addr = endpoint.strip("[]")
        return
    session.addr, session.port = addr.strip("[]"), int(port)


def _certificate(session: _Session, data: str, context: str) -> bool:
    """Keep a certificate row's values; tell whether the row was one."""
    marker = context or data
    for word, role in (
        ("Sending certificate", "local"),
        ("Received certificate", "peer"),
    ):
        if marker.startswith(word):
            session.cert_role = role
            match = CERT_ROW.re.match(data) if data.strip() else None
            if match is not None:  # 2016 and later: all values in this row
                for name in _CERT_KEEP:
                    if match[name]:
                        session.certs[f"{role}_certificate_{name}"] = match[name]
            return True
    label = _CERT_LABELS.get(context)
    if label is None:
        return context.startswith("Certificate ")  # alternate names, dates
    if label in _CERT_KEEP and session.cert_role:
        session.certs[f"{session.cert_role}_certificate_{label}"] = data
    return True


def _protocol(proto: str, minor: str | None) -> str:
    if proto in _PROTOCOLS:
        return _PROTOCOLS[proto]
    return f"TLSv1.{minor or '0'}"


def _host(session: _Session) -> str:
    if session.ours:
        return session.ours
    server, sep, _ = session.connector.partition("\\")
    return server if sep else ""


def _outcome(session: _Session) -> Outcome:
    if session.direction is Direction.INBOUND:
        # A failed handshake ends the connection; a missing STARTTLS may not.
        return Outcome.UNKNOWN if session.derived else Outcome.DROPPED
    if session.reply.startswith("4"):
        return Outcome.DEFERRED
    if session.reply.startswith("5"):
        return Outcome.BOUNCED
    return Outcome.UNKNOWN
