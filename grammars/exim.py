"""Exim: TLS failures, successes and deliveries in Exim's mainlog.

Exim writes one line per event: a stamp (``2026-12-03 15:01:02``, with
``log_timezone`` an offset, with ``log_selector = +pid`` the process id), the
message id when the line belongs to a message, then the text. The same lines may
sit behind a syslog prefix (``Dec  3 15:01:02 mx1 exim[1234]: ...``), and pasted
fragments often lack the stamp: those are read when they start with a failure
shape, and get no time.

Two look-alikes need state. After a session that worked, GnuTLS reports the
peer's missing close_notify as ``The TLS connection was non-properly
terminated.`` or ``Error in the pull function.``, from ``recv``/``send`` rather
than from the handshake. Inbound, Exim logs the ``<=`` of the message before
that error, so an I/O error on a connection (pid, address, port) that already
delivered is not reported. Outbound, the error line comes first and the ``=>`` of
the same message follows: such an error waits, keyed by message id, and is
dropped when the message is delivered over TLS (``X=`` on its ``=>``). A waiting
outbound failure takes its outcome from the ``==``/``**`` line of its message.

Speed: the header and the frequent success and delivery shapes are pyparsing
`Regex` elements whose compiled pattern is applied directly; the rare failure
shapes are parsed with composed pyparsing elements.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

import pyparsing as pp

from smtplogscan import (
    Delivery,
    Direction,
    Event,
    Grammar,
    Outcome,
    Peer,
    Record,
    Stream,
    Success,
    SyslogClock,
    classify,
    parse_iso,
)


def _regex(pattern: str, name: str) -> pp.Regex:
    """Return a named pyparsing Regex whose compiled `.re` the hot path uses."""
    element = pp.Regex(pattern)
    element.set_name(name)
    return element


_MSGID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"

# Dec  3 15:01:02 mx1 exim[1234]: 2026-12-03 15:01:02 1xZA2n-0003Xx-1o => ...
# 2026-12-03 16:52:13 +0000 [13449] 1xZA2n-0003Xx-1o <= ...   (log_timezone, +pid)
# 2026-12-03 16:52:16 TLS error on connection from ...        (no message id)
HEADER = _regex(
    r"\s*(?:(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<clock>\d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\S+)) (?P<host>\S+) (?:exim4?|exim-\S+)"
    r"(?:\[\d+\])?: )?"
    r"(?:(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?)"
    r"(?: (?P<zone>[+-]\d{4}))? )?"
    r"(?:\[(?P<pid>\d+)(?:/\d+)?\] )?"
    rf"(?:(?P<msgid>{_MSGID}) )?"
    r"(?P<msg>.*)",
    "Exim header",
)

# H=mx.example.net (helo.example.net) [192.0.2.10]:25, H=(helo) [192.0.2.10]
HOST = _regex(
    r" H=(?:(?P<name>[^\s(\[]+) ?)?(?:\((?P<helo>[^)]*)\) )?"
    r"\[(?P<addr>[^\]]*)\](?::(?P<port>\d+))?",
    "H= peer",
)

# X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 (GnuTLS)
# X=TLSv1.2:ECDHE-RSA-AES256-GCM-SHA384:256 (OpenSSL)
CIPHER = _regex(r" X=(?P<protocol>[^:\s]+):(?P<cipher>[^\s:]+)", "X=")

# The peer of a connection-level line, as smtp_get_connection_info writes it:
# mx.example.net (helo) [192.0.2.7]:41003 I=[192.0.2.25]:25
# (real.example.net - 198.51.100.9 -) [127.0.0.1]:11146     (cPanel's proxy)
_NAME = pp.Regex(r"[^\s(\[]+")("name")
_HELO = pp.Suppress("(") + pp.Regex(r"[^()]*")("helo") + pp.Suppress(")")
_ADDR = pp.Regex(r"\[(?P<addr>[^\]]*)\](?::(?P<port>\d+))?")
_IFACE = pp.Regex(r"I=\[[^\]]*\](?::\d+)?|U=\S+")
CONN_PEER = (
    pp.Optional(_NAME) + pp.Optional(_HELO) + _ADDR + pp.Suppress(pp.ZeroOrMore(_IFACE))
).set_name("connection peer")

# (gnutls_handshake): A packet with illegal or unsupported version was received.
# (cert/key setup: cert=/etc/exim4/mx.pem key=/etc/exim4/mx.key): Error while ...
_OP = pp.Suppress("(") + pp.Regex(r"[^()]*")("op") + pp.Suppress(")")
_DETAIL = pp.Optional(pp.Suppress(":") + pp.Regex(r".*")("detail"))

# TLS error on connection from (old.example.net) [198.51.100.3]:41003
#   (gnutls_handshake): A packet with illegal or unsupported version was received.
INBOUND_ERROR = (
    pp.Suppress(pp.Literal("TLS error on connection from")) + CONN_PEER + _OP + _DETAIL
).set_name("inbound TLS error")

# TLS error on connection to mx.example.net [192.0.2.10] (gnutls_handshake): ...
# (Exim before 4.90; the name may be empty)
OLD_OUTBOUND_ERROR = (
    pp.Suppress(pp.Literal("TLS error on connection to"))
    + pp.Optional(_NAME)
    + _ADDR
    + _OP
    + _DETAIL
).set_name("outbound TLS error (old)")

# H=mx.example.net [203.0.113.2]:25 TLS error on connection (recv): Error in ...
OUTBOUND_ERROR = _regex(
    r"H=(?P<name>\S*) \[(?P<addr>[^\]]*)\](?::(?P<port>\d+))? TLS error on connection"
    r" \((?P<op>[^()]*)\)(?:: (?P<detail>.*))?$",
    "outbound TLS error",
)

# TLS session: (gnutls_handshake): The TLS connection was non-properly
#   terminated.: delivering unencrypted to H=mx.example.net [203.0.113.4]:25
#   (not in hosts_require_tls)
# TLS session failure: delivering unencrypted to mx.example.net [203.0.113.4]
#   (not in hosts_require_tls)                                   (before 4.93)
FALLBACK = _regex(
    r"TLS session(?: failure)?:(?: \((?P<op>[^()]*)\): (?P<detail>.*?):)?"
    r" delivering unencrypted to (?:H=)?(?P<name>\S*) \[(?P<addr>[^\]]*)\]"
    r"(?::(?P<port>\d+))? \(not in hosts_require_tls\)",
    "fallback to plaintext",
)

# [203.0.113.6] SSL verify error: depth=0 error=self signed certificate cert=/CN=...
VERIFY_ERROR = _regex(
    r"(?:\[(?P<addr>[^\]]*)\] )?(?P<detail>SSL verify error: .*)",
    "SSL verify error",
)

# H=mx.example.net [203.0.113.10]:25: a TLS session is required, but the server
#   did not offer TLS support
REQUIRED = _regex(
    r"H=(?P<name>\S*) \[(?P<addr>[^\]]*)\](?::(?P<port>\d+))?:"
    r" (?P<detail>a TLS session is required.*)",
    "TLS required",
)

# defer (-37) H=mx.example.net [203.0.113.3]:25: TLS session: (gnutls_handshake):
#   Error in protocol version
SESSION = _regex(
    r"TLS session: (?:\((?P<op>[^()]*)\): )?(?P<detail>.*)$"
    r"|(?P<policy>a TLS session is required.*)$",
    "TLS text of a delivery",
)

# The commonest lines of a busy log, an arrival or a delivery over TLS, as bytes
# for the engine to count without feeding them (see Grammar.session_line):
# 2026-12-03 16:52:33 +0100 [4242] 1xZA2r-0003Zg-00 <= a@example.org
#   H=mail.example.org (helo) [198.51.100.1]:41001 I=[192.0.2.1]:25 P=esmtps
#   X=TLS1.3:ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256 CV=no S=302
# 2026-12-03 16:52:47 1xZA34-0003aH-3C => user@example.net R=dnslookup
#   T=remote_smtp H=mx.example.net [203.0.113.1]:25 X=TLS1.3:...
# Only plain shapes match: no " H=" or " X=" before the peer's and its cipher's
# (feed reads the first of each), an address of hex digits, dots and colons,
# and printable ASCII in every group read. Anything else is fed.
_WORDS_BUT_H_X = rb"[^ \n]*(?: (?![HX]=)[^ \n]*)*"
SESSION_LINE = re.compile(
    rb"(?P<stamp>(?P<minute>\d{4}-\d\d-\d\d \d\d:\d\d):[0-5]\d(?:\.\d{3})?"
    rb"(?: (?P<zone>[+-]\d{4}))?)"
    rb" (?:\[(?P<pid>\d+)(?:/\d+)?\] )?"
    rb"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4} (?P<way><=|=>|->) "
    + _WORDS_BUT_H_X
    + rb" H=(?:(?P<name>[\x21-\x27\x29-\x5a\x5c-\x7e]+) ?)?"
    rb"(?:\([^)\n ]*(?: (?!X=)[^)\n ]*)*\) )?"
    rb"\[(?P<addr>[0-9A-Fa-f.:]*)\](?::(?P<port>\d+))?"
    rb"(?: (?![HX]=)[^ \n]+)*"
    rb" X=(?P<protocol>[\x21-\x39\x3b-\x7e]+):(?P<cipher>[\x21-\x39\x3b-\x7e]+)"
    rb"(?=[: ]|\r?$)"
)
SESSION_GROUPS = ("way", "name", "addr", "protocol", "cipher")
SESSION_MINUTE = ("minute", "zone")
_WAYS = {b"<=": Direction.INBOUND, b"=>": Direction.OUTBOUND, b"->": Direction.OUTBOUND}

# cPanel's proxy puts the real peer inside the HELO parentheses.
_PROXIED = re.compile(r"^(?P<name>\S+) - (?P<addr>[0-9A-Fa-f.:]+) -$")
_HANDSHAKE_OPS = ("gnutls_handshake", "SSL_accept", "SSL_connect")
_TLS_TROUBLE = ("TLS error", "TLS session", "SSL verify", "TLS support", "start TLS")
_STARTS = (
    "TLS error on connection",
    "TLS session",
    "SSL verify error",
    "H=",
    "[",
)
_DELIVERED_MEMORY = 4096
# Outbound failures whose delivery line never comes (a message id seen once)
# are let go, oldest first, beyond this many.
_KEEP_WAITING = 10_000
_header, _host, _cipher = HEADER.re.match, HOST.re.search, CIPHER.re.search
_session = SESSION.re.search


class EximGrammar(Grammar):
    """Read Exim's mainlog, as a file or behind a syslog prefix."""

    name = "exim"
    mta = "exim"
    formats = ("exim mainlog", "exim mainlog behind syslog", "message-only fragments")
    prefilter = ("TLS", "SSL", " X=", " == ", " ** ")
    description = "Exim TLS failures, with outcomes joined by message id"
    # The lines one failure is joined from are written by one delivery or one
    # connection within seconds: an error and the ==, ** or => line of the same
    # delivery attempt, an arrival and the error on its connection.
    splittable = True
    session_marker = " X="
    session_line = SESSION_LINE
    session_groups = SESSION_GROUPS
    session_minute = SESSION_MINUTE

    def __init__(self, stream: Stream) -> None:
        super().__init__(stream)
        self._clock = SyslogClock(stream.mtime, stream.zone, stream.year)
        # Outbound failures waiting for the delivery line of their message.
        self._waiting: dict[str, Event] = {}
        # Inbound connections that delivered a message: (pid, addr, port).
        self._delivered: OrderedDict[_Connection, None] = OrderedDict()
        #: Waiting failures let go early to keep `_waiting` bounded; the engine
        #: may report it.
        self.evicted = 0
        # A delivery line of a message whose failure waits is not a plain success.
        self.pending = self._waiting
        # The groups of the last stamp read, and its time.
        self._last_stamp: tuple[object, ...] = ()
        self._last_time: datetime | None = None

    @classmethod
    def sniff(cls, lines: Sequence[str]) -> float:
        """Score lines that carry an Exim stamp and an Exim-shaped text."""
        useful = [line for line in lines if line.strip()]
        hits = sum(1 for line in useful if _is_exim(line))
        if not hits:
            return 0.0
        return 0.4 + 0.6 * hits / len(useful)

    def feed(self, line: str, lineno: int) -> list[Record] | None:
        """Read one line; return the records it completes."""
        match = _header(line)
        if match is None:  # pragma: no cover - the header pattern is all optional
            return None
        msg = match["msg"]
        if not (match["stamp"] or match["mon"] or match["iso"]):
            if not msg.startswith(_STARTS):
                return [] if not _looks_like_tls(msg) else None
        try:
            time = self._time(match)
        except ValueError:
            return None  # a stamp that names no real day, such as Feb 29 in 2027
        host = match["host"] or ""
        msgid = match["msgid"] or ""
        at = _Line(time, host, msgid, match["pid"] or "", lineno)

        if msg.startswith("<= "):
            return self._received(msg, at)
        if msg.startswith(("=> ", "-> ", "*> ")):
            return self._delivered_out(msg, at)
        if msg.startswith(("== ", "** ")):
            return self._deferred(msg, at)
        if msg.startswith("TLS error on connection from"):
            return self._inbound_error(msg, at)
        if msg.startswith("TLS error on connection to"):
            return self._old_outbound_error(msg, at)
        if "TLS error on connection (" in msg:
            return self._outbound_error(msg, at)
        if "delivering unencrypted to" in msg:
            return self._fallback(msg, at)
        if "SSL verify error:" in msg:
            return self._verify_error(msg, at)
        if "a TLS session is required" in msg:
            return self._required(msg, at)
        return None if _looks_like_tls(msg) else []

    def stamp_time(self, stamp: bytes) -> datetime | None:
        # "2026-12-03 16:52:47 +0100" is read as feed reads it: "...:47+0100".
        date, clock, *zone = stamp.decode("ascii").split(" ")
        return parse_iso(f"{date} {clock}{''.join(zone)}", self.stream.zone)

    def session_of(self, groups: tuple[bytes, ...]) -> Success:
        way, name, addr, protocol, cipher = groups
        return Success(
            None,
            "",
            self.mta,
            _WAYS[way],
            Peer(name.decode() if name else "", addr.decode()),
            protocol.decode(),
            cipher.decode(),
            "",
        )

    def session_seen(self, match: re.Match[bytes]) -> None:
        # An arrival is remembered as _received remembers it.
        if match["way"] == b"<=":
            self._remember(match.group("pid", "addr", "port"))

    def finish(self) -> list[Record]:
        """Report outbound failures whose delivery line never came.

        An error from a read or write of an established session (``recv``,
        ``recv_tls_read``, ``send``) with no deferral after it is the peer closing
        without a close_notify once the work was done: it is not reported.
        """
        out: list[Record] = [
            event for event in self._waiting.values() if not _after_handshake(event)
        ]
        self._waiting.clear()
        return out

    # -- successes and deliveries -------------------------------------------------

    def _received(self, msg: str, at: _Line) -> list[Record]:
        peer = _host_peer(msg)
        if peer is None:
            return []
        port = str(peer.port) if peer.port is not None else ""
        self._remember(_connection(at.pid, peer.addr, port))
        success = self._success(msg, peer, Direction.INBOUND, at)
        return [success] if success is not None else []

    def _delivered_out(self, msg: str, at: _Line) -> list[Record]:
        peer = _host_peer(msg)
        if peer is None:
            return []  # a local delivery: no TLS in it
        success = self._success(msg, peer, Direction.OUTBOUND, at)
        waiting = self._waiting.pop(at.msgid, None) if at.msgid else None
        if waiting is None or success is not None:
            # Delivered over TLS: an I/O error of the same message was the
            # peer's missing close_notify, not a failure.
            return [success] if success is not None else []
        waiting.outcome = Outcome.PLAINTEXT
        return [waiting]

    def _deferred(self, msg: str, at: _Line) -> list[Record]:
        status = Outcome.DEFERRED if msg.startswith("==") else Outcome.BOUNCED
        peer = _host_peer(msg) or Peer()
        out: list[Record] = []
        waiting = self._waiting.pop(at.msgid, None) if at.msgid else None
        if waiting is not None:
            waiting.outcome = status
            out.append(waiting)
        elif (text := _session(msg)) is not None:
            # A line cut right after "TLS session: " matches with neither text.
            detail = text["detail"] or text["policy"] or ""
            event = self._event(Direction.OUTBOUND, peer, text["op"] or "", detail, at)
            event.outcome = status
            out.append(event)
        delivery = Delivery(
            at.time, at.host, self.mta, peer, status, at.msgid, self.where(at.lineno)
        )
        out.append(delivery)
        return out

    def _success(
        self, msg: str, peer: Peer, direction: Direction, at: _Line
    ) -> Success | None:
        match = _cipher(msg)
        if match is None:
            return None
        return Success(
            time=at.time,
            host=at.host,
            mta=self.mta,
            direction=direction,
            peer=peer,
            protocol=match["protocol"],
            cipher=match["cipher"],
            source=self.where(at.lineno),
        )

    # -- failures -----------------------------------------------------------------

    def _inbound_error(self, msg: str, at: _Line) -> list[Record] | None:
        try:
            tokens = INBOUND_ERROR.parse_string(msg)
        except pp.ParseException:
            return None
        peer, proxy = _conn_peer(tokens)
        op, detail = tokens["op"], _tok(tokens, "detail").strip()
        port = str(peer.port) if peer.port is not None else ""
        if _io_op(op) and _connection(at.pid, peer.addr, port) in self._delivered:
            return []  # the missing close_notify of a session that delivered
        event = self._event(Direction.INBOUND, peer, op, detail, at)
        event.outcome = Outcome.DROPPED
        if proxy:
            event.extra["proxy_addr"] = proxy
        return [event]

    def _old_outbound_error(self, msg: str, at: _Line) -> list[Record] | None:
        try:
            tokens = OLD_OUTBOUND_ERROR.parse_string(msg)
        except pp.ParseException:
            return None
        peer = Peer(_tok(tokens, "name"), tokens["addr"], _port(_tok(tokens, "port")))
        return self._wait(
            self._event(
                Direction.OUTBOUND, peer, tokens["op"], _tok(tokens, "detail"), at
            )
        )

    def _outbound_error(self, msg: str, at: _Line) -> list[Record] | None:
        match = OUTBOUND_ERROR.re.search(msg)
        if match is None:
            return None
        peer = Peer(match["name"], match["addr"], _port(match["port"]))
        event = self._event(
            Direction.OUTBOUND, peer, match["op"], match["detail"] or "", at
        )
        return self._wait(event)

    def _fallback(self, msg: str, at: _Line) -> list[Record] | None:
        match = FALLBACK.re.search(msg)
        if match is None:
            return None
        waiting = self._waiting.pop(at.msgid or "addr:" + match["addr"], None)
        if waiting is None:
            peer = Peer(match["name"], match["addr"], _port(match["port"]))
            detail = match["detail"] or msg[match.start() :]
            waiting = self._event(
                Direction.OUTBOUND, peer, match["op"] or "", detail, at
            )
        waiting.outcome = Outcome.PLAINTEXT
        return [waiting]

    def _verify_error(self, msg: str, at: _Line) -> list[Record] | None:
        match = VERIFY_ERROR.re.search(msg)
        if match is None:
            return None
        # The address is the peer's; a message id says we were delivering.
        direction = Direction.OUTBOUND if at.msgid else Direction.UNKNOWN
        peer = Peer(addr=match["addr"] or "")
        event = self._event(direction, peer, "", match["detail"], at)
        return self._wait(event) if at.msgid else [event]

    def _required(self, msg: str, at: _Line) -> list[Record] | None:
        match = REQUIRED.re.search(msg)
        if match is None:
            return None
        peer = Peer(match["name"], match["addr"], _port(match["port"]))
        return self._wait(
            self._event(Direction.OUTBOUND, peer, "", match["detail"], at)
        )

    # -- state --------------------------------------------------------------------

    def _wait(self, event: Event) -> list[Record]:
        """Hold an outbound failure until its message's delivery line tells more."""
        key = event.queue_id or "addr:" + event.peer.addr
        earlier = self._waiting.pop(key, None)
        self._waiting[key] = event
        out: list[Record] = [earlier] if earlier is not None else []
        while len(self._waiting) > _KEEP_WAITING:
            self.evicted += 1
            oldest = self._waiting.pop(next(iter(self._waiting)))
            if not _after_handshake(oldest):  # as `finish` would judge it
                out.append(oldest)
        return out

    def _remember(self, key: _Connection) -> None:
        self._delivered[key] = None
        self._delivered.move_to_end(key)
        if len(self._delivered) > _DELIVERED_MEMORY:
            self._delivered.popitem(last=False)

    def _event(
        self, direction: Direction, peer: Peer, op: str, detail: str, at: _Line
    ) -> Event:
        detail = detail.strip()
        # The operation names our own set-up ("cert/key setup: ..."), which the
        # catalogue needs to see; the library's text alone would not tell.
        cause = classify(f"({op}): {detail}" if op else detail, direction, self.mta)
        return Event(
            time=at.time,
            host=at.host,
            mta=self.mta,
            direction=direction,
            peer=peer,
            kind=cause.kind,
            detail=detail,
            source=self.where(at.lineno),
            culprit=cause.culprit,
            cause=cause.id,
            queue_id=at.msgid,
            operation=op,
        )

    def _time(self, match: re.Match[str]) -> datetime | None:
        # Busy logs write many lines a second: read each stamp once, and hand
        # the lines of one second the same time (the engine's hour of it is
        # then computed once too).
        stamp = match.group("stamp", "zone", "iso", "mon", "day", "clock")
        if stamp != self._last_stamp:
            self._last_time = self._read_time(match)
            self._last_stamp = stamp
        return self._last_time

    def _read_time(self, match: re.Match[str]) -> datetime | None:
        if match["stamp"]:
            zone = match["zone"] or ""
            return parse_iso(match["stamp"] + zone, self.stream.zone)
        if match["iso"]:
            return parse_iso(match["iso"], self.stream.zone)
        if match["mon"]:
            day = int(match["day"])
            return self._clock.stamp(match["mon"], day, match["clock"])
        return None


class _Line:
    """Where a line stands: its time, host, message, process and number."""

    __slots__ = ("time", "host", "msgid", "pid", "lineno")

    def __init__(
        self, time: datetime | None, host: str, msgid: str, pid: str, lineno: int
    ) -> None:
        self.time, self.host, self.msgid = time, host, msgid
        self.pid, self.lineno = pid, lineno


# -- line helpers -------------------------------------------------------------------


def _tok(tokens: pp.ParseResults, name: str) -> str:
    value = tokens.get(name)  # type: ignore[no-untyped-call]
    return str(value) if value else ""


def _io_op(op: str) -> bool:
    # recv, send, recv_tls_read, SSL_read: a session that was established.
    return bool(op) and op not in _HANDSHAKE_OPS and " " not in op


def _after_handshake(event: Event) -> bool:
    return _io_op(event.operation)


# A connection as an arrival's line names it, (process id, address, port) as the
# bytes of the line, None for what the line lacks: session_seen takes them from
# the buffer as they are.
_Connection = tuple[bytes | None, ...]


def _connection(pid: str, addr: str, port: str) -> _Connection:
    return (pid.encode() or None, addr.encode(), port.encode() or None)


def _port(text: str | None) -> int | None:
    return int(text) if text else None


def _host_peer(msg: str) -> Peer | None:
    match = _host(msg)
    if match is None:
        return None
    return Peer(
        name=match["name"] or "",
        addr=match["addr"],
        port=_port(match["port"]),
        helo=match["helo"] or "",
    )


def _conn_peer(tokens: pp.ParseResults) -> tuple[Peer, str]:
    """Return the peer of a connection-level line, and the proxy's address."""
    helo = _tok(tokens, "helo")
    peer = Peer(
        name=_tok(tokens, "name"),
        addr=tokens["addr"],
        port=_port(_tok(tokens, "port")),
        helo=helo,
    )
    proxied = _PROXIED.match(helo)
    if proxied is None:
        return peer, ""
    # The proxy's address is ours; the real peer is what it reported.
    return Peer(name=proxied["name"], addr=proxied["addr"], helo=helo), peer.addr


def _is_exim(line: str) -> bool:
    match = _header(line)
    if match is None or not (match["stamp"] or match["host"]):
        return False
    msg = match["msg"]
    if match["msgid"]:
        # 1rABCD-000123-Xy H=mx.example.net [192.0.2.1] TLS error on connection ...
        marks = ("<= ", "=> ", "-> ", "== ", "** ", "*> ", "Completed", "H=")
        return msg.startswith(marks) or " H=" in msg
    return (
        msg.startswith(
            (
                "TLS error on connection",
                "exim ",
                "SMTP connection",
                "no host name found",
            )
        )
        or " H=" in msg
    )


def _looks_like_tls(msg: str) -> bool:
    return any(word in msg for word in _TLS_TROUBLE)
