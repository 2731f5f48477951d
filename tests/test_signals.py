"""Pipes and signals: a reader that leaves, and Ctrl-C, end a run quietly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import SAMPLES

SYSLOG = SAMPLES / "postfix" / "openssl11-syslog.log"
INTERRUPTED = 130


def piped_into_head(*args: str, stdin: bytes) -> tuple[int, bytes, bytes]:
    """Run the CLI into `head -n 1`; return its status, head's output, its stderr."""
    scan = subprocess.Popen(
        [sys.executable, "-m", "smtplogscan", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.Popen(
        ["head", "-n", "1"], stdin=scan.stdout, stdout=subprocess.PIPE
    )
    assert scan.stdout is not None and scan.stdin is not None
    scan.stdout.close()  # head alone holds the pipe's read end now
    feeder = threading.Thread(target=_feed, args=(scan.stdin, stdin), daemon=True)
    feeder.start()
    out, _ = head.communicate(timeout=120)
    assert scan.stderr is not None
    err = scan.stderr.read()
    return scan.wait(timeout=120), out, err


def _feed(pipe: object, data: bytes) -> None:
    try:
        pipe.write(data)  # type: ignore[attr-defined]
        pipe.close()  # type: ignore[attr-defined]
    except BrokenPipeError:
        pass


@pytest.mark.parametrize(
    "args",
    [
        ("events", "-"),
        ("events", "--format", "csv", "-"),
        ("report", "-"),
        ("report", "--format", "csv", "-"),
        ("report", "--format", "json", "-"),
        ("report", "--format", "html", "-"),
    ],
    ids=" ".join,
)
def test_a_reader_that_leaves_ends_the_run_quietly(args: tuple[str, ...]) -> None:
    status, out, err = piped_into_head(*args, stdin=SYSLOG.read_bytes() * 2000)
    assert len(out.splitlines()) == 1
    assert status == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err


def _slow_writer(fifo: Path, stop: threading.Event) -> None:
    lines = SYSLOG.read_bytes().splitlines(keepends=True)
    try:
        with fifo.open("wb") as handle:
            while not stop.is_set():
                for line in lines:
                    handle.write(line)
                handle.flush()
                time.sleep(0.01)
    except BrokenPipeError:
        pass


def interruptible(*args: str) -> subprocess.Popen[bytes]:
    """Start the CLI in its own process group, as a shell starts a job; with
    faulthandler on, so that a run that ignores Ctrl-C can be made to say where
    it was.

    A test run started in the background (``pytest &`` from a script, as CI
    may be) inherits SIGINT ignored, and so would the CLI, rightly: a
    background job is not to be stopped by Ctrl-C. A Python handler here is
    reset to the default in the child when it starts, as in a terminal's
    foreground job.
    """
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-X", "faulthandler", "-m", "smtplogscan", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, before)


def assert_interrupted(proc: subprocess.Popen[bytes]) -> None:
    try:
        _, err = proc.communicate(timeout=10)  # Ctrl-C is obeyed at once
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        _, err = proc.communicate(timeout=10)
        where = err.decode("utf-8", "replace")
        pytest.fail(f"still running 10 s after Ctrl-C:\n{where}")
    text = err.decode("utf-8", "replace")
    assert proc.returncode == INTERRUPTED, text
    assert "Traceback" not in text, text
    assert text.strip().splitlines() == ["smtplogscan: interrupted"], text


def test_ctrl_c_during_a_scan_of_a_slow_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "mail.fifo"
    os.mkfifo(fifo)
    stop = threading.Event()
    writer = threading.Thread(target=_slow_writer, args=(fifo, stop), daemon=True)
    writer.start()
    proc = interruptible("report", str(fifo))
    try:
        time.sleep(2.0)  # imports done, the scan reading
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the group
        assert_interrupted(proc)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_during_a_parallel_scan(tmp_path: Path) -> None:
    body = SYSLOG.read_bytes() * 20_000  # ~100 MB each: long enough to interrupt
    paths = []
    for n in range(2):
        path = tmp_path / f"mail.log.{n + 1}"
        path.write_bytes(body)
        paths.append(str(path))
    proc = interruptible("report", "-j", "2", *paths)
    try:
        time.sleep(2.5)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)  # the workers get it too
        assert_interrupted(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
