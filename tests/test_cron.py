"""Running from cron: quiet when there is nothing to say, exit statuses, progress."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from smtplogscan import Options, registry, scan
from smtplogscan.progress import DELAY, Meter, size

from .conftest import SAMPLES

SYSLOG = SAMPLES / "postfix" / "openssl11-syslog.log"  # 7 failures
PINNED = ("--timezone", "UTC", "--year", "2026")
CLEAN_LOG = """\
Dec  2 23:58:01 mx1 postfix/smtpd[2101]: connect from mail.example.org[192.0.2.21]
Dec  2 23:58:01 mx1 postfix/smtpd[2101]: Anonymous TLS connection established from mail.example.org[192.0.2.21]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
Dec  2 23:58:02 mx1 postfix/smtpd[2101]: disconnect from mail.example.org[192.0.2.21] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7
"""  # noqa: E501


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtplogscan", "report", *PINNED, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def clean_log(tmp_path: Path) -> Path:
    path = tmp_path / "mail.log"
    path.write_text(CLEAN_LOG, encoding="utf-8")
    return path


@pytest.fixture
def fake_sendmail(tmp_path: Path) -> tuple[Path, Path]:
    copy = tmp_path / "sent.eml"
    program = tmp_path / "sendmail"
    program.write_text(f"#!/bin/sh\ncat > {copy}\n")
    program.chmod(0o755)
    return program, copy


@pytest.mark.parametrize("fmt", ["text", "html", "json", "csv"])
def test_quiet_if_empty_prints_nothing(clean_log: Path, fmt: str) -> None:
    done = run("--quiet-if-empty", "-f", fmt, str(clean_log))

    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_quiet_if_empty_sends_nothing(
    clean_log: Path, fake_sendmail: tuple[Path, Path]
) -> None:
    program, copy = fake_sendmail

    done = run("--quiet-if-empty", "--mail-to", "pm@example.org",
               "--sendmail-path", str(program), str(clean_log))  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert not copy.exists()


def test_quiet_if_empty_still_reports_failures(
    fake_sendmail: tuple[Path, Path],
) -> None:
    program, copy = fake_sendmail

    done = run("--quiet-if-empty", "--mail-to", "pm@example.org",
               "--sendmail-path", str(program), str(SYSLOG))  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert b"7 TLS failures from 7 peers" in copy.read_bytes()


def test_without_quiet_if_empty_an_empty_report_is_printed(clean_log: Path) -> None:
    done = run(str(clean_log))

    assert done.returncode == 0
    assert "No TLS failures found." in done.stdout


@pytest.mark.parametrize(
    ("threshold", "status"), [("1", 3), ("7", 3), ("8", 0), ("1000", 0)]
)
def test_fail_on_exits_3_from_n_failures(threshold: str, status: int) -> None:
    done = run("--fail-on", threshold, str(SYSLOG))

    assert done.returncode == status, done.stderr
    assert "7 TLS failure(s)" in done.stdout  # the report is printed either way


def test_fail_on_with_no_failures_exits_0(clean_log: Path) -> None:
    assert run("--fail-on", "1", str(clean_log)).returncode == 0


def test_unreadable_input_outranks_fail_on(tmp_path: Path) -> None:
    done = run("--fail-on", "1", str(SYSLOG), str(tmp_path / "missing.log"))

    assert done.returncode == 1
    assert "7 TLS failure(s)" in done.stdout


@pytest.mark.parametrize(
    "args", [("--fail-on", "0"), ("--fail-on", "many"), ("--no-such",)]
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    assert run(*args, str(SYSLOG)).returncode == 2


def test_fail_on_applies_after_mailing(fake_sendmail: tuple[Path, Path]) -> None:
    program, copy = fake_sendmail

    done = run("--fail-on", "5", "--mail-to", "pm@example.org",
               "--sendmail-path", str(program), str(SYSLOG))  # fmt: skip

    assert done.returncode == 3
    assert copy.exists()


def test_mail_failure_exits_4(tmp_path: Path) -> None:
    program = tmp_path / "sendmail"
    program.write_text("#!/bin/sh\necho 'queue full' >&2\nexit 75\n")
    program.chmod(0o755)

    done = run(
        "--mail-to", "pm@example.org", "--sendmail-path", str(program), str(SYSLOG)
    )

    assert done.returncode == 4
    assert "refused the report: queue full" in done.stderr


# The progress meter.


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_meter_draws_bytes_lines_and_rate_on_a_terminal() -> None:
    screen, clock = Terminal(), Clock()
    meter = Meter(screen, clock=clock)

    meter(4 << 20, 50_000)
    assert screen.getvalue() == ""  # too early: a short scan shows nothing
    clock.now += DELAY + 1  # two seconds in
    meter(4 << 20, 50_000)

    shown = screen.getvalue()
    assert shown.startswith("\r") and shown.endswith("\x1b[K")
    assert "read 8.0 MiB, 100,000 lines, 4.0 MiB/s, 50,000 lines/s" in shown
    meter.close()
    assert screen.getvalue().endswith("\r\x1b[K")


def test_meter_is_silent_off_a_terminal() -> None:
    screen, clock = io.StringIO(), Clock()
    meter = Meter(screen, clock=clock)

    clock.now += 10
    meter(1 << 20, 10)
    meter.close()

    assert screen.getvalue() == ""
    assert (meter.bytes, meter.lines) == (1 << 20, 10)


def test_meter_can_be_switched_off_on_a_terminal() -> None:
    screen, clock = Terminal(), Clock()
    meter = Meter(screen, enabled=False, clock=clock)

    clock.now += 10
    meter(1 << 20, 10)

    assert screen.getvalue() == ""


def test_scan_feeds_the_meter_every_byte_and_line() -> None:
    meter = Meter(io.StringIO())

    result = scan([str(SYSLOG)], registry.load(), Options(), progress=meter)

    assert (meter.bytes, meter.lines) == (result.counts.bytes, result.counts.lines)
    assert meter.lines == 41


def test_cli_progress_stays_off_stderr_when_it_is_no_terminal() -> None:
    done = run(str(SYSLOG))

    assert done.stderr == ""


def test_size() -> None:
    assert [size(n) for n in (12, 2048, 5 << 30)] == ["12 B", "2.0 KiB", "5.0 GiB"]
