"""Turn log time stamps into aware datetimes, years and zones included.

Traditional syslog stamps (``Dec  3 15:01:02``) carry no year and no zone. The
year comes from the input's modification time and the order of its lines: the
first stamp takes the latest year that does not put it more than a day after the
modification time, and a later stamp that falls far before the one before it has
crossed a New Year. ``strptime`` is never used on such a stamp: with no year it
assumes 1900, in which 29 February does not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}

_SLACK = timedelta(days=1)
_HALF_YEAR = timedelta(days=183)


def localize(naive: datetime, zone: tzinfo | None) -> datetime:
    """Attach `zone` to a naive stamp; None means the machine's local zone."""
    if zone is None:
        return naive.astimezone()
    return naive.replace(tzinfo=zone)


class SyslogClock:
    """Give year-less stamps of one stream their year, in the order they come."""

    def __init__(self, mtime: datetime, zone: tzinfo | None, year: int | None = None):
        self._limit = mtime + _SLACK
        self._zone = zone
        self._year = year
        self._forced = year is not None
        self._last: datetime | None = None

    def stamp(self, month: str, day: int, clock: str) -> datetime:
        """Return the aware datetime of ``month day HH:MM:SS[.ffffff]``.

        Raises ValueError for a stamp that names no real day (``Feb 29`` in a
        common year, ``Apr 31``) or an unknown month.
        """
        number = MONTHS[month[:3].title()] if month[:3].title() in MONTHS else 0
        if not number:
            raise ValueError(f"unknown month {month!r}")
        hour, minute, second, micro = _clock(clock)

        if self._forced:
            assert self._year is not None
            return localize(datetime(self._year, number, day, hour, minute, second, micro), self._zone)

        year = self._guess_year(number, day)
        when = localize(datetime(year, number, day, hour, minute, second, micro), self._zone)
        self._year, self._last = year, when
        return when

    def _guess_year(self, month: int, day: int) -> int:
        if self._last is None or self._year is None:
            year = self._limit.year
            if (month, day) > (self._limit.month, self._limit.day):
                year -= 1
            return year

        year = self._year
        gap = datetime(year, month, min(day, 28), tzinfo=self._last.tzinfo) - self._last
        if gap < -_HALF_YEAR:
            year += 1  # December, then January: a New Year passed
        elif gap > _HALF_YEAR:
            year -= 1  # a line from before the turn, logged late
        if (month, day) > (self._limit.month, self._limit.day) and year >= self._limit.year:
            year = self._limit.year - 1  # never more than a day in the future
        return year


def _clock(text: str) -> tuple[int, int, int, int]:
    hour, minute, rest = text.split(":", 2)
    second, _, fraction = rest.partition(".")
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return int(hour), int(minute), int(second), micro


def parse_iso(text: str, zone: tzinfo | None) -> datetime:
    """Parse an ISO 8601 stamp with or without an offset (``+0000`` included)."""
    when = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    return when if when.tzinfo is not None else localize(when, zone)
