"""Turn log time stamps into aware datetimes, years and zones included.

Traditional syslog stamps (``Dec  3 15:01:02``) carry no year and no zone. The
year comes from the input's modification time and the order of its lines:

- the first stamp takes the latest year that does not put it more than a day
  after the modification time (``--year`` names that year instead);
- a stamp more than a day before the one before it has crossed a New Year;
- a stamp that, a year earlier, would fall within a day before the one before it
  is a line from before the turn written late (syslog relays reorder lines);
- no stamp may land more than a day after the modification time (unless the year
  was given), which also mends logs concatenated out of order.

The day of slack absorbs the difference between the zone of the stamps and the
UTC of the modification time. ``strptime`` is never used on such a stamp: with no
year it assumes 1900, in which 29 February does not exist.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import datetime, timedelta, tzinfo

MONTHS = {
    name: number
    for number, name in enumerate(
        (
            "Jan",
            "Feb",
            "Mar",
            "Apr",
            "May",
            "Jun",
            "Jul",
            "Aug",
            "Sep",
            "Oct",
            "Nov",
            "Dec",
        ),
        start=1,
    )
}

_SLACK = timedelta(days=1)

#: month, day, hour, minute, second, microsecond
_Parts = tuple[int, int, int, int, int, int]


def localize(naive: datetime, zone: tzinfo | None) -> datetime:
    """Attach `zone` to a naive stamp; None means the machine's local zone."""
    if zone is None:
        return naive.astimezone()
    return naive.replace(tzinfo=zone)


def wall_clock(moment: datetime, zone: tzinfo | None) -> datetime:
    """Return `moment` as the naive wall-clock time of `zone` (None: local)."""
    local = moment.astimezone() if zone is None else moment.astimezone(zone)
    return local.replace(tzinfo=None)


class SyslogClock:
    """Give year-less stamps of one stream their year, in the order they come."""

    def __init__(self, mtime: datetime, zone: tzinfo | None, year: int | None = None):
        # Compared in the stamps' own wall-clock time, so no zone arithmetic
        # is needed per line.
        self._limit = wall_clock(mtime + _SLACK, zone)
        self._zone = zone
        self._given = year
        self._year: int | None = None  # the year of the last stamp read
        self._last: datetime | None = None  # the last stamp read, naive
        self._day: tuple[int, int] | None = None  # see stamp()
        self._offsets: dict[tuple[int, ...], tzinfo | None] = {}

    def stamp(self, month: str, day: int, clock: str) -> datetime:
        """Return the aware datetime of ``month day HH:MM:SS[.ffffff]``.

        Raises ValueError for a stamp that names no real day (``Feb 29`` in a
        common year, ``Apr 31``), no real time, or an unknown month.
        """
        number = MONTHS.get(month[:3].title())
        if number is None:
            raise ValueError(f"unknown month {month!r}")
        if not 1 <= day <= 31:
            raise ValueError(f"no day {day} in any month")
        parts: _Parts = (number, day, *_clock(clock))

        if (number, day) == self._day and self._year is not None:
            year = self._year  # the same day as the last stamp, well before the limit
        else:
            year = self._choose_year(parts)
        naive = datetime(year, *parts)  # raises for 29 February in a common year
        self._year, self._last = year, naive
        # Most lines share the day of the one before: remember it when no stamp
        # of that day can reach the limit, so the year need not be chosen again.
        end_of_day = naive.replace(hour=23, minute=59, second=59)
        self._day = (number, day) if end_of_day <= self._limit else None
        if self._zone is not None:
            return naive.replace(tzinfo=self._zone)
        # The machine's zone gives a fixed offset per hour (its changes fall on
        # the hour): ask it once an hour, not once a line.
        hour = (year, *parts[:3])
        offset = self._offsets.get(hour)
        if offset is None:
            offset = naive.astimezone().tzinfo
            self._offsets = {hour: offset}
        return naive.replace(tzinfo=offset)

    def _choose_year(self, parts: _Parts) -> int:
        if self._year is None or self._last is None:
            year = self._given if self._given is not None else self._limit.year
        else:
            year = self._year
            earliest = self._last - _SLACK
            if _near(year, parts) < earliest:
                year += 1  # far before the last stamp: a New Year has passed
            elif _near(year - 1, parts) >= earliest:
                year -= 1  # written late, from before the New Year just crossed

        if self._given is None and _near(year, parts) > self._limit:
            limit = self._limit.year
            year = limit if _near(limit, parts) <= self._limit else limit - 1
        return year


def _near(year: int, parts: _Parts) -> datetime:
    """The stamp in `year`, with a day the month lacks moved to its last day.

    Only for choosing the year: 29 February is compared as the 28th of a common
    year, and the stamp is built for real once the year is chosen.
    """
    month, day, hour, minute, second, micro = parts
    day = min(day, monthrange(year, month)[1])
    return datetime(year, month, day, hour, minute, second, micro)


def _clock(text: str) -> tuple[int, int, int, int]:
    hour, minute, rest = text.split(":", 2)
    second, _, fraction = rest.partition(".")
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return int(hour), int(minute), int(second), micro


def parse_iso(text: str, zone: tzinfo | None) -> datetime:
    """Parse an ISO 8601 stamp with or without an offset (``+0000`` included)."""
    when = datetime.fromisoformat(
        text.replace(" ", "T", 1) if "T" not in text else text
    )
    return when if when.tzinfo is not None else localize(when, zone)


def local_zone() -> tzinfo:
    """Return the machine's zone, by its IANA name when the system tells it."""
    import os
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            # /etc/localtime -> /usr/share/zoneinfo/Europe/Berlin on most systems
            target = os.path.realpath("/etc/localtime")
            name = target.partition("zoneinfo/")[2]
        except OSError:
            name = ""
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    fixed = datetime.now().astimezone().tzinfo
    assert fixed is not None  # astimezone() always attaches a zone
    return fixed


def zone_name(zone: tzinfo) -> str:
    """Return the IANA name of `zone` when it has one, else its abbreviation."""
    key = getattr(zone, "key", None)
    return str(key) if key else str(zone.tzname(None) or zone)
