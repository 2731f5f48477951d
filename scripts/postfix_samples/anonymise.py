#!/usr/bin/env python3
"""Give a raw Postfix log from the sample run documentation names and addresses.

Usage: anonymise.py < raw.log > anonymised.log

Only names, addresses and the syslog host change; every other byte of each line
stays as Postfix and OpenSSL wrote it. The mapping is fixed, so the same run
always maps the same way:

- 127.0.0.N below 21 and above 30 (inbound clients) -> 192.0.2.N
- 127.0.0.21 to 127.0.0.30 (outbound servers)        -> 198.51.100.N
- ::1 -> 2001:db8::25
- NAME.client.test -> NAME.example.org, lab.test -> example.com,
  any other NAME.test -> NAME.example.net
- the syslog host -> mx1

If postlogd wrote microseconds or a zero-padded day in the timestamp, only that
prefix is rewritten to the traditional syslog shape `Dec  3 15:01:02`.
"""

from __future__ import annotations

import re
import sys

V4 = re.compile(r"(?<![\d.])127\.0\.0\.(\d{1,3})(?![\d])")
V6 = re.compile(r"(?<![0-9A-Fa-f:])::1(?![0-9A-Fa-f:])")
NAME = re.compile(r"\b((?:[a-z0-9-]+\.)+?)(client\.test|lab\.test|test)\b")
PREFIX = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) (?P<day>[ 0-9]\d) (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)? "
    r"(?P<host>\S+) "
)


def map_v4(match: re.Match[str]) -> str:
    last = int(match.group(1))
    if 21 <= last <= 30:
        return f"198.51.100.{last}"
    return f"192.0.2.{last}"


def map_name(match: re.Match[str]) -> str:
    labels, suffix = match.group(1), match.group(2)
    if suffix == "client.test":
        return f"{labels}example.org"
    if suffix == "lab.test":
        return f"{labels}example.com"
    return f"{labels}example.net"


def fix_prefix(match: re.Match[str]) -> str:
    day = int(match.group("day"))
    return f"{match.group('mon')} {day:2d} {match.group('time')} mx1 "


def anonymise(line: str) -> str:
    line = PREFIX.sub(fix_prefix, line, count=1)
    line = V4.sub(map_v4, line)
    line = V6.sub("2001:db8::25", line)
    return NAME.sub(map_name, line)


def main() -> None:
    for line in sys.stdin:
        sys.stdout.write(anonymise(line))


if __name__ == "__main__":
    main()
