"""What a grammar emits: failures, successful TLS sessions and deliveries.

The words follow DOMAIN.md. The string values of every vocabulary here are part of
the public JSON and CSV contract: add values, never rename them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """The normalised class of a TLS failure."""

    DH_KEY_TOO_SMALL = "dh_key_too_small"
    EE_KEY_TOO_SMALL = "ee_key_too_small"
    CA_KEY_TOO_SMALL = "ca_key_too_small"
    CA_MD_TOO_WEAK = "ca_md_too_weak"
    PROTOCOL_VERSION = "protocol_version"
    NOT_TLS = "not_tls"
    NO_SHARED_CIPHER = "no_shared_cipher"
    HANDSHAKE_ALERT = "handshake_alert"
    CERT_UNTRUSTED = "cert_untrusted"
    CERT_EXPIRED = "cert_expired"
    CERT_NAME_MISMATCH = "cert_name_mismatch"
    STARTTLS_UNAVAILABLE = "starttls_unavailable"
    TLS_REQUIRED_BY_PEER = "tls_required_by_peer"
    CONNECTION_LOST = "connection_lost"
    LOCAL_SETUP = "local_setup"
    OTHER = "other"


class Direction(StrEnum):
    """Who opened the SMTP connection: the peer (inbound) or we (outbound)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"
    UNKNOWN = "unknown"


class Culprit(StrEnum):
    """The side that must act to make the failure go away."""

    PEER = "peer"
    LOCAL = "local"
    UNKNOWN = "unknown"


class Outcome(StrEnum):
    """What became of the mail or the connection after a failure, as logged."""

    DEFERRED = "deferred"
    BOUNCED = "bounced"
    PLAINTEXT = "plaintext"  # delivered, but unencrypted, after TLS failed
    DROPPED = "dropped"  # the connection ended with no mail taken or sent
    UNKNOWN = "unknown"


@dataclass(slots=True)
class Peer:
    """The other side of one SMTP connection, as far as the log names it."""

    name: str = ""
    addr: str = ""
    port: int | None = None
    helo: str = ""


@dataclass(slots=True)
class Event:
    """One failed TLS handshake or TLS policy failure, merged from its lines.

    `culprit` is what the line itself tells; the cause catalogue and the spread of
    a failure over many peers may refine it when the events are aggregated.
    """

    time: datetime | None
    host: str
    mta: str
    direction: Direction
    peer: Peer
    kind: Kind
    detail: str
    source: str
    culprit: Culprit = Culprit.UNKNOWN
    outcome: Outcome = Outcome.UNKNOWN
    cause: str = ""  # the id of the catalogue entry that explains `detail`
    queue_id: str = ""
    operation: str = ""  # SSL_accept, SSL_connect, gnutls_handshake, ...
    extra: dict[str, str] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Worker processes send their events back pickled. As one flat tuple an
        # event pickles three times faster than by the state of its slots, and
        # loads twice as fast; the main process waits for that.
        peer = self.peer
        return _event, (
            self.time, self.host, self.mta, self.direction, peer.name, peer.addr,
            peer.port, peer.helo, self.kind, self.detail, self.source, self.culprit,
            self.outcome, self.cause, self.queue_id, self.operation, self.extra,
        )  # fmt: skip


def _event(
    time: datetime | None,
    host: str,
    mta: str,
    direction: Direction,
    name: str,
    addr: str,
    port: int | None,
    helo: str,
    *rest: Any,
) -> Event:
    """Rebuild an event from `Event.__reduce__`."""
    return Event(time, host, mta, direction, Peer(name, addr, port, helo), *rest)


@dataclass(slots=True)
class Success:
    """One TLS session that was established: the denominator of a failure rate."""

    time: datetime | None
    host: str
    mta: str
    direction: Direction
    peer: Peer
    protocol: str
    cipher: str
    source: str


@dataclass(slots=True)
class Delivery:
    """One logged delivery attempt that did not end in plain success.

    Counted whatever its reason, so that a spike of deferrals or bounces that TLS
    does not explain is recognised as such.
    """

    time: datetime | None
    host: str
    mta: str
    peer: Peer
    status: Outcome
    queue_id: str
    source: str


Record = Event | Success | Delivery
