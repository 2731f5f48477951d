"""Events and counts as rows of Parquet files, partitioned by UTC day.

The stored form keeps what the report needs to rebuild a scan's records: an
event's time as ISO text with its own offset (a Parquet timestamp column holds
one zone), its ``extra`` as JSON, and the UTC time (``when``) to select by.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smtplogscan import frame
from smtplogscan.reader import line_of
from smtplogscan.records import Culprit, Direction, Event, Kind, Outcome, Peer
from smtplogscan.results import DeliveryKey, SessionKey

if TYPE_CHECKING:
    import pyarrow as pa

#: The partition of records with no time.
UNDATED = "undated"


def write_days(
    folder: Path, name: str, rows: list[dict[str, Any]], schema: pa.Schema
) -> None:
    """Write `rows` as ``day=YYYY-MM-DD/<name>.parquet`` files, one per UTC day."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    days: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        when = row["when"]
        days.setdefault(when.date().isoformat() if when else UNDATED, []).append(row)
    for day, group in days.items():
        target = folder / f"day={day}" / f"{name}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(group, schema=schema)
        temporary = target.with_suffix(".tmp")
        pq.write_table(table, temporary)
        os.replace(temporary, target)


def event_to_row(event: Event, digest: str) -> dict[str, Any]:
    """Return the stored form of an event read from the input `digest`."""
    row = frame.event_row(event)
    row["extra"] = json.dumps(event.extra, sort_keys=True) if event.extra else None
    row["when"] = _utc(event.time)
    row["input"] = digest
    row["line"] = line_of(event.source)
    return row


def count_rows(
    counter: Any, fields: tuple[str, ...], digest: str
) -> list[dict[str, Any]]:
    """Return the stored form of counted sessions or deliveries."""
    rows = []
    for key, count in counter.items():
        row = dict(zip(fields, key, strict=True))
        hour = row.pop("hour")
        row["hour"] = hour.isoformat() if hour is not None else None
        row.update(when=_utc(hour), input=digest, count=count)
        rows.append(row)
    return rows


def _utc(when: datetime | None) -> datetime | None:
    return None if when is None else when.astimezone(UTC)


def read(
    folder: Path, dataset: str, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    """The rows of `dataset` whose time lies in [since, until)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for day_folder in sorted((folder / dataset).glob("day=*")):
        if not _day_may_hold(day_folder.name[4:], since, until):
            continue
        for path in sorted(day_folder.glob("*.parquet")):
            table = pq.read_table(path, schema=SCHEMAS[dataset]())
            rows.extend(
                r for r in table.to_pylist() if _within(r["when"], since, until)
            )
    return rows


def _day_may_hold(day: str, since: datetime | None, until: datetime | None) -> bool:
    if day == UNDATED:
        return False  # no period can include a record of no time
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    if since is not None and start + timedelta(days=1) <= since:
        return False
    return until is None or start < until


def _within(
    when: datetime | None, since: datetime | None, until: datetime | None
) -> bool:
    if when is None:
        return False
    if since is not None and when < since:
        return False
    return until is None or when < until


def row_to_event(row: dict[str, Any]) -> Event:
    """Turn a stored row back into the event it was made from."""
    time = datetime.fromisoformat(row["time"]) if row["time"] else None
    peer = Peer(row["peer_name"], row["peer_addr"], row["peer_port"], row["helo"])
    return Event(
        time,
        row["host"],
        row["mta"],
        Direction(row["direction"]),
        peer,
        Kind(row["kind"]),
        row["detail"],
        row["source"],
        Culprit(row["culprit"]),
        Outcome(row["outcome"]),
        row["cause"],
        row["queue_id"],
        row["operation"],
        json.loads(row["extra"]) if row["extra"] else {},
    )


def row_to_key(row: dict[str, Any], fields: tuple[str, ...]) -> list[Any]:
    """Return the values of a counted key, its hour a datetime again."""
    values = {
        **row,
        "hour": datetime.fromisoformat(row["hour"]) if row["hour"] else None,
    }
    return [values[f] for f in fields]


def _events_schema() -> pa.Schema:
    import pyarrow as pa

    columns = [
        (f, pa.int64() if f == "peer_port" else pa.string()) for f in frame.EVENT_FIELDS
    ]
    return pa.schema(
        [
            *columns,
            ("extra", pa.string()),
            ("when", pa.timestamp("us", tz="UTC")),
            ("input", pa.string()),
            ("line", pa.int64()),
        ]
    )


def _counts_schema(fields: tuple[str, ...]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            *(
                (f, pa.string()) for f in fields
            ),  # the hour as ISO text, with its offset
            ("when", pa.timestamp("us", tz="UTC")),
            ("input", pa.string()),
            ("count", pa.int64()),
        ]
    )


#: The schema of each dataset, fixed so that files of different runs agree.
SCHEMAS: dict[str, Callable[[], pa.Schema]] = {
    "events": _events_schema,
    "sessions": lambda: _counts_schema(SessionKey._fields),
    "deliveries": lambda: _counts_schema(DeliveryKey._fields),
}
