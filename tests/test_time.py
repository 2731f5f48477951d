"""Years and zones of log stamps: the syslog clock, the grammars, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from smtplogscan import Options, registry, scan
from smtplogscan.timestamps import SyslogClock, parse_iso

BERLIN = ZoneInfo("Europe/Berlin")


def clock(mtime: str, zone: object = UTC, year: int | None = None) -> SyslogClock:
    return SyslogClock(datetime.fromisoformat(mtime), zone, year)  # type: ignore[arg-type]


def stamps(c: SyslogClock, *lines: str) -> list[str]:
    """Read ``Mon DD HH:MM:SS`` stamps in order; return them as ISO text."""
    out = []
    for line in lines:
        month, day, hms = line.split()
        out.append(c.stamp(month, int(day), hms).isoformat())
    return out


# -- the clock ----------------------------------------------------------------------


def test_new_year_crossing_read_in_january() -> None:
    c = clock("2027-01-01T06:00:00+00:00")
    assert stamps(c, "Dec 31 23:59:58", "Jan  1 00:00:03", "Jan  1 05:00:00") == [
        "2026-12-31T23:59:58+00:00",
        "2027-01-01T00:00:03+00:00",
        "2027-01-01T05:00:00+00:00",
    ]


def test_log_all_in_december_read_in_january() -> None:
    c = clock("2027-01-10T09:00:00+00:00")
    assert stamps(c, "Dec  1 10:00:00", "Dec 31 23:00:00") == [
        "2026-12-01T10:00:00+00:00",
        "2026-12-31T23:00:00+00:00",
    ]


def test_out_of_order_lines_around_midnight_of_new_year() -> None:
    # A relay wrote 23:59:59 after 00:00:01: it still belongs to the old year,
    # and the line after it to the new one.
    c = clock("2027-01-02T00:00:00+00:00")
    assert stamps(
        c, "Dec 31 23:59:58", "Jan  1 00:00:01", "Dec 31 23:59:59", "Jan  1 00:00:02"
    ) == [
        "2026-12-31T23:59:58+00:00",
        "2027-01-01T00:00:01+00:00",
        "2026-12-31T23:59:59+00:00",
        "2027-01-01T00:00:02+00:00",
    ]


def test_no_stamp_lands_more_than_a_day_after_the_mtime() -> None:
    c = clock("2026-12-03T17:00:00+00:00")
    # Dec 4 18:00 would be 25 hours ahead: it is last year's.
    assert stamps(c, "Dec  4 18:00:00") == ["2025-12-04T18:00:00+00:00"]
    c = clock("2026-12-03T17:00:00+00:00")
    assert stamps(c, "Dec  4 16:00:00") == ["2026-12-04T16:00:00+00:00"]


def test_sparse_lines_months_apart_stay_in_one_year() -> None:
    # grep output: one failure in February, the next in September.
    c = clock("2026-12-03T17:00:00+00:00")
    assert stamps(c, "Feb  3 10:00:00", "Sep 20 11:00:00") == [
        "2026-02-03T10:00:00+00:00",
        "2026-09-20T11:00:00+00:00",
    ]


def test_logs_concatenated_out_of_order_keep_the_year() -> None:
    # cat mail.log mail.log.1: a week back is no New Year when it lands ahead.
    c = clock("2026-12-08T00:00:00+00:00")
    assert stamps(c, "Dec  7 10:00:00", "Nov 30 10:00:00") == [
        "2026-12-07T10:00:00+00:00",
        "2026-11-30T10:00:00+00:00",
    ]


def test_feb_29_in_a_leap_year() -> None:
    c = clock("2028-03-01T12:00:00+00:00")
    assert stamps(c, "Feb 28 23:59:59", "Feb 29 00:00:01", "Mar  1 00:00:00") == [
        "2028-02-28T23:59:59+00:00",
        "2028-02-29T00:00:01+00:00",
        "2028-03-01T00:00:00+00:00",
    ]


def test_feb_29_in_a_common_year_is_an_error_and_leaves_the_clock_alone() -> None:
    c = clock("2027-03-01T12:00:00+00:00")
    assert stamps(c, "Feb 28 10:00:00") == ["2027-02-28T10:00:00+00:00"]
    with pytest.raises(ValueError):
        stamps(c, "Feb 29 10:00:00")
    assert stamps(c, "Mar  1 09:00:00") == ["2027-03-01T09:00:00+00:00"]


def test_feb_29_after_a_new_year_into_a_leap_year() -> None:
    c = clock("2028-03-02T00:00:00+00:00")
    assert stamps(c, "Dec 31 12:00:00", "Feb 29 12:00:00") == [
        "2027-12-31T12:00:00+00:00",
        "2028-02-29T12:00:00+00:00",
    ]


def test_given_year_names_the_first_stamp_and_follows_the_new_year() -> None:
    c = clock("2030-06-01T00:00:00+00:00", year=2019)
    assert stamps(c, "Dec 31 23:00:00", "Jan  1 01:00:00") == [
        "2019-12-31T23:00:00+00:00",
        "2020-01-01T01:00:00+00:00",
    ]
    with pytest.raises(ValueError):
        stamps(clock("2030-06-01T00:00:00+00:00", year=2027), "Feb 29 00:00:00")
    assert stamps(clock("2030-06-01T00:00:00+00:00", year=2028), "Feb 29 00:00:00") == [
        "2028-02-29T00:00:00+00:00"
    ]


def test_impossible_stamps_raise_value_error() -> None:
    for month, day, hms in (
        ("Apr", 31, "10:00:00"),
        ("Foo", 1, "10:00:00"),
        ("Jan", 0, "1:0:0"),
    ):
        with pytest.raises(ValueError):
            clock("2026-12-03T00:00:00+00:00").stamp(month, day, hms)
    with pytest.raises(ValueError):
        clock("2026-12-03T00:00:00+00:00").stamp("Jan", 3, "25:00:00")


def test_stamps_take_the_zone_with_its_summer_time() -> None:
    c = clock("2026-12-03T00:00:00+00:00", BERLIN)
    assert stamps(c, "Jul  1 12:00:00", "Nov  1 12:00:00") == [
        "2026-07-01T12:00:00+02:00",
        "2026-11-01T12:00:00+01:00",
    ]


def test_iso_stamps_keep_their_offset() -> None:
    assert parse_iso("2026-12-03T15:01:02.5+0530", BERLIN).isoformat() == (
        "2026-12-03T15:01:02.500000+05:30"
    )
    assert (
        parse_iso("2026-12-03 15:01:02", BERLIN).isoformat()
        == "2026-12-03T15:01:02+01:00"
    )


# -- the grammars and the CLI ---------------------------------------------------------

FAILURE = (
    "{stamp} mx1 postfix/smtpd[{pid}]: SSL_accept error from old-relay.example.net"
    "[198.51.100.7]: -1\n"
    "{stamp} mx1 postfix/smtpd[{pid}]: warning: TLS library problem: error:0A000102:"
    "SSL routines::unsupported protocol:../ssl/statem/statem_srvr.c:1657:\n"
    "{stamp} mx1 postfix/smtpd[{pid}]: lost connection after STARTTLS from "
    "old-relay.example.net[198.51.100.7]\n"
)


def postfix_log(
    tmp_path: Path, stamps_: list[str], mtime: str, name: str = "mail.log"
) -> Path:
    text = "".join(FAILURE.format(stamp=s, pid=100 + i) for i, s in enumerate(stamps_))
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    moment = datetime.fromisoformat(mtime).timestamp()
    os.utime(path, (moment, moment))
    return path


def times(path: Path, **options: object) -> list[str]:
    result = scan([str(path)], registry.load(), Options(grammar="postfix", **options))  # type: ignore[arg-type]
    return sorted(str(e.time.isoformat()) for e in result.events if e.time is not None)


def test_a_postfix_log_across_new_year_takes_its_years_from_the_mtime(
    tmp_path: Path,
) -> None:
    path = postfix_log(
        tmp_path, ["Dec 31 23:59:30", "Jan  1 00:00:10"], "2027-01-01T08:00:00+00:00"
    )
    assert times(path, zone=UTC) == [
        "2026-12-31T23:59:30+00:00",
        "2027-01-01T00:00:10+00:00",
    ]
    assert times(path, zone=UTC, year=2020) == [
        "2020-12-31T23:59:30+00:00",
        "2021-01-01T00:00:10+00:00",
    ]


@pytest.mark.parametrize("grammar", ["postfix", "exim"])
def test_feb_29_of_a_common_year_is_counted_not_raised(
    tmp_path: Path, grammar: str
) -> None:
    if grammar == "postfix":
        path = postfix_log(
            tmp_path,
            ["Feb 28 10:00:00", "Feb 29 10:00:00", "Mar  1 10:00:00"],
            "2027-03-02T00:00:00+00:00",
        )
    else:
        lines = [
            f"{s} mx1 exim[{n}]: TLS error on connection from old-relay.example.net "
            f"(old-relay.example.net) [198.51.100.7]:41000 (SSL_accept): "
            "error:0A000102:SSL routines::unsupported protocol\n"
            for n, s in enumerate(
                ["Feb 28 10:00:00", "Feb 29 10:00:00", "Mar  1 10:00:00"]
            )
        ]
        path = tmp_path / "mainlog"
        path.write_text("".join(lines), encoding="utf-8")
        moment = datetime(2027, 3, 2, tzinfo=UTC).timestamp()
        os.utime(path, (moment, moment))
    result = scan([str(path)], registry.load(), Options(grammar=grammar, zone=UTC))
    assert result.counts.unmatched >= 1
    days = sorted(
        e.time.date().isoformat() for e in result.events if e.time is not None
    )
    assert days == ["2027-02-28", "2027-03-01"]


def test_feb_29_of_a_leap_year_is_read(tmp_path: Path) -> None:
    path = postfix_log(tmp_path, ["Feb 29 10:00:00"], "2028-03-02T00:00:00+00:00")
    assert times(path, zone=UTC) == ["2028-02-29T10:00:00+00:00"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": "UTC"}
    return subprocess.run(
        [sys.executable, "-m", "smtplogscan", *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_cli_zone_year_and_utc(tmp_path: Path) -> None:
    path = postfix_log(tmp_path, ["Jul  1 12:00:00"], "2026-12-03T00:00:00+00:00")
    done = cli("events", "--timezone", "Europe/Berlin", "--year", "2025", str(path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["time"] == "2025-07-01T12:00:00+02:00"
    done = cli("events", "--timezone", "Europe/Berlin", "--utc", str(path))
    assert json.loads(done.stdout)["time"] == "2026-07-01T10:00:00+00:00"
    done = cli(
        "report", "-f", "json", "--timezone", "Europe/Berlin", "--utc", str(path)
    )
    body = json.loads(done.stdout)
    assert body["totals"]["first_seen"] == "2026-07-01T10:00:00+00:00"
    assert body["peers"][0]["last_seen"] == "2026-07-01T10:00:00+00:00"
    assert body["timeline"]["zone"] == "UTC"
    assert body["timeline"]["rows"][0]["start"] == "2026-07-01T10:00:00+00:00"
    done = cli("report", "-f", "json", "--timezone", "Europe/Berlin", str(path))
    body = json.loads(done.stdout)
    assert body["totals"]["first_seen"] == "2026-07-01T12:00:00+02:00"
    assert body["timeline"]["rows"][0]["start"] == "2026-07-01T12:00:00+02:00"


def test_mixed_offsets_keep_their_own_in_events(tmp_path: Path) -> None:
    text = "".join(
        FAILURE.format(stamp=s, pid=200 + i)
        for i, s in enumerate(
            ["2026-12-03T10:00:00+01:00", "2026-12-03T10:30:00-05:00"]
        )
    )
    path = tmp_path / "mail.log"
    path.write_text(text, encoding="utf-8")
    done = cli("events", str(path))
    assert [json.loads(line)["time"] for line in done.stdout.splitlines()] == [
        "2026-12-03T10:00:00+01:00",
        "2026-12-03T10:30:00-05:00",
    ]
    done = cli("report", "-f", "json", "--timezone", "Asia/Kolkata", str(path))
    body = json.loads(done.stdout)
    # 09:00Z and 15:30Z, shown at +05:30
    assert (body["totals"]["first_seen"], body["totals"]["last_seen"]) == (
        "2026-12-03T14:30:00+05:30",
        "2026-12-03T21:00:00+05:30",
    )


def test_unknown_zone_is_a_usage_error() -> None:
    assert cli("events", "--timezone", "Mars/Olympus", os.devnull).returncode == 2
