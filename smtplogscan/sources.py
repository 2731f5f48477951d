"""Inputs: paths, folders, globs and stdin, opened as decompressed byte streams.

Compression is recognised by the first bytes of the content, never by the file
name, so ``zcat``-less pipes and mis-named rotations both work.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import lzma
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from smtplogscan.errors import InputError

STDIN = "-"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
# mail.log.3.gz, mail.log-20261201.xz: a rotation number or date after the name.
_ROTATED = re.compile(
    r"^(?P<base>.+?)(?:\.(?P<n>\d+)|-(?P<date>\d{8}))(?:\.(?:gz|bz2|xz))?$"
)


@dataclass(frozen=True, slots=True)
class Input:
    """One input to read: a file path, or stdin."""

    name: str
    path: Path | None
    #: Found by walking a folder rather than named: one that is no mail log is
    #: skipped, not an error.
    found: bool = False
    #: Set for an input named by URL and read through fsspec (see `remote`).
    url: str = ""

    @property
    def is_stdin(self) -> bool:
        return self.path is None and not self.url

    def mtime(self) -> datetime:
        """When the input was last written to; now for stdin."""
        if self.url:
            from smtplogscan import remote

            return remote.modified(self.url)
        if self.path is None:
            return datetime.now(UTC)
        return datetime.fromtimestamp(self.path.stat().st_mtime, UTC)


def expand(paths: Iterable[str]) -> tuple[list[Input], list[InputError]]:
    """Turn command-line paths into inputs; name those that cannot be read."""
    inputs: list[Input] = []
    errors: list[InputError] = []
    from smtplogscan import remote

    for given in paths:
        if given == STDIN:
            inputs.append(Input("<stdin>", None))
            continue
        if remote.is_url(given) and remote.local_path(given) is None:
            found, failed = remote.expand_url(given)
            inputs.extend(found)
            errors.extend(failed)
            continue
        path = Path(remote.local_path(given) or given)
        if path.is_dir():
            logs = rotation_order(_files_in(path))
            if not logs:
                errors.append(InputError(f"{given}: the folder holds no file"))
            inputs.extend(Input(str(p), p, True) for p in logs)
        elif path.exists():
            inputs.append(Input(given, path))
        elif glob.has_magic(given):
            matches = [Path(m) for m in glob.glob(given) if Path(m).is_file()]
            if not matches:
                errors.append(InputError(f"{given}: no file matches this pattern"))
            inputs.extend(Input(str(p), p) for p in rotation_order(matches))
        else:
            errors.append(InputError(f"{given}: no such file or folder"))
    return inputs, errors


def _files_in(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


def rotation_order(files: Iterable[Path]) -> list[Path]:
    """Order rotated logs oldest first: ``mail.log.2.gz``, ``mail.log.1``, then
    ``mail.log``."""

    def age(path: Path) -> tuple[str, str, int, int]:
        match = _ROTATED.match(path.name)
        if match is None:
            return (str(path.parent), path.name, 0, 0)
        if match["n"] is not None:
            return (str(path.parent), match["base"], 2, -int(match["n"]))
        return (str(path.parent), match["base"], 1, int(match["date"]))

    # Within one base name: numbered rotations (highest first), then dated ones
    # (oldest first), then the live file.
    return sorted(files, key=lambda p: (age(p)[0], age(p)[1], -age(p)[2], age(p)[3]))


def open_input(source: Input) -> BinaryIO:
    """Open `source` for reading, decompressing gzip, bzip2 or xz by content."""
    if source.url:
        return _open_url(source)
    try:
        if source.path is None:
            stdin = cast(io.BufferedReader, sys.stdin.buffer)
            raw: BinaryIO = io.BufferedReader(stdin.raw, 1 << 20)
        else:
            raw = io.BufferedReader(io.FileIO(source.path, "r"), 1 << 20)
    except IsADirectoryError:
        raise InputError(f"{source.name}: is a folder, not a file") from None
    except OSError as err:
        raise InputError(f"{source.name}: cannot open: {err.strerror or err}") from None

    try:
        head = raw.peek(6)[:6]  # type: ignore[attr-defined]
    except OSError as err:
        raw.close()
        raise InputError(f"{source.name}: cannot read: {err.strerror or err}") from None
    return decompress(raw, head)


def open_raw(source: Input) -> BinaryIO:
    """Open a file or URL for reading its bytes as stored, from any offset."""
    if source.url:
        from smtplogscan import remote

        return remote.open_url(source.url)
    assert source.path is not None, "stdin has no offsets"
    try:
        return source.path.open("rb")
    except OSError as err:
        raise InputError(f"{source.name}: cannot open: {err.strerror or err}") from None


def _open_url(source: Input) -> BinaryIO:
    raw = open_raw(source)
    try:
        head = raw.read(6)
        raw.seek(0)  # fsspec's files seek, by ranged reads when remote
    except OSError as err:
        raw.close()
        raise InputError(f"{source.name}: cannot read: {err}") from None
    return decompress(raw, head)


def is_compressed(head: bytes) -> bool:
    """Say whether the first bytes `head` of an input are those of an archive."""
    return head.startswith(tuple(magic for magic, _ in _MAGIC))


def decompress(raw: BinaryIO, head: bytes) -> BinaryIO:
    """Wrap `raw` in the decompressor its first bytes `head` call for."""
    for magic, method in _MAGIC:
        if head.startswith(magic):
            if method == "gzip":
                return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
            new = bz2.BZ2Decompressor if method == "bzip2" else lzma.LZMADecompressor
            return cast(BinaryIO, io.BufferedReader(_Streams(raw, new), 1 << 20))
    return raw


class _Streams(io.RawIOBase):
    """Decompress concatenated bzip2 or xz streams (pbzip2 and pixz write many).

    Python's own readers take a damaged stream after the first for trailing
    junk and stop there without a word, losing the rest of the log; here damage
    anywhere is an error, raised after what came before it was handed over.
    """

    def __init__(self, raw: BinaryIO, new: Callable[[], Any]) -> None:
        self._raw, self._new = raw, new
        self._decoder = new()
        self._started = False  # the current stream has been fed bytes
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._pending:
            self._pending = memoryview(self._next())
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _next(self) -> bytes:
        """The next piece of decompressed data; b"" at the end of the input."""
        while True:
            data = b""
            if self._decoder.eof:
                data = self._decoder.unused_data
                self._decoder, self._started = self._new(), False
            data = data or self._raw.read(1 << 16)
            if not data:
                if self._started:
                    raise EOFError("the compressed data ends in the middle of a stream")
                return b""
            self._started = True
            out: bytes = self._decoder.decompress(data)
            if out:
                return out

    def close(self) -> None:
        self._raw.close()
        super().close()
