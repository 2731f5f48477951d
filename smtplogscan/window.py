"""Time windows as the command line gives them: points, spans and periods.

A point is an ISO 8601 date or time (``2026-12-01``, ``2026-12-01T10:30``,
``2026-12-01 10:30+01:00``), a span back from now (``30m``, ``24h``, ``7d``,
``2w``, ``1d12h``), or one of the words ``now``, ``today`` and ``yesterday``
(midnight starting that calendar day). A time without an offset, and every
calendar day, is read in the zone given. A window includes its start and
excludes its end, so ``--since yesterday --until today`` is exactly yesterday.

Everything here is a pure function of its arguments: ``now`` and the zone are
passed in, so that tests can fix them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from smtplogscan.errors import UsageError

_SPAN = re.compile(r"(?:\d+[smhdw])+")
_PART = re.compile(r"(\d+)([smhdw])")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_HELP = "use an ISO date or time, a span like 24h or 7d, today, yesterday or now"


@dataclass(frozen=True, slots=True)
class Window:
    """A stretch of time: from `since` (included) to `until` (excluded)."""

    since: datetime | None = None
    until: datetime | None = None
    #: How the user wrote it, for reports.
    text: str = ""

    def __contains__(self, when: datetime) -> bool:
        if self.since is not None and when < self.since:
            return False
        return self.until is None or when < self.until

    @property
    def bounded(self) -> bool:
        """Say whether the window has a start or an end."""
        return self.since is not None or self.until is not None

    def to_json(self) -> dict[str, Any]:
        """Return the window as a JSON-ready object."""
        return {
            "text": self.text,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def parse_span(text: str) -> timedelta | None:
    """Return the length of a span such as ``24h`` or ``1d12h``; None if not one."""
    if not _SPAN.fullmatch(text):
        return None
    span = timedelta()
    for number, unit in _PART.findall(text):
        span += timedelta(**{_UNIT[unit]: int(number)})
    return span


def midnight(day: date, zone: tzinfo) -> datetime:
    """Return the moment `day` starts in `zone`."""
    return datetime.combine(day, time(), tzinfo=zone)


def parse_point(text: str, zone: tzinfo, now: datetime) -> datetime:
    """Return the moment `text` names; raise UsageError if it names none."""
    word = text.strip().lower()
    today = now.astimezone(zone).date()
    if word == "now":
        return now
    if word == "today":
        return midnight(today, zone)
    if word == "yesterday":
        return midnight(today - timedelta(days=1), zone)
    span = parse_span(word)
    if span is not None:
        return now - span
    return _parse_iso(text.strip(), zone)


def parse_window(
    since: str | None, until: str | None, zone: tzinfo, now: datetime
) -> Window:
    """Return the window of ``--since`` and ``--until``; either may be absent."""
    start = parse_point(since, zone, now) if since else None
    end = parse_point(until, zone, now) if until else None
    if start is not None and end is not None and start >= end:
        raise UsageError(f"--since {since} is not before --until {until}")
    text = " ".join(
        p
        for p in (f"since {since}" if since else "", f"until {until}" if until else "")
        if p
    )
    return Window(start, end, text)


def parse_period(
    text: str, zone: tzinfo, now: datetime, before: datetime | None = None
) -> Window:
    """Return the period `text` names, for ``--compare-to``.

    ``START..END`` is a window (END excluded); a date, ``today`` or
    ``yesterday`` is that calendar day; a span such as ``7d`` is that long and
    ends at `before`, the start of the window it is compared with.
    """
    given = text.strip()
    if ".." in given:
        first, _, last = given.partition("..")
        window = parse_window(first or None, last or None, zone, now)
        return Window(window.since, window.until, given)
    word = given.lower()
    if word in ("today", "yesterday") or _DATE.fullmatch(given):
        start = parse_point(given, zone, now)
        day = start.astimezone(zone).date() + timedelta(days=1)
        return Window(start, midnight(day, zone), given)
    span = parse_span(word)
    if span is None:
        raise UsageError(
            f"cannot read the period {given!r}: use START..END, a date, today,"
            " yesterday or a span like 7d"
        )
    if before is None:
        raise UsageError(
            f"--compare-to {given} counts back from the start of the report's window:"
            " give --since too, or name the period (a date, yesterday, START..END)"
        )
    return Window(before - span, before, given)


def _parse_iso(text: str, zone: tzinfo) -> datetime:
    iso = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        raise UsageError(f"cannot read the time {text!r}: {_HELP}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)
