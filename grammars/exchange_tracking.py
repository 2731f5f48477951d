"""Exchange: TLS reasons in the FAIL and DEFER rows of message tracking logs.

The message tracking log (``MSGTRK*.LOG``) is CSV under the same header block as
the protocol logs, with ``#Log-type: Message Tracking Log``. It names no TLS
handshake, but a deferral or a failure carries the last error of the delivery in
``recipient-status`` (the queue's ``LastError``), and that text names the TLS
reason when TLS was the cause. Such rows become outbound events whose peer is the
recipient's domain; every other FAIL and DEFER row becomes a `Delivery`.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    classify,
    parse_iso,
)
from smtplogscan.grammars.exchange import named_regex, split_row

# The order Exchange 2016 and 2019 write; used until a #Fields line is seen.
DEFAULT_FIELDS = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,"
    "connector-id,source,event-id,internal-message-id,message-id,network-message-id,"
    "recipient-address,recipient-status,total-bytes,recipient-count,"
    "related-recipient-address,reference,message-subject,sender-address,return-path,"
    "message-info,directionality,tenant-id,original-client-ip,original-server-ip,"
    "custom-data,transport-traffic-type,log-id,schema-version"
).split(",")

# #Log-type: Message Tracking Log
LOG_TYPE = named_regex(r"#Log-type: *Message Tracking Log", "log type")

# 2025-03-14T11:04:12.440Z,,,,EX02,...,SMTP,DEFER,4123168604172,<id@EX02>,...
ROW = named_regex(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?,.*,(?:SMTP|STOREDRIVER|DSN|AGENT"
    r"|ROUTING|QUEUE|GATEWAY|MAILBOXRULE|APPROVAL|ADMIN|PUBLICFOLDER|DNS),",
    "tracking row",
)

# The TLS part of a last error:
#   451 4.4.0 Primary target IP address responded with: "454 4.7.5 The certificate
#   specified in TlsCertificateName of the SendConnector could not be found." ...
#   550 4.4.7 QUEUE.Expired; message expired [{LED=450 4.7.320 Certificate
#   validation failed};{MSG=UntrustedRoot};{FQDN=mx.partner.example};{IP=...}]
# "Connection dropped due to SocketError" alone is left out: it is as often a
# plain network fault.
TLS_REASON = named_regex(
    r"\b(?:STARTTLS|TLS)\b|4\.7\.320|[Cc]ertificate validation|TlsCertificateName"
    r"|SubjectMismatch|UntrustedRoot|CertificateExpired|NoCredentials"
    r"|UnknownCredentials",
    "TLS reason",
)

# {IP=203.0.113.50}   [LastAttemptedIP=203.0.113.50:25]
# The last endpoint attempted was 198.51.100.25:25   ... was [2001:db8::25]:25
PEER_ADDR = named_regex(
    r"\{IP=(?P<ip>[^}]+)\}"
    r"|LastAttemptedIP=(?P<last>[^\]]+)\]"
    r"|last endpoint attempted was (?P<endpoint>\S+?)\.?(?:\s|$)",
    "peer address",
)

_OUTCOMES = {"FAIL": Outcome.BOUNCED, "DEFER": Outcome.DEFERRED}
_row, _tls_reason = ROW.re.match, TLS_REASON.re.search


class ExchangeTrackingGrammar(Grammar):
    """Read Exchange message tracking logs for TLS failures and deferrals."""

    name = "exchange-tracking"
    mta = "exchange"
    formats = ("message tracking log",)
    prefilter = ("#Fields:", "#Log-type:", ",FAIL,", ",DEFER,")
    description = "Exchange message tracking: FAIL and DEFER rows with TLS reasons"

    def __init__(self, stream: Stream) -> None:
        super().__init__(stream)
        self._fields = {name: at for at, name in enumerate(DEFAULT_FIELDS)}

    @classmethod
    def sniff(cls, lines: Sequence[str]) -> float:
        text = [line.lstrip("\ufeff") for line in lines]
        if any(LOG_TYPE.re.match(line) for line in text):
            return 1.0
        if any(line.startswith("#Log-type:") for line in text):
            return 0.0
        hits = sum(1 for line in text if _row(line))
        return 0.7 * hits / len(text) if text else 0.0

    def feed(self, line: str, lineno: int) -> list[Record] | None:
        line = line.lstrip("\ufeff")
        if line.startswith("#Fields:"):
            names = [n.strip() for n in line[len("#Fields:") :].split(",")]
            self._fields = {name: at for at, name in enumerate(names)}
            return []
        if line.startswith("#"):
            return []

        values = split_row(line)
        if values is None or len(values) < len(self._fields) // 2:
            return None if _row(line) else []
        row = {
            name: values[at] for name, at in self._fields.items() if at < len(values)
        }
        outcome = _OUTCOMES.get(row.get("event-id", ""))
        if outcome is None:
            return []
        return [self._record(row, outcome, lineno)]

    def _record(self, row: dict[str, str], outcome: Outcome, lineno: int) -> Record:
        status = row.get("recipient-status", "")
        reason = next(
            (
                text
                for text in (status, row.get("source-context", ""))
                if _tls_reason(text)
            ),
            "",
        )
        time = self._time(row.get("date-time", ""))
        host = row.get("server-hostname") or row.get("client-hostname") or ""
        peer = _peer(row.get("recipient-address", ""), reason or status)
        queue_id = row.get("internal-message-id", "")
        if not reason:
            return Delivery(
                time, host, self.mta, peer, outcome, queue_id, self.where(lineno)
            )

        cause = classify(reason, Direction.OUTBOUND, self.mta)
        return Event(
            time=time,
            host=host,
            mta=self.mta,
            direction=Direction.OUTBOUND,
            peer=peer,
            kind=cause.kind,
            detail=reason,
            source=self.where(lineno),
            culprit=cause.culprit,
            outcome=outcome,
            cause=cause.id,
            queue_id=queue_id,
            extra={"connector": row.get("connector-id", "")},
        )

    def _time(self, stamp: str) -> datetime | None:
        try:
            return parse_iso(stamp, self.stream.zone) if stamp else None
        except ValueError:
            return None


def _peer(recipients: str, text: str) -> Peer:
    """Name the peer by the first recipient's domain and the last address tried."""
    first = recipients.split(";", 1)[0]
    name = first.rpartition("@")[2] if "@" in first else ""
    match = PEER_ADDR.re.search(text)
    if match is None:
        return Peer(name=name)
    endpoint = match["ip"] or match["last"] or match["endpoint"] or ""
    addr, port = _endpoint(endpoint)
    return Peer(name=name, addr=addr, port=port)


def _endpoint(text: str) -> tuple[str, int | None]:
    # 198.51.100.25:25, [2001:db8::25]:25, or a bare address of either family.
    if text.startswith("["):
        addr, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
        return addr, int(port) if port.isdigit() else None
    if text.count(":") == 1:
        addr, _, port = text.partition(":")
        return addr, int(port) if port.isdigit() else None
    return text, None
