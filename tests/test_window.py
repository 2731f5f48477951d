"""Time windows: parsing --since, --until and --compare-to, and filtering a scan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from smtplogscan import Options, registry, scan
from smtplogscan.errors import UsageError
from smtplogscan.window import parse_period, parse_point, parse_span, parse_window

BERLIN = ZoneInfo("Europe/Berlin")
# 2026-12-03 17:00 UTC is 18:00 in Berlin; just after midnight UTC it is still
# the evening before in New York.
NOW = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def test_spans() -> None:
    assert parse_span("30m") == timedelta(minutes=30)
    assert parse_span("24h") == timedelta(hours=24)
    assert parse_span("7d") == timedelta(days=7)
    assert parse_span("2w") == timedelta(days=14)
    assert parse_span("1d12h") == timedelta(hours=36)
    assert (
        parse_span("7") is None
        and parse_span("h") is None
        and parse_span("-1h") is None
    )


def test_points() -> None:
    assert iso(parse_point("24h", BERLIN, NOW)) == "2026-12-02T17:00:00+00:00"
    assert iso(parse_point("now", BERLIN, NOW)) == "2026-12-03T17:00:00+00:00"
    assert iso(parse_point("today", BERLIN, NOW)) == "2026-12-03T00:00:00+01:00"
    assert iso(parse_point("yesterday", BERLIN, NOW)) == "2026-12-02T00:00:00+01:00"
    assert iso(parse_point("2026-12-01", BERLIN, NOW)) == "2026-12-01T00:00:00+01:00"
    assert (
        iso(parse_point("2026-07-01T10:30", BERLIN, NOW)) == "2026-07-01T10:30:00+02:00"
    )
    assert (
        iso(parse_point("2026-12-01 10:30Z", BERLIN, NOW))
        == "2026-12-01T10:30:00+00:00"
    )
    assert iso(parse_point("2026-12-01T10:30-05:00", BERLIN, NOW)) == (
        "2026-12-01T10:30:00-05:00"
    )


def test_today_is_the_calendar_day_of_the_zone() -> None:
    early = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 21:00 on Dec 2 in New York
    new_york = ZoneInfo("America/New_York")
    assert iso(parse_point("today", new_york, early)) == "2026-12-02T00:00:00-05:00"
    assert iso(parse_point("today", UTC, early)) == "2026-12-03T00:00:00+00:00"


@pytest.mark.parametrize("bad", ["tomorrow", "2026-13-01", "yesterday-ish", "", "5 h"])
def test_bad_points_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_window(bad or "x", None, BERLIN, NOW)


def test_since_must_come_before_until() -> None:
    with pytest.raises(UsageError):
        parse_window("today", "yesterday", BERLIN, NOW)


def test_since_yesterday_until_today_is_exactly_yesterday() -> None:
    window = parse_window("yesterday", "today", BERLIN, NOW)
    assert (iso(window.since), iso(window.until)) == (
        "2026-12-02T00:00:00+01:00",
        "2026-12-03T00:00:00+01:00",
    )
    inside = datetime(2026, 12, 2, 23, 59, 59, tzinfo=BERLIN)
    assert inside in window
    assert datetime(2026, 12, 3, 0, 0, tzinfo=BERLIN) not in window
    assert datetime(2026, 12, 1, 23, 59, 59, tzinfo=BERLIN) not in window
    # The same instant written in another offset
    assert datetime(2026, 12, 1, 23, 0, tzinfo=UTC) in window


def test_periods() -> None:
    day = parse_period("yesterday", BERLIN, NOW)
    assert (iso(day.since), iso(day.until)) == (
        "2026-12-02T00:00:00+01:00",
        "2026-12-03T00:00:00+01:00",
    )
    date = parse_period("2026-10-25", BERLIN, NOW)  # 25 hours: summer time ends
    assert (iso(date.since), iso(date.until)) == (
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    )
    span = parse_period("7d", BERLIN, NOW, before=datetime(2026, 12, 3, tzinfo=UTC))
    assert (iso(span.since), iso(span.until)) == (
        "2026-11-26T00:00:00+00:00",
        "2026-12-03T00:00:00+00:00",
    )
    both = parse_period("2026-11-01..2026-11-08", BERLIN, NOW)
    assert (iso(both.since), iso(both.until)) == (
        "2026-11-01T00:00:00+01:00",
        "2026-11-08T00:00:00+01:00",
    )
    with pytest.raises(UsageError):
        parse_period("7d", BERLIN, NOW)  # nothing to count back from
    with pytest.raises(UsageError):
        parse_period("last week", BERLIN, NOW)


# -- filtering a scan ---------------------------------------------------------------

FAIL = (
    "{t} mx1 postfix/smtpd[{pid}]: SSL_accept error from old-relay.example.net"
    "[198.51.100.7]: -1\n"
    "{t} mx1 postfix/smtpd[{pid}]: warning: TLS library problem: error:0A000102:"
    "SSL routines::unsupported protocol:../ssl/statem/statem_srvr.c:1657:\n"
)
OK = (
    "{t} mx1 postfix/smtpd[{pid}]: Anonymous TLS connection established from "
    "mail.example.org[192.0.2.21]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
    "(256/256 bits)\n"
)


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "mail.log"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_scan_keeps_records_by_their_own_time_not_their_hour(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            FAIL.format(t="2026-12-03T10:15:00+00:00", pid=1),
            OK.format(t="2026-12-03T10:20:00+00:00", pid=2),
            FAIL.format(t="2026-12-03T10:45:00+00:00", pid=3),
            OK.format(t="2026-12-03T10:59:00+00:00", pid=4),
            OK.format(t="2026-12-03T11:30:00+00:00", pid=5),
        ],
    )
    since = datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
    until = datetime(2026, 12, 3, 11, 30, tzinfo=UTC)
    options = Options(grammar="postfix", since=since, until=until)
    result = scan([str(path)], registry.load(), options)
    assert [e.time.isoformat() for e in result.events if e.time] == [
        "2026-12-03T10:45:00+00:00"
    ]
    assert result.tls_successes == 1  # 10:59 only: 10:20 is early, 11:30 is the end


def test_scan_splits_a_baseline_off_in_one_pass(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            FAIL.format(t="2026-12-02T10:00:00+00:00", pid=1),
            OK.format(t="2026-12-02T10:05:00+00:00", pid=2),
            FAIL.format(t="2026-12-03T10:00:00+00:00", pid=3),
            FAIL.format(t="2026-12-03T11:00:00+00:00", pid=4),
        ],
    )
    today = datetime(2026, 12, 3, tzinfo=UTC)
    options = Options(
        grammar="postfix",
        since=today,
        baseline=(today - timedelta(days=1), today),
    )
    result = scan([str(path)], registry.load(), options)
    assert len(result.events) == 2 and result.tls_successes == 0
    assert result.baseline is not None
    assert len(result.baseline.events) == 1 and result.baseline.tls_successes == 1


def test_records_without_time_are_kept(tmp_path: Path) -> None:
    # A container log line with no stamp at all
    path = write(
        tmp_path,
        [
            "postfix/smtpd[7]: SSL_accept error from old-relay.example.net[198.51.100.7]: -1\n",
            "postfix/smtpd[7]: warning: TLS library problem: error:0A000102:SSL routines::"
            "unsupported protocol:../ssl/statem/statem_srvr.c:1657:\n",
        ],
    )
    since = datetime(2026, 12, 3, tzinfo=UTC)
    result = scan([str(path)], registry.load(), Options(grammar="postfix", since=since))
    assert [e.time for e in result.events] == [None]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtplogscan", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TZ": "UTC"},
    )  # fmt: skip


def test_cli_since_until(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [FAIL.format(t=f"2026-11-{d:02}T12:00:00+00:00", pid=d) for d in (1, 2, 3)],
    )
    done = cli("events", "--since", "2026-11-02", "--until", "2026-11-03", str(path))
    assert done.returncode == 0, done.stderr
    assert [json.loads(x)["time"][:10] for x in done.stdout.splitlines()] == [
        "2026-11-02"
    ]
    done = cli("report", "-f", "json", "--since", "2026-11-02T12:00:01", str(path))
    assert json.loads(done.stdout)["totals"]["failures"] == 1
    bad = cli("report", "--since", "soon", str(path))
    assert bad.returncode == 2 and "cannot read the time" in bad.stderr
