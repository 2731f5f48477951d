#!/usr/bin/env python3
"""Measure smtplogscan against baselines run in the same session on the same log.

Generates a realistic Postfix log (busy MX: inbound and outbound sessions with
loglevel-1 TLS lines, rejections, postscreen chatter, about 1% TLS failures), then
prints lines per second and peak memory of ``smtplogscan report``, the same for
``grep -c TLS`` (the floor), for pflogsumm when it is installed, and how memory
grows when the log is four times longer. Machines here are noisy: read the ratios,
which are measured back to back, rather than the absolute numbers.

    python scripts/benchmark.py                # 1,000,000 lines
    python scripts/benchmark.py --lines 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
with open(sys.argv[1], "rb") as log:
    # A pipe, not /dev/null: GNU grep stops at the first match when its output
    # goes nowhere.
    done = subprocess.run(sys.argv[2:], stdin=log, stdout=subprocess.PIPE)
took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(done.returncode, took, peak)
"""


def _peer(rng: random.Random) -> tuple[str, str]:
    # A few big senders carry most mail, and a long tail carries the rest: peers
    # are drawn from 5,000 with a Pareto weight, as a busy MX sees them.
    n = min(int(rng.paretovariate(1.1)) - 1, 4999)
    a, b = divmod(n, 250)
    return f"mail{n}.example{a % 40}.net", f"198.51.{a}.{b + 1}"


def _stamp(second: int) -> str:
    day, rest = divmod(second, 86400)
    hour, rest = divmod(rest, 3600)
    minute, sec = divmod(rest, 60)
    return f"Dec {1 + day % 28:2d} {hour:02d}:{minute:02d}:{sec:02d} mx1"


def generate(path: Path, lines: int, seed: int = 7) -> int:
    """Write a log of about `lines` lines to `path`; return the exact count."""
    rng = random.Random(seed)
    written = 0
    second = 0
    queue = 0x1000000
    with path.open("w") as out:
        while written < lines:
            second += rng.randrange(0, 2)
            t = _stamp(second)
            pid = rng.randrange(1000, 30000)
            name, addr = _peer(rng)
            queue += 1
            qid = f"{queue:X}"
            roll = rng.random()
            if roll < 0.55:  # an inbound message over TLS
                block = [
                    f"{t} postfix/postscreen[{pid - 1}]: CONNECT from [{addr}]:{rng.randrange(1024, 65535)} to [192.0.2.1]:25",
                    f"{t} postfix/postscreen[{pid - 1}]: PASS OLD [{addr}]:{rng.randrange(1024, 65535)}",
                    f"{t} postfix/smtpd[{pid}]: connect from {name}[{addr}]",
                    f"{t} postfix/smtpd[{pid}]: Anonymous TLS connection established from {name}[{addr}]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256",
                    f"{t} postfix/smtpd[{pid}]: {qid}: client={name}[{addr}]",
                    f"{t} postfix/cleanup[{pid + 1}]: {qid}: message-id=<{qid}.{pid}@{name}>",
                    f"{t} postfix/qmgr[900]: {qid}: from=<news@{name}>, size={rng.randrange(900, 90000)}, nrcpt=1 (queue active)",
                    f"{t} postfix/smtpd[{pid}]: disconnect from {name}[{addr}] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7",
                    f"{t} postfix/lmtp[{pid + 2}]: {qid}: to=<user{pid}@example.com>, relay=mail.example.com[private/dovecot-lmtp], delay=0.2, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 <user@example.com> Saved)",
                    f"{t} postfix/qmgr[900]: {qid}: removed",
                ]
            elif roll < 0.80:  # an outbound message over TLS
                block = [
                    f"{t} postfix/pickup[901]: {qid}: uid=1000 from=<app>",
                    f"{t} postfix/cleanup[{pid + 1}]: {qid}: message-id=<{qid}@mx1.example.com>",
                    f"{t} postfix/qmgr[900]: {qid}: from=<app@example.com>, size=2048, nrcpt=1 (queue active)",
                    f"{t} postfix/smtp[{pid}]: Trusted TLS connection established to {name}[{addr}]:25: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
                    f"{t} postfix/smtp[{pid}]: {qid}: to=<u@{name}>, relay={name}[{addr}]:25, delay=0.9, delays=0.1/0/0.3/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)",
                    f"{t} postfix/qmgr[900]: {qid}: removed",
                ]
            elif roll < 0.99:  # rejected before any TLS
                block = [
                    f"{t} postfix/smtpd[{pid}]: connect from unknown[{addr}]",
                    f"{t} postfix/smtpd[{pid}]: NOQUEUE: reject: RCPT from unknown[{addr}]: 450 4.7.1 Client host rejected: cannot find your hostname, [{addr}]; from=<spam@{name}> to=<x@example.com> proto=ESMTP helo=<{name}>",
                    f"{t} postfix/smtpd[{pid}]: disconnect from unknown[{addr}] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4",
                    f"{t} postfix/anvil[902]: statistics: max connection rate 1/60s for (smtp:{addr}) at {t[:15]}",
                ]
            elif roll < 0.995:  # an inbound handshake failure
                block = [
                    f"{t} postfix/smtpd[{pid}]: connect from {name}[{addr}]",
                    f"{t} postfix/smtpd[{pid}]: SSL_accept error from {name}[{addr}]: -1",
                    f"{t} postfix/smtpd[{pid}]: warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:../ssl/statem/statem_srvr.c:1657:",
                    f"{t} postfix/smtpd[{pid}]: lost connection after STARTTLS from {name}[{addr}]",
                    f"{t} postfix/smtpd[{pid}]: disconnect from {name}[{addr}] ehlo=1 starttls=0/1 commands=1/2",
                ]
            else:  # an outbound failure, then the plaintext retry
                block = [
                    f"{t} postfix/smtp[{pid}]: SSL_connect error to {name}[{addr}]:25: -1",
                    f"{t} postfix/smtp[{pid}]: warning: TLS library problem: error:0A00018A:SSL routines::dh key too small:../ssl/statem/statem_clnt.c:2233:",
                    f"{t} postfix/smtp[{pid}]: {qid}: Cannot start TLS: handshake failure",
                    f"{t} postfix/smtp[{pid}]: {qid}: to=<u@{name}>, relay={name}[{addr}]:25, delay=1.2, delays=0.1/0/0.9/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok)",
                ]
            out.write("\n".join(block) + "\n")
            written += len(block)
    return written


ENGINE = """
import sys, time
from smtplogscan import Options, registry, scan
grammars = registry.load()
start = time.perf_counter()
result = scan([sys.argv[1]], grammars, Options(jobs=int(sys.argv[2])))
print(time.perf_counter() - start, result.counts.lines)
"""


def engine_only(log: Path, jobs: int, repeat: int) -> float:
    """Best time of the scan alone: no interpreter start, no pandas, no report."""
    best = float("inf")
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", ENGINE, str(log), str(jobs)],
            capture_output=True,
            text=True,
            check=True,
        )
        best = min(best, float(done.stdout.split()[0]))
    return best


def measure(log: Path, command: list[str], repeat: int) -> tuple[float, int]:
    """Return the best wall time of `repeat` runs and the peak RSS in KiB."""
    best, peak = float("inf"), 0
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", MEASURE, str(log), *command],
            capture_output=True,
            text=True,
            check=True,
        )
        status, took, rss = done.stdout.split()
        if status not in ("0", "1"):  # grep -c exits 1 when it counts nothing
            raise SystemExit(f"{command[0]} failed with status {status}")
        best, peak = min(best, float(took)), max(peak, int(rss))
    return best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--keep", type=Path, help="keep the generated logs in this folder"
    )
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="smtplogscan-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    small, large = folder / "mail.log", folder / "mail-x4.log"
    lines = generate(small, args.lines)
    large_lines = generate(large, args.lines * 4, seed=8)
    size = small.stat().st_size
    print(
        f"log: {lines:,} lines, {size / 2**20:.0f} MiB ({size // lines} bytes a line)"
    )

    def ours(jobs: int) -> list[str]:
        # The file is named, not piped, so that --jobs can cut it into ranges.
        return [
            sys.executable, "-m", "smtplogscan", "report", "--format", "json",
            "--jobs", str(jobs), str(log_path),
        ]  # fmt: skip

    log_path = small
    one, rss1 = measure(small, ours(1), args.repeat)
    two, rss2 = measure(small, ours(2), args.repeat)
    scan_only = engine_only(small, 1, args.repeat)
    grep_took, _ = measure(small, ["grep", "-c", "TLS"], args.repeat)
    print(
        f"--jobs 1             {one:7.2f} s  {lines / one:12,.0f} lines/s  peak {rss1 / 1024:6.0f} MiB"
    )
    print(
        f"--jobs 2             {two:7.2f} s  {lines / two:12,.0f} lines/s  peak {rss2 / 1024:6.0f} MiB (largest process)"
    )
    print(f"--jobs 2 speed-up    {one / two:7.2f} x")
    print(
        f"scan alone, 1 core   {scan_only:7.2f} s  {lines / scan_only:12,.0f} lines/s"
        "  (no start-up, imports or report)"
    )
    print(
        f"grep -c TLS          {grep_took:7.2f} s  {lines / grep_took:12,.0f} lines/s"
    )
    print(f"ratio to grep        {one / grep_took:7.1f} x slower (--jobs 1)")

    pflogsumm = shutil.which("pflogsumm")
    if pflogsumm:
        pf_took, _ = measure(small, [pflogsumm], 1)
        print(
            f"pflogsumm            {pf_took:7.2f} s  {lines / pf_took:12,.0f} lines/s"
        )
        print(f"ratio to pflogsumm   {pf_took / one:7.1f} x faster (--jobs 1)")
    else:
        print(
            "pflogsumm            not installed (apt-get install pflogsumm to compare)"
        )

    log_path = large
    four, rss4 = measure(large, ours(1), 1)
    print(
        f"4x the log, --jobs 1 {four:7.2f} s  {large_lines / four:12,.0f} lines/s"
        f"  peak {rss4 / 1024:6.0f} MiB  (memory x{rss4 / rss1:.2f} for 4x the lines)"
    )
    four2, _ = measure(large, ours(2), 1)
    print(
        f"4x the log, --jobs 2 {four2:7.2f} s  {large_lines / four2:12,.0f} lines/s  (x{four / four2:.2f})"
    )
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
