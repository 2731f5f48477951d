"""The shapes of Postfix's log lines, and the helpers that take a line apart.

Every name here is knowledge of Postfix's wording; the state that joins the lines
of one handshake lives in `postfix`. Each shape is one pyparsing `Regex`
element whose compiled pattern (`.re`) is applied directly, because
`parse_string` costs several microseconds a call even on a single `Regex`; a
shape made of several parts is joined by `sequence` so that it still reads a
line as the pyparsing `And` of its parts would.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pyparsing as pp

from smtplogscan import Direction, Outcome, Peer

# Daemons that appear after the syslog_name: postfix/smtpd, postfix-out/smtp,
# postfix/submission/smtpd, enforced-tls-smtp/smtp.
DAEMONS = (
    "smtpd|smtp|lmtp|postscreen|tlsproxy|qmgr|cleanup|pickup|bounce|local|virtual"
    "|pipe|error|discard|anvil|scache|verify|trivial-rewrite|master|tlsmgr"
    "|proxymap|dnsblog|postlogd|showq|flush|oqmgr|sendmail|postdrop|postqueue"
)
INBOUND = frozenset({"smtpd", "postscreen", "tlsproxy"})
WAYS = {"from": Direction.INBOUND, "to": Direction.OUTBOUND}
OUTBOUND = frozenset({"smtp", "lmtp"})
LEVELS = frozenset({"INFO", "NOTICE", "WARNING", "WARN", "ERROR", "DEBUG", "CRIT"})

# Jan 30 16:41:30 mx1 postfix/smtpd[1401]: warning: TLS library problem: ...
# 2026-12-03T15:01:02.123456+00:00 mx1 postfix/submission/smtpd[1401]: ...
# 2021-01-24T14:43:33.171226+00:00 INFO    postfix/smtp[138]: ...   (container)
# mail_1  | Jan 30 16:41:30 mail postfix/smtpd[1401]: ...           (compose prefix)
HEADER = pp.Regex(
    r"(?:[\w.-]+ *\| *)?"
    r"(?:(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<clock>\d\d:\d\d:\d\d(?:\.\d+)?)"
    r"|(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))?"
    r" *(?:(?P<host>\S+) +)??"
    rf"(?P<prog>[\w.-]+(?:/[\w.-]+)*/(?P<daemon>{DAEMONS}))\[(?P<pid>\d+)\]: +"
    r"(?P<msg>.*)"
)
HEADER.set_name("syslog header")

# NAME[ADDR] or NAME[ADDR]:PORT, where ADDR may be IPv6 and NAME may be "unknown".
PEER = pp.Regex(
    r"(?P<peer_name>[^\s\[\]]*)\[(?P<peer_addr>[^\]\s]*)\](?::(?P<peer_port>\d+))?"
)
PEER.set_name("peer")


def sequence(name: str, *parts: str, rest: bool = False) -> pp.Regex:
    """Join patterns into one `Regex` that reads a text as the pyparsing `And` of
    their `Regex` elements would: whitespace skipped before each, no part giving
    back what it matched (atomic groups), and with `rest` the remainder of the
    line, unskipped, as ``reason``. Failures are a few percent of a busy log,
    where `parse_string` on an `And` costs some 30 microseconds a line."""
    skip = r"[ \t\n\r]*"  # pyparsing's default whitespace
    pattern = "".join(f"{skip}(?>{part})" for part in parts)
    shape = pp.Regex(pattern + ("(?P<reason>.*)" if rest else ""))
    shape.set_name(name)
    return shape


# SSL_accept error from unknown[192.0.2.4]: -1
# SSL_connect error to mx.example.net[192.0.2.10]:25: Connection reset by peer
SSL_ERROR = sequence(
    "SSL error",
    r"SSL_(?P<op>accept|connect) error (?:from|to)",
    PEER.re.pattern,
    ":",
    rest=True,
)

# certificate verification failed for mx.example.net[192.0.2.10]:25: untrusted ...
VERIFY_FAILED = sequence(
    "verification failure",
    r"(?:server )?certificate verification failed for",
    PEER.re.pattern,
    ":",
    rest=True,
)

# lost connection after STARTTLS from unknown[192.0.2.4]
LOST_AFTER_STARTTLS = sequence(
    "lost connection after STARTTLS",
    r"(?:lost connection|timeout) after STARTTLS from",
    PEER.re.pattern,
)

# TLSRPT: status=failure, domain=example.net,
#     receiving_mx=mx.example.net[192.0.2.10], failure_type=...
TLSRPT = sequence(
    "TLSRPT failure",
    r"TLSRPT: status=failure,.*?receiving_mx=",
    PEER.re.pattern,
    rest=True,
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

LIBRARY = "TLS library problem: "
# Our own TLS set-up failing, in Postfix's words rather than the library's:
# warning: cannot get RSA private key from file /etc/ssl/mx1.key: disabling TLS support
# warning: error loading private keys and certificates from: SNI data for mx1...
SETUP = re.compile(
    r"(?:(?:warning|fatal|error): )?"
    r"(?:cannot (?:get|load) |error (?:loading|decoding) |error configuring explicit DH"
    r"|.*(?:key values mismatch|does not match next certificate|disabling TLS support))"
)
# OpenSSL 3 reports a client that leaves without close_notify this way, also after
# a complete session; only inside a handshake is it a failure.
EOF_ONLY = "unexpected eof while reading"
STATUS_OUTCOME = {
    "deferred": Outcome.DEFERRED,
    "bounced": Outcome.BOUNCED,
    "expired": Outcome.BOUNCED,
    "sent": Outcome.PLAINTEXT,
}
match_header, match_established, match_status = (
    HEADER.re.match,
    ESTABLISHED.re.match,
    STATUS.re.match,
)
# A success line whole, header and message in one match: they are a tenth of a
# busy log, and one pattern costs less than the header's and then the message's.
match_success_line = re.compile(
    HEADER.re.pattern.replace("(?P<msg>.*)", "") + ESTABLISHED.re.pattern
).match
# The commonest shapes of that line as bytes, for the engine to count sessions
# straight from its buffer (Grammar.session_line). It must only match a line that
# match_success_line reads with the same groups, so it is stricter, never looser:
# every class is printable ASCII (there \w, \d and \S mean what they mean over
# text, and a control or non-ASCII byte fails the match), a stamp and a host, one
# space where the header allows several, the daemons that make TLS sessions, and
# seconds that exist. Any other line is fed.
_PRINTABLE = rb"\x21-\x7e"  # \S, over printable ASCII
_NOT_BRACKET = rb"\x21-\x5a\x5c\x5e-\x7e"  # the same without [ and ]
# The line in two parts, cut where its marker begins (Grammar.session_head): the
# head's digits are read only as "0-5" or "6-9", so heads that differ only in
# their stamp's seconds or their pid have one shape.
_SESSION_HEAD = (
    rb"(?P<stamp>(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<hm>\d\d:\d\d):[0-5]\d"
    rb"|(?P<date_hm>\d{4}-\d\d-\d\d[T ]\d\d:\d\d):[0-5]\d(?:\.\d+)?"
    rb"(?P<offset>Z|[+-]\d\d:?\d\d)?)"
    rb" (?P<host>[\x21-\x2e\x30-\x5a\x5c\x5e-\x7b\x7d\x7e]+) "  # not / [ ] |
    rb"(?P<prog>[\w.-]+(?:/[\w.-]+)*?/(?P<daemon>smtpd|smtp|lmtp|postscreen|tlsproxy))"
    rb"\[(?P<pid>\d+)\]: (?:Anonymous|Untrusted|Trusted|Verified) "
)
_SESSION_TAIL = (
    rb"TLS connection established (?P<way>from|to) "
    rb"(?P<peer_name>[" + _NOT_BRACKET + rb"]*)\[(?P<peer_addr>[\x21-\x5c\x5e-\x7e]*)\]"
    rb"(?::(?P<peer_port>\d+))?: (?P<protocol>[" + _PRINTABLE + rb"]+)"
    rb" with cipher (?P<cipher>[" + _PRINTABLE + rb"]+)"
)
SESSION_LINE = re.compile(_SESSION_HEAD + _SESSION_TAIL)
SESSION_HEAD = re.compile(_SESSION_HEAD)
SESSION_TAIL = re.compile(_SESSION_TAIL)
SESSION_MINUTE = ("mon", "day", "hm", "date_hm", "offset")
SESSION_GROUPS = ("host", "way", "peer_name", "peer_addr", "protocol", "cipher")


Tokens = dict[str, str | None]


def parse(shape: pp.Regex, text: str) -> Tokens | None:
    """Read `text` with `shape` as ``shape.parse_string(text)`` would (tabs
    expanded), at the speed of its compiled pattern; None where it would raise."""
    match = shape.re.match(text.expandtabs() if "\t" in text else text)
    return None if match is None else match.groupdict()


def token(tokens: Tokens, name: str) -> str:
    return tokens.get(name) or ""


def peer_of(tokens: Tokens) -> Peer:
    port = token(tokens, "peer_port")
    return Peer(
        name=token(tokens, "peer_name"),
        addr=token(tokens, "peer_addr"),
        port=int(port) if port else None,
    )


def relay_peer(relay: str | None) -> Peer:
    if not relay or "[" not in relay:
        return Peer(name=relay or "")
    match = PEER.re.match(relay)
    if match is None:
        return Peer(name=relay)
    port = match["peer_port"]
    return Peer(match["peer_name"], match["peer_addr"], int(port) if port else None)


def split_line(line: str) -> tuple[str, str, str, str, str] | None:
    """Return (stamp, host, daemon, pid, message) of a Postfix line, or None."""
    if line.startswith("{"):
        return split_json(line)
    match = match_header(line)
    if match is None:
        return None
    inner = match_header(match["msg"]) if " | " in match["msg"][:40] else None
    if inner is not None:
        match = inner  # docker logs that repeat the whole prefix inside the message
    return stamp_of(match), host_of(match), match["daemon"], match["pid"], match["msg"]


def host_of(match: re.Match[str]) -> str:
    host = match["host"] or ""
    return "" if host in LEVELS else host


def stamp_of(match: re.Match[str]) -> str:
    if match["iso"]:
        return match["iso"]
    if match["mon"]:
        return f"{match['mon']} {match['day']} {match['clock']}"
    return ""


def split_json(line: str) -> tuple[str, str, str, str, str] | None:
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
    if "/" not in ident or daemon not in DAEMONS.split("|"):
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


def is_postfix(line: str) -> bool:
    if line.startswith("{"):
        return split_json(line) is not None
    return match_header(line) is not None


def direction_of(daemon: str) -> Direction:
    if daemon in INBOUND:
        return Direction.INBOUND
    if daemon in OUTBOUND:
        return Direction.OUTBOUND
    return Direction.UNKNOWN


def strip_warning(msg: str) -> str:
    for prefix in ("warning: ", "fatal: ", "error: "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def is_setup(msg: str) -> bool:
    return SETUP.match(msg) is not None


def is_tls_policy(text: str) -> bool:
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


def mentions_tls_trouble(msg: str) -> bool:
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


def looks_like_tls(line: str) -> bool:
    return ("TLS" in line or "SSL" in line) and "postfix" in line
