"""The timeline, its spikes and what changed: counts worked out by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

from smtplogscan import Options, registry, scan
from smtplogscan.analysis import analyse
from smtplogscan.timeline import is_spike

OLD = "old-relay.example.net[198.51.100.7]"
NEW = "unknown[203.0.113.50]"


def failure(t: str, pid: int, peer: str, reason: str) -> str:
    return (
        f"{t} mx1 postfix/smtpd[{pid}]: SSL_accept error from {peer}: -1\n"
        f"{t} mx1 postfix/smtpd[{pid}]: warning: TLS library problem: {reason}\n"
        f"{t} mx1 postfix/smtpd[{pid}]: lost connection after STARTTLS from {peer}\n"
    )


def protocol(t: str, pid: int, peer: str = OLD) -> str:
    return failure(t, pid, peer, "error:0A000102:SSL routines::unsupported protocol:"
                   "../ssl/statem/statem_srvr.c:1657:")  # fmt: skip


def cipher(t: str, pid: int, peer: str = NEW) -> str:
    return failure(t, pid, peer, "error:0A0000C1:SSL routines::no shared cipher:"
                   "../ssl/statem/statem_srvr.c:2220:")  # fmt: skip


def success(t: str, pid: int) -> str:
    return (
        f"{t} mx1 postfix/smtpd[{pid}]: Anonymous TLS connection established from "
        "mail.example.org[192.0.2.21]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
        "(256/256 bits)\n"
    )


def deferred(t: str, pid: int) -> str:
    return (
        f"{t} mx1 postfix/smtp[{pid}]: 4F1A22C0D{pid:02X}: to=<bob@slow.example>, "
        "relay=mx.slow.example[192.0.2.80]:25, delay=1.2, delays=0.1/0/0.6/0.5, "
        "dsn=4.7.1, status=deferred (host mx.slow.example[192.0.2.80] said: 450 4.7.1 "
        "Try again later (in reply to RCPT TO command))\n"
    )


def bounced(t: str, pid: int) -> str:
    return (
        f"{t} mx1 postfix/smtp[{pid}]: 5B7C02C0D{pid:02X}: to=<u{pid}@big.example>, "
        "relay=mx.big.example[192.0.2.90]:25, delay=0.9, delays=0.1/0/0.4/0.4, "
        "dsn=5.1.1, status=bounced (host mx.big.example[192.0.2.90] said: 550 5.1.1 "
        "Recipient address rejected: User unknown (in reply to RCPT TO command))\n"
    )


def spike_log() -> str:
    """Hours 00-07: one failure, two successes, one deferral each. Hour 08: six
    failures of a new peer and kind, no success, twenty bounces that are not TLS.
    Hour 09: nothing. Hour 10: one success."""
    lines = []
    for h in range(8):
        lines += [
            protocol(f"2026-12-03T{h:02}:05:00+00:00", 100 + h),
            success(f"2026-12-03T{h:02}:10:00+00:00", 110 + h),
            success(f"2026-12-03T{h:02}:20:00+00:00", 120 + h),
            deferred(f"2026-12-03T{h:02}:30:00+00:00", 130 + h),
        ]
    lines += [cipher(f"2026-12-03T08:{m:02}:00+00:00", 140 + m) for m in range(6)]
    lines += [
        bounced(f"2026-12-03T08:{m + 30:02}:00+00:00", 150 + m) for m in range(20)
    ]
    lines.append(success("2026-12-03T10:00:00+00:00", 199))
    return "".join(lines)


def write(tmp_path: Path, text: str, name: str = "mail.log") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def timeline_of(path: Path, zone: object = UTC, bucket: str | None = None) -> dict:  # type: ignore[type-arg]
    result = scan([str(path)], registry.load(), Options(grammar="postfix"))
    return analyse(result, zone, bucket).to_json()  # type: ignore[arg-type]


def test_the_spike_rule() -> None:
    assert is_spike(6, [1] * 8) == (True, 1.0, 5.0)
    assert is_spike(4, [1] * 8)[0] is False  # under the minimum of 5
    # median 4; deviations 0,1,1,0,2,0 -> MAD 0.5; threshold max(12, 5.5, 5) = 12
    assert is_spike(12, [4, 5, 3, 4, 6, 4]) == (True, 4.0, 12.0)
    assert is_spike(11, [4, 5, 3, 4, 6, 4])[0] is False
    # median 2; deviations 2,0,8,0,2 -> MAD 2; threshold max(6, 8, 5) = 8
    assert is_spike(7, [0, 2, 10, 2, 4]) == (False, 2.0, 8.0)
    assert is_spike(100, [0, 0]) == (False, 0.0, 0.0)  # too little history


def test_hourly_rows_with_empty_hours(tmp_path: Path) -> None:
    body = timeline_of(write(tmp_path, spike_log()))
    timeline = body["timeline"]
    assert (timeline["bucket"], timeline["zone"]) == ("hour", "UTC")
    rows = timeline["rows"]
    assert [r["start"] for r in rows] == [
        f"2026-12-03T{h:02}:00:00+00:00" for h in range(11)
    ]
    usual = {
        "failures": 1, "inbound": 1, "outbound": 0, "kinds": {"protocol_version": 1},
        "successes": 2, "deferred": 1, "bounced": 0, "tls_deferred": 0, "tls_bounced": 0,
    }  # fmt: skip
    for row in rows[:8]:
        assert {k: v for k, v in row.items() if k != "start"} == usual
    assert {k: v for k, v in rows[8].items() if k != "start"} == {
        "failures": 6, "inbound": 6, "outbound": 0, "kinds": {"no_shared_cipher": 6},
        "successes": 0, "deferred": 0, "bounced": 20, "tls_deferred": 0, "tls_bounced": 0,
    }  # fmt: skip
    assert rows[9]["failures"] == rows[9]["successes"] == rows[9]["bounced"] == 0
    assert rows[9]["kinds"] == {}
    assert (rows[10]["successes"], rows[10]["failures"]) == (1, 0)

    totals = body["totals"]
    assert (totals["deferred_all"], totals["bounced_all"], totals["tls_share"]) == (
        8,
        20,
        0.0,
    )


def test_spikes_say_what_changed(tmp_path: Path) -> None:
    spikes = timeline_of(write(tmp_path, spike_log()))["timeline"]["spikes"]
    assert [(s["start"], s["metric"], s["value"]) for s in spikes] == [
        ("2026-12-03T08:00:00+00:00", "failures", 6),
        ("2026-12-03T08:00:00+00:00", "bounced", 20),
    ]
    fail, bounce = spikes
    assert (fail["baseline"], fail["threshold"]) == (1.0, 5.0)
    assert fail["new_peers"] == ["203.0.113.50"]
    assert fail["new_kinds"] == ["no_shared_cipher"]
    assert fail["stopped_succeeding"] == ["mail.example.org [192.0.2.21]"]
    assert (bounce["baseline"], bounce["tls"], bounce["tls_share"]) == (0.0, 0, 0.0)
    assert "look elsewhere" in bounce["note"]
    assert bounce["new_peers"] == ["mx.big.example [192.0.2.90]"]
    assert bounce["new_kinds"] == []


def test_a_deferral_spike_in_a_log_without_tls_failures(tmp_path: Path) -> None:
    # Six quiet hours, then eight deferrals; not one TLS failure, so no events.
    text = "".join(deferred(f"2026-12-03T{h:02}:30:00+00:00", 10 + h) for h in range(6))
    text += "".join(
        deferred(f"2026-12-03T06:{m:02}:00+00:00", 20 + m) for m in range(8)
    )
    spikes = timeline_of(write(tmp_path, text))["timeline"]["spikes"]
    assert [(s["start"], s["metric"], s["value"]) for s in spikes] == [
        ("2026-12-03T06:00:00+00:00", "deferred", 8)
    ]
    assert spikes[0]["new_peers"] == ["mx.slow.example [192.0.2.80]"]
    assert (spikes[0]["tls"], spikes[0]["new_kinds"]) == (0, [])


def test_days_across_the_end_of_summer_time(tmp_path: Path) -> None:
    text = "".join(
        protocol(t, n)
        for n, t in enumerate(
            [
                "2026-10-24T10:00:00+02:00",
                "2026-10-25T23:30:00+01:00",  # still the 25th in Berlin
                "2026-10-25T23:30:00+00:00",  # 00:30 on the 26th in Berlin
                "2026-10-28T12:00:00+01:00",
            ]
        )
    )
    berlin = ZoneInfo("Europe/Berlin")
    timeline = timeline_of(write(tmp_path, text), berlin)["timeline"]
    assert (timeline["bucket"], timeline["zone"]) == ("day", "Europe/Berlin")
    assert [(r["start"], r["failures"]) for r in timeline["rows"]] == [
        ("2026-10-24T00:00:00+02:00", 1),
        ("2026-10-25T00:00:00+02:00", 1),
        ("2026-10-26T00:00:00+01:00", 1),
        ("2026-10-27T00:00:00+01:00", 0),
        ("2026-10-28T00:00:00+01:00", 1),
    ]
    hourly = timeline_of(write(tmp_path, text), berlin, "hour")["timeline"]
    # from 10:00 on the 24th to 12:00 on the 28th, with a 25-hour day between
    assert hourly["bucket"] == "hour" and len(hourly["rows"]) == 14 + 25 + 24 + 24 + 13


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtplogscan", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TZ": "UTC"},
    )  # fmt: skip


def test_text_report_shows_the_timeline_and_its_spikes(tmp_path: Path) -> None:
    done = cli("report", "--grammar", "postfix", str(write(tmp_path, spike_log())))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    at = lines.index("TIMELINE per hour (UTC); defer and bounce count every delivery,"
                     " tls = TLS's share")  # fmt: skip
    assert (
        lines.index("CAUSES AND WHAT TO CHANGE")
        > at
        > lines.index("PEERS, most failures first")
    )
    spike_row = lines[at + 2 + 8].split()
    assert spike_row[:9] == ["2026-12-03", "08:00", "6", "6", "0", "0", "0", "20", "0%"]
    assert spike_row[-1] == "!FB"
    assert "20 bounced, usually 0. 0% of these bounced are TLS failures: look" in (
        done.stdout.replace("\n    ", " ").replace("\n  ", " ")
    )
    assert (
        "In all, whatever the reason: 8 deferred, 20 bounced; TLS explains 0%."
        in done.stdout
    )


def comparison_log() -> str:
    """Dec 2 (before): A 2, C 3, E 6, B 4. Dec 3 (now): A 2, B 12, D 3, E 1."""
    peers = {
        "a.example[192.0.2.1]": (2, 2),
        "b.example[192.0.2.2]": (4, 12),
        "c.example[192.0.2.3]": (3, 0),
        "d.example[192.0.2.4]": (0, 3),
        "e.example[192.0.2.5]": (6, 1),
    }
    lines = []
    pid = 1000
    for peer, counts in peers.items():
        for day, n in zip((2, 3), counts, strict=True):
            for i in range(n):
                pid += 1
                lines.append(protocol(f"2026-12-0{day}T{i:02}:00:00+00:00", pid, peer))
    lines.sort()  # by time, as a log is written
    return "".join(lines)


def test_compare_to_a_day_from_the_same_inputs(tmp_path: Path) -> None:
    path = write(tmp_path, comparison_log())
    done = cli("report", "-f", "json", "--since", "2026-12-03", "--until", "2026-12-04",
               "--compare-to", "2026-12-02", str(path))  # fmt: skip
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["totals"]["failures"] == 18
    comparison = body["comparison"]
    assert comparison["period"]["since"] == "2026-12-02T00:00:00+00:00"
    assert comparison["scale"] == 1.0

    def names(key: str) -> list[tuple[str, int, int]]:
        return [(r["peer"], r["before"], r["after"]) for r in comparison[key]]

    assert names("new") == [("d.example [192.0.2.4]", 0, 3)]
    assert names("gone") == [("c.example [192.0.2.3]", 3, 0)]
    assert names("worse") == [("b.example [192.0.2.2]", 4, 12)]
    assert names("better") == [("e.example [192.0.2.5]", 6, 1)]

    text = cli(
        "report", "--since", "2026-12-03", "--compare-to", "2026-12-02", str(path)
    )
    assert "WHAT CHANGED against 2026-12-02" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) <= 100


def test_compare_inputs_as_baseline(tmp_path: Path) -> None:
    text = comparison_log()
    before = "".join(x for x in text.splitlines(True) if x.startswith("2026-12-02"))
    after = "".join(x for x in text.splitlines(True) if x.startswith("2026-12-03"))
    done = cli("report", "-f", "json", "--grammar", "postfix",
               "--compare-inputs", str(write(tmp_path, before, "old.log")),
               str(write(tmp_path, after, "new.log")))  # fmt: skip
    assert done.returncode == 0, done.stderr
    comparison = json.loads(done.stdout)["comparison"]
    assert comparison["period"]["inputs"] == [str(tmp_path / "old.log")]
    assert [r["peer"] for r in comparison["new"]] == ["d.example [192.0.2.4]"]
    assert [r["peer"] for r in comparison["gone"]] == ["c.example [192.0.2.3]"]


def test_compare_to_a_span_needs_a_start() -> None:
    done = cli("report", "--compare-to", "7d", os.devnull)
    assert done.returncode == 2 and "--since" in done.stderr
