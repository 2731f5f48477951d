#!/usr/bin/env python3
"""Measure smtplogscan against baselines run in the same session on the same log.

Generates realistic Postfix logs (busy MX: inbound and outbound sessions with
loglevel-1 TLS lines, rejections, postscreen chatter, about 1% TLS failures) of
1, 4 and 16 times --lines, the last about 2 GiB, a busy MX's day. For each it
prints lines per second and peak memory of ``smtplogscan report`` with one and
two processes, of the scan alone, of ``grep -c TLS`` (the floor) and of pflogsumm
when it is installed; then the targets for each log, and how memory grows with
the log. Last, the same for an Exim mainlog of --lines lines, against eximstats.
Before each log it measures how much two CPU-bound processes gain over one on
this machine right then, the ceiling of any ``--jobs 2`` figure. Machines here
are noisy: read the ratios rather than the absolute numbers. The runs that a
ratio compares are made in turns (one job, two jobs, one job, ...), so that the
machine slowing down or speeding up weighs on both sides alike.

    python scripts/benchmark.py                # 1M, 4M and 16M lines
    python scripts/benchmark.py --lines 200000 --sizes 1,4 --repeat 1
"""

from __future__ import annotations

import argparse
import compileall
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
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


def write_day(
    path: Path, lines: int, seed: int, block_of: Callable[..., list[str]]
) -> int:
    """Write a log of about `lines` lines over one day to `path`, a block of
    lines at a time from `block_of(rng, second, before)`, `before` being the
    number of lines written before it; return the exact count. A longer log is a
    busier day, not more days: memory that grows with the hours covered would
    otherwise pass for memory that grows with lines.
    """
    rng = random.Random(seed)
    written = 0
    with path.open("w") as out:
        while written < lines:
            block = block_of(rng, 86400 * written // lines, written)
            out.write("\n".join(block) + "\n")
            written += len(block)
    return written


def generate(path: Path, lines: int, seed: int = 7) -> int:
    """A busy MX's Postfix log of about `lines` lines (see `write_day`)."""
    return write_day(path, lines, seed, _postfix_block)


def _postfix_block(rng: random.Random, second: int, before: int) -> list[str]:
    """The lines of one connection or mail, all stamped `second`."""
    t = _stamp(second)
    pid = rng.randrange(1000, 30000)
    name, addr = _peer(rng)
    qid = f"{0x1000000 + before:X}"
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
    return block


def _iso(second: int) -> str:
    hour, rest = divmod(second % 86400, 3600)
    return f"2026-12-03 {hour:02d}:{rest // 60:02d}:{rest % 60:02d}"


def generate_exim(path: Path, lines: int, seed: int = 7) -> int:
    """An Exim mainlog of about `lines` lines (arrivals and deliveries over TLS,
    local mail, rejections, about 1% TLS failures; see `write_day`)."""
    return write_day(path, lines, seed, _exim_block)


_EXIM_CIPHER = "ECDHE_X25519__RSA_PSS_RSAE_SHA256__AES_256_GCM:256"


def _exim_block(rng: random.Random, second: int, before: int) -> list[str]:
    """The lines of one mail or connection, all stamped `second`."""
    t = _iso(second)
    name, addr = _peer(rng)
    mid = f"1x{rng.randrange(16**4):04x}-{before % 16**6:06X}-0a"
    port = rng.randrange(1024, 65535)
    cipher = _EXIM_CIPHER
    roll = rng.random()
    if roll < 0.50:  # an arrival over TLS, delivered to a mailbox
        block = [
            f"{t} {mid} <= news@{name} H={name} [{addr}]:{port} I=[192.0.2.1]:25 P=esmtps X=TLS1.3:{cipher} CV=no S={rng.randrange(900, 90000)} id={mid}@{name}",
            f"{t} {mid} => user{port % 300} <user{port % 300}@example.com> R=local_user T=mail_spool",
            f"{t} {mid} Completed",
        ]
    elif roll < 0.78:  # local mail sent out over TLS
        block = [
            f"{t} {mid} <= app@example.com U=app P=local S=2048",
            f'{t} {mid} => u@{name} R=dnslookup T=remote_smtp H={name} [{addr}]:25 X=TLS1.2:ECDHE_SECP256R1__RSA_SHA256__AES_256_GCM:256 CV=yes DN="CN={name}" C="250 2.0.0 Ok: queued"',
            f"{t} {mid} Completed",
        ]
    elif roll < 0.99:  # rejected before any TLS
        block = [
            f"{t} H=({name}) [{addr}]:{port} I=[192.0.2.1]:25 F=<spam@{name}> rejected RCPT <x@example.com>: Unrouteable address",
            f"{t} SMTP connection from ({name}) [{addr}]:{port} I=[192.0.2.1]:25 closed by QUIT",
        ]
    elif roll < 0.995:  # an inbound handshake failure
        block = [
            f"{t} TLS error on connection from ({name}) [{addr}]:{port} I=[192.0.2.1]:25 (gnutls_handshake): A packet with illegal or unsupported version was received.",
        ]
    else:  # an outbound failure, deferred
        block = [
            f"{t} {mid} <= app@example.com U=app P=local S=2048",
            f"{t} {mid} == u@{name} R=dnslookup T=remote_smtp defer (-37) H={name} [{addr}]:25: TLS session: (gnutls_handshake): The Diffie-Hellman prime sent by the server is not acceptable (not long enough).",
        ]
    return block


ENGINE = """
import sys, time
from smtplogscan import Options, registry, scan
grammars = registry.load()
start = time.perf_counter()
result = scan([sys.argv[1]], grammars, Options(jobs=int(sys.argv[2])))
print(time.perf_counter() - start, result.counts.lines)
"""

# A pure-Python loop: how much faster two of them finish than one, here and now,
# is the most --jobs 2 can gain on this machine (shared or throttled cores).
SPIN = "for i in range(30_000_000): pass"


def engine_only(log: Path, jobs: int) -> float:
    """Time of the scan alone: no interpreter start, no pandas, no report."""
    done = subprocess.run(
        [sys.executable, "-c", ENGINE, str(log), str(jobs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[0])


def run(log: Path, command: list[str]) -> tuple[float, int]:
    """Return the wall time of one run of `command` and its peak RSS in KiB."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(log), *command],
        capture_output=True,
        text=True,
        check=True,
    )
    status, took, rss = done.stdout.split()
    if status not in ("0", "1"):  # grep -c exits 1 when it counts nothing
        raise SystemExit(f"{command[0]} failed with status {status}")
    return float(took), int(rss)


def measure(log: Path, command: list[str], repeat: int) -> tuple[float, int]:
    """Return the best wall time of `repeat` runs and the peak RSS in KiB."""
    runs = [run(log, command) for _ in range(repeat)]
    return min(t for t, _ in runs), max(r for _, r in runs)


def report(log: Path, jobs: int, peaks: dict[int, int]) -> float:
    """Time one run of our report with `jobs` jobs; keep its peak RSS in `peaks`."""
    took, rss = run(log, ours(log, jobs))
    peaks[jobs] = max(peaks.get(jobs, 0), rss)
    return took


def in_turns(repeat: int, *timed: Callable[[], float]) -> list[float]:
    """Best time of each of `timed`, run in turns `repeat` times: a machine
    that slows down or speeds up during the run weighs on all of them alike,
    as it would not if each were run `repeat` times in a row."""
    best = [float("inf")] * len(timed)
    for _ in range(repeat):
        for i, once in enumerate(timed):
            best[i] = min(best[i], once())
    return best


def cores_ceiling(repeat: int) -> float:
    """How many times more CPU-bound work two processes do than one, right now."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", SPIN], check=True)
        one = time.perf_counter() - start
        start = time.perf_counter()
        pair = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(2)]
        for process in pair:
            process.wait()
        best = max(best, 2 * one / (time.perf_counter() - start))
    return best


def ours(log: Path, jobs: int) -> list[str]:
    # The file is named, not piped, so that --jobs can cut it into ranges.
    return [
        sys.executable, "-m", "smtplogscan", "report", "--format", "json",
        "--jobs", str(jobs), str(log),
    ]  # fmt: skip


def row(label: str, took: float, lines: int, note: str = "") -> str:
    return f"{label:<22}{took:7.2f} s {lines / took:12,.0f} lines/s  {note}".rstrip()


def ratio_row(label: str, ratio: float, note: str = "") -> str:
    """A ratio, its note in the same column as a `row`'s."""
    return f"{label:<22}{ratio:7.2f} x {'':<20}  {note}".rstrip()


def exim(log: Path, lines: int, repeat: int) -> None:
    """The same measures on an Exim mainlog, against eximstats when installed
    (Debian's exim4-base), which is to Exim what pflogsumm is to Postfix."""
    lines = generate_exim(log, lines)
    size = log.stat().st_size
    print(f"\nExim mainlog: {lines:,} lines, {size / 2**20:,.0f} MiB")
    peaks: dict[int, int] = {}
    one, two = in_turns(
        repeat, partial(report, log, 1, peaks), partial(report, log, 2, peaks)
    )
    rss1 = peaks[1]
    grep, _ = measure(log, ["grep", "-c", "TLS"], repeat)
    print(row("--jobs 1", one, lines, f"peak {rss1 / 1024:.0f} MiB"))
    print(row("--jobs 2", two, lines, f"x{one / two:.2f}"))
    print(row("grep -c TLS", grep, lines, f"we are {one / grep:.0f}x slower"))
    eximstats = shutil.which("eximstats")
    if eximstats:
        took = measure(log, [eximstats], 1)[0]
        print(row("eximstats", took, lines, f"we are {took / one:.1f}x faster"))
    else:
        print("eximstats: not installed (apt-get install exim4-base to compare)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument(
        "--sizes",
        default="1,4,16",
        help="log sizes as multiples of --lines (16: about 2 GiB, a busy MX's day)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--keep", type=Path, help="keep the generated logs in this folder"
    )
    args = parser.parse_args()
    sizes = sorted({int(n) for n in args.sizes.split(",")})

    folder = args.keep or Path(tempfile.mkdtemp(prefix="smtplogscan-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    # The same logs as earlier runs when kept: mail.log, mail-x4.log, ...
    logs = {n: folder / ("mail.log" if n == 1 else f"mail-x{n}.log") for n in sizes}
    counts = {n: generate(logs[n], args.lines * n, seed=6 + n) for n in sizes}
    # pip compiles a package when it installs it; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would compile it again on every run instead.
    import smtplogscan

    compileall.compile_dir(Path(smtplogscan.__file__).parent, quiet=1)
    pflogsumm = shutil.which("pflogsumm")
    ceiling = cores_ceiling(args.repeat)
    print(f"this machine now runs two CPU-bound processes at {ceiling:.2f}x one")

    figures: dict[int, dict[str, float]] = {}
    for n, log in logs.items():
        lines, size = counts[n], log.stat().st_size
        print(
            f"\nlog x{n}: {lines:,} lines, {size / 2**20:,.0f} MiB"
            f" ({size // lines} bytes a line)"
        )
        ceiling = cores_ceiling(args.repeat)  # the machine's, right before
        peaks: dict[int, int] = {}
        one, two = in_turns(
            args.repeat, partial(report, log, 1, peaks), partial(report, log, 2, peaks)
        )
        rss1, rss2 = peaks[1], peaks[2]
        scan1, scan2 = in_turns(
            args.repeat, partial(engine_only, log, 1), partial(engine_only, log, 2)
        )
        grep, _ = measure(log, ["grep", "-c", "TLS"], args.repeat)
        pf = measure(log, [pflogsumm], 1)[0] if pflogsumm else float("nan")
        figures[n] = {"one": one, "two": two, "rss1": rss1, "pf": pf}
        print(row("--jobs 1", one, lines, f"peak {rss1 / 1024:.0f} MiB"))
        print(row("--jobs 2", two, lines, f"peak {rss2 / 1024:.0f} MiB, largest"))
        print(
            ratio_row("--jobs 2 speed-up", one / two, f"the machine's: {ceiling:.2f}x")
        )
        print(row("scan alone, 1 core", scan1, lines, "no start-up, imports, report"))
        print(row("scan alone, 2 cores", scan2, lines, f"x{scan1 / scan2:.2f}"))
        print(row("grep -c TLS", grep, lines, f"we are {one / grep:.0f}x slower"))
        if pflogsumm:
            print(row("pflogsumm", pf, lines, f"we are {pf / one:.1f}x faster"))
        else:
            print("pflogsumm: not installed (apt-get install pflogsumm to compare)")

    print("\ntargets, for each log" + "".join(f"{f'x{n}':>12}" for n in sizes))
    checks = {
        "--jobs 2 >= 1.7x --jobs 1": (1.7, lambda n, f: f["one"] / f["two"]),
        "one core >= 1M lines/s": (1e6, lambda n, f: counts[n] / f["one"]),
        ">= 10x pflogsumm, --jobs 1": (10, lambda n, f: f["pf"] / f["one"]),
        ">= 10x pflogsumm, --jobs 2": (10, lambda n, f: f["pf"] / f["two"]),
    }
    for label, (goal, value) in checks.items():
        cells = []
        for n in sizes:
            got = value(n, figures[n])
            shown = f"{got / 1e6:.2f}M" if goal >= 1e6 else f"{got:.2f}x"
            cells.append(f"{shown}{'' if got >= goal else '!':1}")
        print(f"  {label:<28}" + "".join(f"{cell:>12}" for cell in cells))
    print("  (! marks a figure below its target)")
    first, last = sizes[0], sizes[-1]
    growth = figures[last]["rss1"] / figures[first]["rss1"]
    print(f"  memory: x{growth:.2f} for {last // first}x the lines")
    exim(folder / "exim-mainlog", args.lines, args.repeat)
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
