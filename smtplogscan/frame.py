"""Records -> pandas DataFrames with a fixed schema, and events -> plain rows.

`_READ` is the one place where an event becomes the public JSON/CSV shape, a row
for `event_row` and a column for `events_frame`; the JSON contract in the README
lists these fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from smtplogscan.records import Event
from smtplogscan.results import DeliveryKey, SessionKey, line_order

if TYPE_CHECKING:
    import pandas as pd


def _time(event: Event) -> str | None:
    return event.time.isoformat() if event.time is not None else None


#: How each public field is read from an event, in the order of the JSON contract.
_READ: dict[str, Callable[[Event], Any]] = {
    "time": _time,
    "host": attrgetter("host"),
    "mta": attrgetter("mta"),
    "direction": lambda e: str(e.direction),
    "peer_name": attrgetter("peer.name"),
    "peer_addr": attrgetter("peer.addr"),
    "peer_port": attrgetter("peer.port"),
    "helo": attrgetter("peer.helo"),
    "kind": lambda e: str(e.kind),
    "detail": attrgetter("detail"),
    "culprit": lambda e: str(e.culprit),
    "outcome": lambda e: str(e.outcome),
    "cause": attrgetter("cause"),
    "queue_id": attrgetter("queue_id"),
    "operation": attrgetter("operation"),
    "source": attrgetter("source"),
}
EVENT_FIELDS = tuple(_READ)


def event_row(event: Event, utc: bool = False) -> dict[str, Any]:
    """Return the public, JSON-ready form of one event."""
    row = {name: read(event) for name, read in _READ.items()}
    if utc and event.time is not None:
        row["time"] = event.time.astimezone(UTC).isoformat()
    if event.extra:
        row["extra"] = event.extra
    return row


def sort_events(events: Sequence[Event]) -> list[Event]:
    """Order events as their lines stand in the inputs."""
    return sorted(events, key=lambda e: line_order(e.source))


def events_frame(events: Sequence[Event]) -> pd.DataFrame:
    """One row per event, columns as in `EVENT_FIELDS`, plus ``when`` in UTC."""
    import pandas as pd

    # Column by column: a dict per event first would double the work of the
    # report stage, which the whole run waits for.
    columns = {name: [read(e) for e in events] for name, read in _READ.items()}
    ports = pd.Series(columns.pop("peer_port"))
    # Text as Python objects, not pandas' default Arrow strings: the report reads
    # these values back one by one, and Arrow would copy each in and out again.
    frame = pd.DataFrame(columns, dtype=object)
    frame.insert(EVENT_FIELDS.index("peer_port"), "peer_port", ports)
    # Events of one second share their time: convert each distinct one once.
    times = [e.time for e in events]
    utc = {t: t.astimezone(UTC) for t in set(times) if t is not None}
    frame["when"] = _timestamps([utc.get(t) for t in times])  # type: ignore[arg-type]
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
