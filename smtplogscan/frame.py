"""Records -> pandas DataFrames with a fixed schema, and events -> plain rows.

`event_row` is the one place where an event becomes the public JSON/CSV shape; the
JSON contract in the README lists these fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from smtplogscan.records import Event
from smtplogscan.results import DeliveryKey, SessionKey, line_order

if TYPE_CHECKING:
    import pandas as pd

EVENT_FIELDS = (
    "time",
    "host",
    "mta",
    "direction",
    "peer_name",
    "peer_addr",
    "peer_port",
    "helo",
    "kind",
    "detail",
    "culprit",
    "outcome",
    "cause",
    "queue_id",
    "operation",
    "source",
)


def event_row(event: Event, utc: bool = False) -> dict[str, Any]:
    """Return the public, JSON-ready form of one event."""
    when = event.time
    if when is not None and utc:
        when = when.astimezone(UTC)
    return {
        "time": when.isoformat() if when is not None else None,
        "host": event.host,
        "mta": event.mta,
        "direction": str(event.direction),
        "peer_name": event.peer.name,
        "peer_addr": event.peer.addr,
        "peer_port": event.peer.port,
        "helo": event.peer.helo,
        "kind": str(event.kind),
        "detail": event.detail,
        "culprit": str(event.culprit),
        "outcome": str(event.outcome),
        "cause": event.cause,
        "queue_id": event.queue_id,
        "operation": event.operation,
        "source": event.source,
        **({"extra": event.extra} if event.extra else {}),
    }


def sort_events(events: Sequence[Event]) -> list[Event]:
    """Order events as their lines stand in the inputs."""
    return sorted(events, key=lambda e: line_order(e.source))


def events_frame(events: Sequence[Event]) -> pd.DataFrame:
    """One row per event, columns as in `EVENT_FIELDS`, plus ``when`` in UTC."""
    import pandas as pd

    rows = [event_row(e) for e in events]
    columns = {name: [row[name] for row in rows] for name in EVENT_FIELDS}
    ports = pd.Series(columns.pop("peer_port"))
    # Text as Python objects, not pandas' default Arrow strings: the report reads
    # these values back one by one, and Arrow would copy each in and out again.
    frame = pd.DataFrame(columns, dtype=object)
    frame.insert(EVENT_FIELDS.index("peer_port"), "peer_port", ports)
    frame["when"] = _timestamps(
        [None if e.time is None else e.time.astimezone(UTC) for e in events]
    )
    return frame


def sessions_frame(sessions: Mapping[SessionKey, int]) -> pd.DataFrame:
    """One row per counted group of successful TLS sessions, with its ``count``."""
    return _counted(sessions, SessionKey._fields)


def deliveries_frame(deliveries: Mapping[DeliveryKey, int]) -> pd.DataFrame:
    """One row per counted group of deferred or bounced deliveries."""
    return _counted(deliveries, DeliveryKey._fields)


def _counted(counter: Mapping[Any, int], fields: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    # The keys are tuples of `fields`: turned around, they are the columns.
    transposed = zip(*counter, strict=True) if counter else ((),) * len(fields)
    columns = dict(zip(fields, transposed, strict=True))
    hours = columns.pop("hour")
    # Text as objects, as in `events_frame`.
    frame = pd.DataFrame(
        {name: list(values) for name, values in columns.items()},
        dtype=object,
    )
    frame["count"] = list(counter.values())
    # Hours repeat across peers: convert each distinct one once.
    utc = {h: h.astimezone(UTC) for h in set(hours) if h is not None}
    frame["when"] = _timestamps([utc.get(h) for h in hours])
    return frame


def _timestamps(times: list[datetime | None]) -> pd.Series:
    """Return UTC datetimes as a Series of timestamps, None as NaT."""
    import pandas as pd

    # Converted to UTC by the caller: pandas keeps a mix of offsets as objects.
    return pd.to_datetime(pd.Series(times, dtype=object), utc=True)
