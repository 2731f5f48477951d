"""Broken inputs, as a user meets them on the command line.

Each case gets one line on stderr that names the file and says what is wrong,
keeps and reports what was read before the fault, exits with status 1 when
input was lost, and never shows a traceback.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import SAMPLES, run_cli

SYSLOG = SAMPLES / "postfix" / "openssl11-syslog.log"
PER_COPY = 7  # failures in one copy of SYSLOG
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


def events_of(done: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in done.stdout.splitlines()]


def one_error_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The stderr of a run that lost input: one line, naming what it says."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- compressed files -----------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(COMPRESSORS))
def test_truncated_archive_keeps_the_streams_before_the_cut(
    tmp_path: Path, method: str
) -> None:
    # Two streams, cut inside the second: the first decompresses whole
    # whatever the method's block size.
    compress = COMPRESSORS[method]
    second = compress(SYSLOG.read_bytes() * 50)
    body = compress(SYSLOG.read_bytes() * 3) + second[: len(second) // 2]
    path = tmp_path / f"mail.log.2.{method}"
    path.write_bytes(body)
    done = run_cli("events", str(path))
    assert done.returncode == 1
    one_error_line(done, path.name, "stopped reading")
    assert len(events_of(done)) >= 3 * PER_COPY


@pytest.mark.parametrize(
    "method",
    ["gzip", "bzip2", "xz"],
)
def test_corrupt_archive_is_named_and_what_came_before_kept(
    tmp_path: Path, method: str
) -> None:
    compress = COMPRESSORS[method]
    damaged = bytearray(compress(SYSLOG.read_bytes() * 50))
    middle = len(damaged) // 2
    for at in range(middle, middle + 32):
        damaged[at] ^= 0x5A
    path = tmp_path / f"mail.log.3.{method}"
    path.write_bytes(compress(SYSLOG.read_bytes() * 3) + bytes(damaged))
    done = run_cli("events", str(path))
    assert done.returncode == 1
    one_error_line(done, path.name, "stopped reading")
    assert len(events_of(done)) >= 3 * PER_COPY


def test_a_damaged_archive_does_not_stop_the_other_inputs(tmp_path: Path) -> None:
    bad = tmp_path / "mail.log.1.gz"
    bad.write_bytes(gzip.compress(SYSLOG.read_bytes())[:40])
    done = run_cli("report", "--format", "json", str(bad), str(SYSLOG))
    assert done.returncode == 1
    one_error_line(done, bad.name)
    assert json.loads(done.stdout)["totals"]["failures"] >= PER_COPY


# -- empty, folders, FIFOs, binaries ----------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"", gzip.compress(b""), bz2.compress(b""), lzma.compress(b"")]
)
def test_empty_file_is_named(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "mail.log"
    path.write_bytes(body)
    done = run_cli("report", str(path))
    assert done.returncode == 1
    one_error_line(done, "mail.log", "empty")


def test_a_folder_named_explicitly_is_read_as_a_folder_of_logs(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    shutil.copy(SYSLOG, folder / "mail.log")
    done = run_cli("events", str(folder))
    assert done.returncode == 0, done.stderr
    assert len(events_of(done)) == PER_COPY


def test_an_empty_folder_named_explicitly_is_said(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    done = run_cli("report", str(folder))
    assert done.returncode == 1
    one_error_line(done, "logs")


def test_a_fifo_is_read_to_its_end(tmp_path: Path) -> None:
    fifo = tmp_path / "mail.fifo"
    os.mkfifo(fifo)
    body = SYSLOG.read_bytes()

    def writer() -> None:
        with fifo.open("wb") as handle:
            for line in body.splitlines(keepends=True):
                handle.write(line)
                handle.flush()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    done = run_cli("events", str(fifo))
    thread.join(timeout=10)
    assert done.returncode == 0, done.stderr
    assert len(events_of(done)) == PER_COPY


def test_a_binary_passed_by_mistake_is_named(tmp_path: Path) -> None:
    binary = tmp_path / "ls"
    shutil.copy("/bin/ls", binary)
    done = run_cli("report", str(binary))
    assert done.returncode == 1
    one_error_line(done, str(binary), "no grammar recognises")


def test_a_binary_read_with_a_grammar_forced_is_survived(tmp_path: Path) -> None:
    binary = tmp_path / "ls"
    shutil.copy("/bin/ls", binary)
    done = run_cli("report", "--format", "json", "--grammar", "postfix", str(binary))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["totals"]["lines"] > 0


# -- files that cannot be read --------------------------------------------------------


@pytest.fixture
def unreadable() -> Iterator[tuple[Path, dict[str, object]]]:
    """A file its reader may not read, and how to run the CLI as that reader.

    Root reads every file whatever its mode, so under root the CLI runs as
    nobody (uid 65534) on a file root owns with mode 000.
    """
    folder = Path(tempfile.mkdtemp(prefix="smtplogscan-perm-"))
    folder.chmod(0o755)
    path = folder / "mail.log"
    shutil.copy(SYSLOG, path)
    path.chmod(0o000)
    shutil.copy(SYSLOG, folder / "readable.log")
    (folder / "readable.log").chmod(0o644)
    as_user: dict[str, object] = {}
    if os.geteuid() == 0:
        as_user = {"user": 65534, "group": 65534, "extra_groups": []}
        if not _runs_as(as_user):
            # The interpreter itself is out of nobody's reach (a venv under
            # /root): refuse the open in the CLI's process instead.
            as_user = {"env": dict(os.environ, **{_REFUSE: str(path)})}
    try:
        yield path, as_user
    finally:
        shutil.rmtree(folder)


_REFUSE = "SMTPLOGSCAN_TEST_REFUSE"
#: Runs the CLI with io.FileIO refusing one path as the kernel refuses nobody.
_REFUSING = (
    "import errno, io, os, sys\n"
    "refused, real = os.environ['" + _REFUSE + "'], io.FileIO\n"
    "class FileIO(real):\n"
    "    def __init__(self, name, *args, **kwargs):\n"
    "        if str(name) == refused:\n"
    "            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)\n"
    "        super().__init__(name, *args, **kwargs)\n"
    "io.FileIO = FileIO\n"
    "from smtplogscan.cli import main\n"
    "sys.argv[0] = 'smtplogscan'\n"
    "main()\n"
)


def _runs_as(as_user: dict[str, object]) -> bool:
    try:
        subprocess.run([sys.executable, "-c", "0"], check=True, cwd="/", **as_user)  # type: ignore[call-overload]
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def test_an_unreadable_file_is_named_and_the_rest_read(
    unreadable: tuple[Path, dict[str, object]],
) -> None:
    path, as_user = unreadable
    readable = path.parent / "readable.log"
    args = ("events", "-j", "1", str(path), str(readable))
    if "env" in as_user:
        done = subprocess.run(
            [sys.executable, "-c", _REFUSING, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=as_user["env"],  # type: ignore[arg-type]
        )
    else:
        done = run_cli(*args, cwd="/", **as_user)
    assert done.returncode == 1
    one_error_line(done, str(path), "cannot open", "ermission denied")
    assert len(events_of(done)) == PER_COPY


# -- files that change while they are read ----------------------------------------------


def big_log(path: Path, copies: int) -> int:
    """Write `copies` copies of the sample; return the failures they hold."""
    body = SYSLOG.read_bytes()
    with path.open("wb") as handle:
        for _ in range(copies):
            handle.write(body)
    return copies * PER_COPY


def wait_until_open(pid: int, path: Path, timeout: float = 20.0) -> bool:
    """Wait until process `pid` holds `path` open (Linux /proc)."""
    target = str(path.resolve())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return True
                except OSError:
                    continue
        except OSError:
            return False
        time.sleep(0.005)
    return False


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "smtplogscan", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_a_file_appended_to_while_read_is_read_to_where_it_ended(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mail.log"
    expected = big_log(path, 4000)
    proc = start("report", "--format", "json", "-j", "1", str(path))
    assert wait_until_open(proc.pid, path)
    with path.open("ab") as handle:
        while proc.poll() is None:
            # Written in halves, so that the reader may stop inside a line.
            line = SYSLOG.read_bytes().splitlines(keepends=True)[5]
            handle.write(line[:40])
            handle.flush()
            handle.write(line[40:])
            handle.flush()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
    assert json.loads(out)["totals"]["failures"] >= expected


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_a_file_rotated_while_read_is_read_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "mail.log"
    expected = big_log(path, 4000)
    proc = start("report", "--format", "json", "-j", "1", str(path))
    assert wait_until_open(proc.pid, path)
    path.rename(tmp_path / "mail.log.1")  # what logrotate does
    path.write_bytes(b"")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
    assert json.loads(out)["totals"]["failures"] == expected
