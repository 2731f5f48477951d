"""Postfix: TLS failures, successes and deliveries in Postfix's syslog lines.

Postfix writes one handshake failure over several lines of one process: the peer
on the first (``SSL_accept error from NAME[ADDR]: -1``), the library's reasons on
the next (``warning: TLS library problem: ...``), then a line that ends the
connection or the delivery. This grammar joins them by reporting host and pid into
one event, and follows an outbound failure to the delivery that comes of it, which
is how mail sent in plaintext after a failed handshake is found.

Speed: pyparsing's `parse_string` costs several microseconds a call, which is too
much for the success and delivery lines that make up a fifth of a busy log. The
header and those frequent shapes are pyparsing `Regex` elements whose compiled
pattern (`.re`) is applied directly; the rare failure shapes are parsed with the
composed grammar.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

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

# Daemons that appear after the syslog_name: postfix/smtpd, postfix-out/smtp,
# postfix/submission/smtpd, enforced-tls-smtp/smtp.
_DAEMONS = (
    "smtpd|smtp|lmtp|postscreen|tlsproxy|qmgr|cleanup|pickup|bounce|local|virtual"
    "|pipe|error|discard|anvil|scache|verify|trivial-rewrite|master|tlsmgr"
    "|proxymap|dnsblog|postlogd|showq|flush|oqmgr|sendmail|postdrop|postqueue"
)
_INBOUND = frozenset({"smtpd", "postscreen", "tlsproxy"})
_WAYS = {"from": Direction.INBOUND, "to": Direction.OUTBOUND}
_OUTBOUND = frozenset({"smtp", "lmtp"})
_LEVELS = frozenset({"INFO", "NOTICE", "WARNING", "WARN", "ERROR", "DEBUG", "CRIT"})

# Jan 30 16:41:30 mx1 postfix/smtpd[1401]: warning: TLS library problem: ...
# 2026-12-03T15:01:02.123456+00:00 mx1 postfix/submission/smtpd[1401]: ...
# 2021-01-24T14:43:33.171226+00:00 INFO    postfix/smtp[138]: ...   (container)
# mail_1  | Jan 30 16:41:30 mail postfix/smtpd[1401]: ...           (compose prefix)
HEADER = pp.Regex(
    r"(?:[\w.-]+ *\| *)?"
    r"(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<clock>\d\d:\d\d:\d\d(?:\.\d+)?)"
    r"|(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))?"
    r" *(?:(?P<host>\S+) +)??"
    rf"(?P<prog>[\w.-]+(?:/[\w.-]+)*/(?P<daemon>{_DAEMONS}))\[(?P<pid>\d+)\]: +"
    r"(?P<msg>.*)"
)
HEADER.set_name("syslog header")

# NAME[ADDR] or NAME[ADDR]:PORT, where ADDR may be IPv6 and NAME may be "unknown".
PEER = pp.Regex(
    r"(?P<peer_name>[^\s\[\]]*)\[(?P<peer_addr>[^\]\s]*)\](?::(?P<peer_port>\d+))?"
)
PEER.set_name("peer")
REST = pp.Regex(r".*").leave_whitespace()("reason")

# SSL_accept error from unknown[192.0.2.4]: -1
# SSL_connect error to mx.example.net[192.0.2.10]:25: Connection reset by peer
SSL_ERROR = (
    pp.Regex(r"SSL_(?P<op>accept|connect) error (?:from|to)")
    + PEER
    + pp.Suppress(":")
    + REST
).set_name("SSL error")

# certificate verification failed for mx.example.net[192.0.2.10]:25: untrusted ...
VERIFY_FAILED = (
    pp.Regex(r"(?:server )?certificate verification failed for")
    + PEER
    + pp.Suppress(":")
    + REST
).set_name("verification failure")

# lost connection after STARTTLS from unknown[192.0.2.4]
LOST_AFTER_STARTTLS = (
    pp.Regex(r"(?:lost connection|timeout) after STARTTLS from") + PEER
).set_name("lost connection after STARTTLS")

# TLSRPT: status=failure, domain=example.net,
#     receiving_mx=mx.example.net[192.0.2.10], failure_type=...
TLSRPT = (pp.Regex(r"TLSRPT: status=failure,.*?receiving_mx=") + PEER + REST).set_name(
    "TLSRPT failure"
)

# Anonymous TLS connection established from mx.example.net[192.0.2.33]: TLSv1.3 ...
ESTABLISHED = pp.Regex(
    r"(?:Anonymous|Untrusted|Trusted|Verified) TLS connection established"
    r" (?P<way>from|to) (?P<peer_name>[^\s\[\]]*)\[(?P<peer_addr>[^\]\s]*)\]"
    r"(?::(?P<peer_port>\d+))?: (?P<protocol>\S+) with cipher (?P<cipher>\S+)"
)
ESTABLISHED.set_name("TLS connection established")

# 4Q2xJm1Zq7z9sZt: to=<a@example.net>, relay=mx.example.net[192.0.2.10]:25, ...,
#     status=deferred (...)
STATUS = pp.Regex(
    r"(?P<queue_id>[0-9A-Za-z]+): to=<[^>]*>,(?:.*? relay=(?P<relay>\S+?),)?.*?"
    r" status=(?P<status>sent|deferred|bounced|expired)(?: \((?P<text>.*)\))?$"
)
STATUS.set_name("delivery status")

# 4Q2xJm1Zq7z9sZt: Cannot start TLS: handshake failure
CANNOT_START = pp.Regex(r"(?P<queue_id>[0-9A-Za-z]+): (?P<text>Cannot start TLS: .*)")
CANNOT_START.set_name("cannot start TLS")

_LIBRARY = "TLS library problem: "
# Our own TLS set-up failing, in Postfix's words rather than the library's:
# warning: cannot get RSA private key from file /etc/ssl/mx1.key: disabling TLS support
# warning: error loading private keys and certificates from: SNI data for mx1...
_SETUP = re.compile(
    r"(?:(?:warning|fatal|error): )?"
    r"(?:cannot (?:get|load) |error (?:loading|decoding) |error configuring explicit DH"
    r"|.*(?:key values mismatch|does not match next certificate|disabling TLS support))"
)
# OpenSSL 3 reports a client that leaves without close_notify this way, also after
# a complete session; only inside a handshake is it a failure.
_EOF_ONLY = "unexpected eof while reading"
#: Bounds on the state kept per stream, so that no log can make it grow forever.
_KEEP_WAITING = 1000
# Handshakes still open, by process: one whose process never logs again is
# closed early, oldest first, as `finish` would close it.
_KEEP_OPEN = 10_000
# OpenSSL queues a few reasons per failure; more than this from one process
# without a new handshake is noise that must not grow one event without end.
_KEEP_REASONS = 16
_STATUS = {
    "deferred": Outcome.DEFERRED,
    "bounced": Outcome.BOUNCED,
    "expired": Outcome.BOUNCED,
    "sent": Outcome.PLAINTEXT,
}
_header, _established, _status = HEADER.re.match, ESTABLISHED.re.match, STATUS.re.match
# A success line whole, header and message in one match: they are a tenth of a
# busy log, and one pattern costs less than the header's and then the message's.
_success_line = re.compile(
    HEADER.re.pattern.replace("(?P<msg>.*)", "") + ESTABLISHED.re.pattern
).match


@dataclass(slots=True)
class _Handshake:
    """The lines of one failing handshake seen so far, for one process."""

    time: datetime | None
    direction: Direction
    peer: Peer
    operation: str
    first_line: int
    reasons: list[str] = field(default_factory=list)
    reason_line: int = 0
    queue_id: str = ""


def _token(tokens: pp.ParseResults, name: str) -> str:
    return str(tokens[name]) if name in tokens and tokens[name] else ""


def _peer(tokens: pp.ParseResults) -> Peer:
    port = _token(tokens, "peer_port")
    return Peer(
        name=_token(tokens, "peer_name"),
        addr=_token(tokens, "peer_addr"),
        port=int(port) if port else None,
    )


def _relay_peer(relay: str | None) -> Peer:
    if not relay or "[" not in relay:
        return Peer(name=relay or "")
    match = PEER.re.match(relay)
    if match is None:
        return Peer(name=relay)
    port = match["peer_port"]
    return Peer(match["peer_name"], match["peer_addr"], int(port) if port else None)


class PostfixGrammar(Grammar):
    """Read Postfix lines from syslog files, journald's text and JSON exports."""

    name = "postfix"
    mta = "postfix"
    formats = (
        "syslog (traditional)",
        "syslog (RFC 3339)",
        "journalctl -o short-iso",
        "journalctl -o json",
    )
    prefilter = (
        "TLS",
        "SSL",
        "certificate",
        # status=sent is watched for only after a failed handshake (see watch).
        "status=deferred",
        "status=bounced",
        "status=expired",
        "private key",
        "key values mismatch",
        "DH parameters",
        '"MESSAGE":[',  # journald writes non-UTF-8 messages as arrays of bytes
    )
    description = "Postfix smtpd/smtp TLS failures, joined across lines by process"
    # The lines of one handshake come within a second of each other.
    splittable = True

    def __init__(self, stream: Stream) -> None:
        super().__init__(stream)
        self._clock = SyslogClock(stream.mtime, stream.zone, stream.year)
        # The last stamp read and its time: feed checks it, the handlers reuse it.
        self._stamp: str | None = None
        self._when: datetime | None = None
        # The minute ("Dec  3 15:01") of the last syslog stamp and its time.
        self._minute = ""
        self._at_minute: datetime | None = None
        self._open: dict[tuple[str, str], _Handshake] = {}
        # Outbound failures still waiting to learn what became of the mail.
        self._waiting: dict[tuple[str, str], Event] = {}
        self._last_stamp, self._last_time = "", None
        #: Open handshakes closed early to keep `_open` bounded; the engine may
        #: report it.
        self.evicted = 0

    @classmethod
    def sniff(cls, lines: Sequence[str]) -> float:
        hits = sum(1 for line in lines if _is_postfix(line))
        if not hits:
            return 0.0
        return 0.5 + 0.5 * hits / max(len(lines), 1)

    def feed(self, line: str, lineno: int) -> list[Record] | None:
        if "TLS connection established" in line:
            match = _success_line(line)
            if match is not None:
                try:
                    when = self._time(_stamp(match))
                except ValueError:
                    return None
                key = (_host(match), match["pid"])
                return self._success(key, match, when, lineno)
        header = _split(line)
        if header is None:
            return [] if not _looks_like_tls(line) else None
        stamp, host, daemon, pid, msg = header
        try:
            self._time(stamp)
        except ValueError:
            return None  # a stamp that names no real day, such as Feb 29 in 2027
        key = (host, pid)
        out: list[Record] = []

        if msg.startswith("TLSRPT: status=failure"):
            return self._tlsrpt(key, msg, stamp, host, lineno)
        if daemon in _OUTBOUND and " status=" in msg:
            return self._status(key, msg, stamp, host, lineno)
        if " status=expired" in msg:
            return self._expired(msg, stamp, host, lineno)
        if (match := _established(msg)) is not None:
            return self._success(key, match, self._time(stamp), lineno)
        if msg.startswith("SSL_") or msg.startswith("warning: SSL_"):
            return self._ssl_error(key, msg, stamp, host, daemon, lineno)

        at = msg.find(_LIBRARY)
        if at >= 0 or msg.startswith("SSL3 alert") or _is_setup(msg):
            reason = msg[at + len(_LIBRARY) :] if at >= 0 else _strip_warning(msg)
            handshake = self._open.get(key)
            if handshake is None:
                # A reason with no SSL_accept/SSL_connect line before it: our own
                # set-up failing at start, or a log that begins mid-handshake.
                handshake = _Handshake(
                    self._time(stamp), _direction(daemon), Peer(), "", lineno
                )
                out = self._hold(key, handshake)
            if not handshake.reasons:
                handshake.reason_line = lineno
            if len(handshake.reasons) < _KEEP_REASONS:
                handshake.reasons.append(reason)
            return out

        if "after STARTTLS" in msg:
            return self._lost_after_starttls(key, msg, stamp, host, lineno)
        if msg.find("Cannot start TLS") >= 0:
            return self._cannot_start(key, msg, stamp, host, lineno)
        if msg.find("certificate verification failed for") >= 0:
            return self._verify_failed(key, msg, stamp, host, lineno)
        if "Server certificate not" in msg:
            return self._not_verified(key, msg, stamp, lineno)
        if _mentions_tls_trouble(msg):
            return None
        return out

    def finish(self) -> list[Record]:
        out: list[Record] = []
        for key in list(self._open):
            out.extend(self._close(key))
        self._waiting.clear()
        return out

    # -- shapes -----------------------------------------------------------------

    def _ssl_error(
        self,
        key: tuple[str, str],
        msg: str,
        stamp: str,
        host: str,
        daemon: str,
        lineno: int,
    ) -> list[Record]:
        try:
            tokens = SSL_ERROR.parse_string(_strip_warning(msg))
        except pp.ParseException:
            return []  # "SSL_accept:error in ..." state lines of loglevel 2
        op = "SSL_" + tokens["op"]
        direction = Direction.INBOUND if op == "SSL_accept" else Direction.OUTBOUND
        handshake = _Handshake(self._time(stamp), direction, _peer(tokens), op, lineno)
        orphan = self._open.get(key)
        out: list[Record] = []
        if orphan is not None and not orphan.operation:
            # Reasons logged before the SSL_accept line (a per-handshake SNI key
            # set-up, say) belong to this handshake.
            del self._open[key]
            handshake.reasons, handshake.reason_line = (
                orphan.reasons,
                orphan.reason_line,
            )
        else:
            out = self._close(key)
        reason = _token(tokens, "reason").strip()
        if reason and not reason.lstrip("-").isdigit():
            handshake.reasons.append(
                reason
            )  # "lost connection", "Connection timed out"
            handshake.reason_line = lineno
        return out + self._hold(key, handshake)

    def _lost_after_starttls(
        self, key: tuple[str, str], msg: str, stamp: str, host: str, lineno: int
    ) -> list[Record]:
        if key in self._open:
            return self._close(key)
        try:
            tokens = LOST_AFTER_STARTTLS.parse_string(msg)
        except pp.ParseException:
            return []
        # The connection died after STARTTLS and no SSL_accept line said more.
        handshake = _Handshake(
            self._time(stamp),
            Direction.INBOUND,
            _peer(tokens),
            "",
            lineno,
            reasons=[msg],
            reason_line=lineno,
        )
        self._open[key] = handshake
        return self._close(key)

    def _cannot_start(
        self, key: tuple[str, str], msg: str, stamp: str, host: str, lineno: int
    ) -> list[Record]:
        match = CANNOT_START.re.search(msg)
        handshake = self._open.get(key)
        if handshake is not None:
            handshake.queue_id = match["queue_id"] if match else ""
            return self._close(key)
        waiting = self._waiting.get(key)
        if waiting is not None:
            # The retry of a mail deferred earlier: "QID: Cannot start TLS" and,
            # at level may, the same QID sent in plaintext next.
            if match and not waiting.queue_id:
                self._settle(key)
                waiting.queue_id = match["queue_id"]
                self._await(key, waiting)
            return []
        handshake = _Handshake(
            self._time(stamp),
            Direction.OUTBOUND,
            Peer(),
            "SSL_connect",
            lineno,
            reasons=[match["text"] if match else msg],
            reason_line=lineno,
            queue_id=match["queue_id"] if match else "",
        )
        self._open[key] = handshake
        return self._close(key)

    def _verify_failed(
        self, key: tuple[str, str], msg: str, stamp: str, host: str, lineno: int
    ) -> list[Record]:
        out = self._close(key)
        try:
            tokens = VERIFY_FAILED.parse_string(
                msg[msg.find("certificate verification") :]
            )
        except pp.ParseException:
            return out
        reason = "certificate verification failed: " + _token(tokens, "reason").strip()
        self._open[key] = _Handshake(
            self._time(stamp),
            Direction.OUTBOUND,
            _peer(tokens),
            "SSL_connect",
            lineno,
            reasons=[reason],
            reason_line=lineno,
        )
        return out + self._close(key)

    def _not_verified(
        self, key: tuple[str, str], msg: str, stamp: str, lineno: int
    ) -> list[Record]:
        # 3C1D8C1D28: Server certificate not trusted
        queue_id, _, text = msg.partition(": ")
        waiting = self._waiting.get(key)
        if waiting is not None:
            waiting.queue_id = waiting.queue_id or queue_id
            return []
        self._open[key] = _Handshake(
            self._time(stamp),
            Direction.OUTBOUND,
            Peer(),
            "SSL_connect",
            lineno,
            reasons=[text or msg],
            reason_line=lineno,
            queue_id=queue_id,
        )
        return self._close(key)

    def _tlsrpt(
        self, key: tuple[str, str], msg: str, stamp: str, host: str, lineno: int
    ) -> list[Record]:
        # Postfix 3.10+ says to TLSRPT what its other lines say too: the line
        # joins the failure of the same process and server when there is one,
        # and stands for it when there is none (a STARTTLS policy failure).
        try:
            tokens = TLSRPT.parse_string(msg)
        except pp.ParseException:
            return []
        peer = _peer(tokens)
        failure_type = msg.rpartition("failure_type=")[2].split(",")[0]
        known = self._open.get(key) or self._waiting.get(key)
        if known is not None and known.peer.addr in ("", peer.addr):
            if isinstance(known, Event):
                known.extra["tlsrpt_failure_type"] = failure_type
            return []
        self._open[key] = _Handshake(
            self._time(stamp), Direction.OUTBOUND, peer, "", lineno,
            reasons=[msg], reason_line=lineno,
        )  # fmt: skip
        out = self._close(key)
        for event in out:
            if isinstance(event, Event):
                event.extra["tlsrpt_failure_type"] = failure_type
        return out

    def _status(
        self, key: tuple[str, str], msg: str, stamp: str, host: str, lineno: int
    ) -> list[Record]:
        match = _status(msg)
        if match is None:
            return []
        out = self._close(key)
        status = _STATUS[match["status"]]
        peer = _relay_peer(match["relay"])
        queue_id, text = match["queue_id"], match["text"] or ""

        waiting = self._waiting.get(key)
        if waiting is not None and _same_delivery(waiting, peer, queue_id):
            self._settle(key)
            waiting.outcome = status
            if not waiting.queue_id:
                waiting.queue_id = queue_id
        elif status is not Outcome.PLAINTEXT and _is_tls_policy(text):
            self._open[key] = _Handshake(
                self._time(stamp),
                Direction.OUTBOUND,
                peer,
                "",
                lineno,
                reasons=[text],
                reason_line=lineno,
                queue_id=queue_id,
            )
            out += self._close(key)
            event = out[-1]
            assert isinstance(event, Event)
            event.outcome = status
            self._settle(key)
        else:
            self._settle(key)

        if status is not Outcome.PLAINTEXT:
            out.append(
                Delivery(
                    self._time(stamp),
                    host,
                    self.mta,
                    peer,
                    status,
                    queue_id,
                    self.where(lineno),
                )
            )
        return out

    def _expired(self, msg: str, stamp: str, host: str, lineno: int) -> list[Record]:
        # 4B44716217A: from=<root@mx1.example.com>, status=expired, returned to sender
        # The engine links this bounce to the failures of the same queue id.
        queue_id = msg.partition(":")[0]
        return [
            Delivery(
                self._time(stamp),
                host,
                self.mta,
                Peer(),
                Outcome.BOUNCED,
                queue_id,
                self.where(lineno),
            )
        ]

    def _await(self, key: tuple[str, str], event: Event) -> None:
        """Wait for what becomes of the mail after the failed handshake `event`."""
        self._settle(key)
        self._waiting[key] = event
        self.watch(_follow_literal(event))
        while len(self._waiting) > _KEEP_WAITING:
            self._settle(next(iter(self._waiting)))

    def _settle(self, key: tuple[str, str]) -> None:
        event = self._waiting.pop(key, None)
        if event is not None:
            self.unwatch(_follow_literal(event))

    def _success(
        self,
        key: tuple[str, str],
        match: re.Match[str],
        when: datetime | None,
        lineno: int,
    ) -> list[Record]:
        port = match["peer_port"]
        waiting = self._waiting.get(key)
        if waiting is not None and waiting.peer.addr == match["peer_addr"]:
            # "Untrusted TLS connection established" right after the same
            # server's certificate failed verification: the session is abandoned.
            return []
        return [
            Success(
                when,
                key[0],
                "postfix",
                _WAYS[match["way"]],
                Peer(
                    match["peer_name"], match["peer_addr"], int(port) if port else None
                ),
                match["protocol"],
                match["cipher"],
                f"{self.stream.name}:{lineno}",  # as self.where(lineno), inline: hot
            )
        ]

    # -- state --------------------------------------------------------------------

    def _hold(self, key: tuple[str, str], handshake: _Handshake) -> list[Record]:
        """Open `handshake` for `key`; close the oldest one beyond the bound."""
        self._open[key] = handshake
        out: list[Record] = []
        while len(self._open) > _KEEP_OPEN:
            self.evicted += 1
            out += self._close(next(iter(self._open)))
        return out

    def _close(self, key: tuple[str, str]) -> list[Record]:
        """Turn the handshake open for `key` into an event, if there is one."""
        handshake = self._open.pop(key, None)
        if handshake is None:
            return []
        if not handshake.operation and all(_EOF_ONLY in r for r in handshake.reasons):
            return []
        detail = "; ".join(handshake.reasons) or "-1"
        cause = classify(detail, handshake.direction, self.mta)
        event = Event(
            time=handshake.time,
            host=key[0],
            mta=self.mta,
            direction=handshake.direction,
            peer=handshake.peer,
            kind=cause.kind,
            detail=detail,
            source=self.where(handshake.reason_line or handshake.first_line),
            culprit=cause.culprit,
            outcome=Outcome.DROPPED
            if handshake.direction is Direction.INBOUND and handshake.peer.addr
            else Outcome.UNKNOWN,
            cause=cause.id,
            queue_id=handshake.queue_id,
            operation=handshake.operation,
        )
        if handshake.direction is Direction.OUTBOUND:
            self._await(key, event)
        return [event]

    def _time(self, stamp: str) -> datetime | None:
        if stamp == self._stamp:
            return self._when
        if not stamp:
            when = None
        elif stamp[0].isdigit():
            when = parse_iso(stamp, self.stream.zone)
        elif len(stamp) == 15 and stamp[:12] == self._minute and self._at_minute:
            # "Dec  3 15:01:02" in the minute of the last stamp: only the
            # seconds differ, and the year and offset cannot.
            when = self._at_minute.replace(second=int(stamp[13:]))
        else:
            month, day, clock = stamp.split()
            when = self._clock.stamp(month, int(day), clock)
            if len(stamp) == 15:
                self._minute, self._at_minute = stamp[:12], when
        self._stamp, self._when = stamp, when
        return when


# -- line helpers -------------------------------------------------------------------


def _split(line: str) -> tuple[str, str, str, str, str] | None:
    """Return (stamp, host, daemon, pid, message) of a Postfix line, or None."""
    if line.startswith("{"):
        return _split_json(line)
    match = _header(line)
    if match is None:
        return None
    inner = _header(match["msg"]) if " | " in match["msg"][:40] else None
    if inner is not None:
        match = inner  # docker logs that repeat the whole prefix inside the message
    return _stamp(match), _host(match), match["daemon"], match["pid"], match["msg"]


def _host(match: re.Match[str]) -> str:
    host = match["host"] or ""
    return "" if host in _LEVELS else host


def _stamp(match: re.Match[str]) -> str:
    if match["iso"]:
        return match["iso"]
    if match["mon"]:
        return f"{match['mon']} {match['day']} {match['clock']}"
    return ""


def _split_json(line: str) -> tuple[str, str, str, str, str] | None:
    # journalctl -o json: one object a line; MESSAGE is a list of bytes when the
    # text was not valid UTF-8.
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    ident = str(entry.get("SYSLOG_IDENTIFIER", ""))
    daemon = ident.rsplit("/", 1)[-1]
    if "/" not in ident or daemon not in _DAEMONS.split("|"):
        return None
    message = entry.get("MESSAGE", "")
    if isinstance(message, list):
        message = bytes(b & 0xFF for b in message if isinstance(b, int)).decode(
            "utf-8", "replace"
        )
    micros = str(entry.get("__REALTIME_TIMESTAMP", ""))
    stamp = ""
    if micros.isdigit():
        stamp = datetime.fromtimestamp(int(micros) / 1e6, UTC).isoformat()
    pid = str(entry.get("_PID") or entry.get("SYSLOG_PID") or "")
    return stamp, str(entry.get("_HOSTNAME", "")), daemon, pid, str(message)


def _is_postfix(line: str) -> bool:
    if line.startswith("{"):
        return _split_json(line) is not None
    return _header(line) is not None


def _direction(daemon: str) -> Direction:
    if daemon in _INBOUND:
        return Direction.INBOUND
    if daemon in _OUTBOUND:
        return Direction.OUTBOUND
    return Direction.UNKNOWN


def _strip_warning(msg: str) -> str:
    for prefix in ("warning: ", "fatal: ", "error: "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def _is_setup(msg: str) -> bool:
    return _SETUP.match(msg) is not None


def _is_tls_policy(text: str) -> bool:
    return any(
        s in text
        for s in (
            "TLS is required",
            "refused to start TLS",
            "Server certificate not",
            "Cannot start TLS",
            "certificate verification failed",
            "STARTTLS",
            "TLS not available",
        )
    )


def _follow_literal(event: Event) -> str:
    # The delivery line that tells the outcome: "QID: to=<...>" once the queue
    # id is known, else "relay=NAME[ADDR]".
    if event.queue_id:
        return f"{event.queue_id}: to="
    return f"relay={event.peer.name}[{event.peer.addr}]"


def _same_delivery(event: Event, peer: Peer, queue_id: str) -> bool:
    if event.queue_id:
        return event.queue_id == queue_id
    return not event.peer.addr or event.peer.addr == peer.addr


def _mentions_tls_trouble(msg: str) -> bool:
    # Lines that carry TLS words but are routine: set-up chatter, reuse, counters.
    routine = (
        "setting up TLS connection",
        "TLS connection reused",
        "starttls=",
        "TLS session cache",
        "SSL_accept:",
        "SSL_connect:",
        "Anonymous TLS",
        "TLS SNI",
        "smtp_tls",
        "smtpd_tls",
        "tls_",
        "TLS engine",
        "TLS cache",
        "TLS cipher list",
        "session cache",
    )
    if any(r in msg for r in routine) or PEER.re.match(msg):
        return False  # "NAME[ADDR]: TLS cipher list ..." is loglevel 2 chatter
    return any(w in msg for w in ("TLS", "SSL", "certificate"))


def _looks_like_tls(line: str) -> bool:
    return ("TLS" in line or "SSL" in line) and "postfix" in line
