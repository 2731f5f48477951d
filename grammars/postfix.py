"""Postfix: TLS failures, successes and deliveries in Postfix's syslog lines.

Postfix writes one handshake failure over several lines of one process: the peer
on the first (``SSL_accept error from NAME[ADDR]: -1``), the library's reasons on
the next (``warning: TLS library problem: ...``), then a line that ends the
connection or the delivery. This grammar joins them by reporting host and pid into
one event, and follows an outbound failure to the delivery that comes of it, which
is how mail sent in plaintext after a failed handshake is found.

The shapes of the lines and the helpers that take them apart are in
`postfix_lines`; this module holds the state that joins them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

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
from smtplogscan.grammars.postfix_lines import (
    CANNOT_START,
    EOF_ONLY,
    LEVELS,
    LIBRARY,
    LOST_AFTER_STARTTLS,
    OUTBOUND,
    SESSION_GROUPS,
    SESSION_HEAD,
    SESSION_LINE,
    SESSION_MINUTE,
    SESSION_TAIL,
    SSL_ERROR,
    STATUS_OUTCOME,
    TLSRPT,
    VERIFY_FAILED,
    WAYS,
    direction_of,
    host_of,
    is_postfix,
    is_setup,
    is_tls_policy,
    looks_like_tls,
    match_established,
    match_status,
    match_success_line,
    mentions_tls_trouble,
    parse,
    peer_of,
    relay_peer,
    split_line,
    stamp_of,
    strip_warning,
    token,
)

#: Bounds on the state kept per stream, so that no log can make it grow forever.
_KEEP_WAITING = 1000
# Handshakes still open, by process: one whose process never logs again is
# closed early, oldest first, as `finish` would close it.
_KEEP_OPEN = 10_000
# OpenSSL queues a few reasons per failure; more than this from one process
# without a new handshake is noise that must not grow one event without end.
_KEEP_REASONS = 16


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
    session_marker = "TLS connection established"
    session_line = SESSION_LINE
    session_head = SESSION_HEAD
    session_tail = SESSION_TAIL
    session_groups = SESSION_GROUPS
    session_minute = SESSION_MINUTE

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
        # A session line of a process whose failure waits is not a plain success.
        self.pending = self._waiting
        self._last_stamp, self._last_time = "", None
        #: Open handshakes closed early to keep `_open` bounded; the engine may
        #: report it.
        self.evicted = 0

    @classmethod
    def sniff(cls, lines: Sequence[str]) -> float:
        hits = sum(1 for line in lines if is_postfix(line))
        if not hits:
            return 0.0
        return 0.5 + 0.5 * hits / max(len(lines), 1)

    def feed(self, line: str, lineno: int) -> list[Record] | None:
        if "TLS connection established" in line:
            match = match_success_line(line)
            if match is not None:
                try:
                    when = self._time(stamp_of(match))
                except ValueError:
                    return None
                key = (host_of(match), match["pid"])
                return self._success(key, match, when, lineno)
        header = split_line(line)
        if header is None:
            return [] if not looks_like_tls(line) else None
        stamp, host, daemon, pid, msg = header
        try:
            self._time(stamp)
        except ValueError:
            return None  # a stamp that names no real day, such as Feb 29 in 2027
        key = (host, pid)
        out: list[Record] = []

        if msg.startswith("TLSRPT: status=failure"):
            return self._tlsrpt(key, msg, stamp, host, lineno)
        if daemon in OUTBOUND and " status=" in msg:
            return self._status(key, msg, stamp, host, lineno)
        if " status=expired" in msg:
            return self._expired(msg, stamp, host, lineno)
        if (match := match_established(msg)) is not None:
            return self._success(key, match, self._time(stamp), lineno)
        if msg.startswith("SSL_") or msg.startswith("warning: SSL_"):
            return self._ssl_error(key, msg, stamp, host, daemon, lineno)

        at = msg.find(LIBRARY)
        if at >= 0 or msg.startswith("SSL3 alert") or is_setup(msg):
            reason = msg[at + len(LIBRARY) :] if at >= 0 else strip_warning(msg)
            handshake = self._open.get(key)
            if handshake is None:
                # A reason with no SSL_accept/SSL_connect line before it: our own
                # set-up failing at start, or a log that begins mid-handshake.
                handshake = _Handshake(
                    self._time(stamp), direction_of(daemon), Peer(), "", lineno
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
        if mentions_tls_trouble(msg):
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
        tokens = parse(SSL_ERROR, strip_warning(msg))
        if tokens is None:
            return []  # "SSL_accept:error in ..." state lines of loglevel 2
        op = "SSL_" + token(tokens, "op")
        direction = Direction.INBOUND if op == "SSL_accept" else Direction.OUTBOUND
        handshake = _Handshake(
            self._time(stamp), direction, peer_of(tokens), op, lineno
        )
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
        reason = token(tokens, "reason").strip()
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
        tokens = parse(LOST_AFTER_STARTTLS, msg)
        if tokens is None:
            return []
        # The connection died after STARTTLS and no SSL_accept line said more.
        handshake = _Handshake(
            self._time(stamp),
            Direction.INBOUND,
            peer_of(tokens),
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
        tokens = parse(VERIFY_FAILED, msg[msg.find("certificate verification") :])
        if tokens is None:
            return out
        reason = "certificate verification failed: " + token(tokens, "reason").strip()
        self._open[key] = _Handshake(
            self._time(stamp),
            Direction.OUTBOUND,
            peer_of(tokens),
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
        tokens = parse(TLSRPT, msg)
        if tokens is None:
            return []
        peer = peer_of(tokens)
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
        match = match_status(msg)
        if match is None:
            return []
        out = self._close(key)
        status = STATUS_OUTCOME[match["status"]]
        peer = relay_peer(match["relay"])
        queue_id, text = match["queue_id"], match["text"] or ""

        waiting = self._waiting.get(key)
        if waiting is not None and _same_delivery(waiting, peer, queue_id):
            self._settle(key)
            waiting.outcome = status
            if not waiting.queue_id:
                waiting.queue_id = queue_id
        elif status is not Outcome.PLAINTEXT and is_tls_policy(text):
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
                WAYS[match["way"]],
                Peer(
                    match["peer_name"], match["peer_addr"], int(port) if port else None
                ),
                match["protocol"],
                match["cipher"],
                f"{self.stream.name}:{lineno}",  # as self.where(lineno), inline: hot
            )
        ]

    def stamp_time(self, stamp: bytes | None) -> datetime | None:
        if not stamp:
            return None
        text = stamp.decode("ascii")
        # "Dec  3 15:01:02" as stamp_of writes it: "Dec 3 15:01:02".
        return self._time(text if text[0].isdigit() else " ".join(text.split()))

    def session_of(self, groups: tuple[bytes, ...]) -> Success:
        host, way, name, addr, protocol, cipher = (
            g.decode() if g is not None else "" for g in groups
        )
        return Success(
            None,
            "" if host in LEVELS else host,
            self.mta,
            WAYS[way],
            Peer(name, addr),
            protocol,
            cipher,
            "",
        )

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
        if not handshake.operation and all(EOF_ONLY in r for r in handshake.reasons):
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
        elif stamp[-3] == ":" and stamp[:-3] == self._minute and self._at_minute:
            # "Dec 3 15:01:02" in the minute of the last stamp: only the
            # seconds differ, and the year and offset cannot.
            when = self._at_minute.replace(second=int(stamp[-2:]))
        else:
            month, day, clock = stamp.split()
            when = self._clock.stamp(month, int(day), clock)
            if stamp[-3] == ":":
                self._minute, self._at_minute = stamp[:-3], when
        self._stamp, self._when = stamp, when
        return when


# -- helpers that know the grammar's events ---------------------------------------


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
