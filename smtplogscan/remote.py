"""Inputs named by URL (``s3://``, ``gs://``, ``https://``, ...), read through fsspec.

A ``file://`` URL is a local path and needs nothing. Any other protocol needs
fsspec and the package that implements it (``s3fs`` for S3, ``gcsfs`` for Google
Cloud Storage, ``adlfs`` for Azure, ...); when one is missing, the input is
reported with the package to install and the other inputs are still read.
A large plain object is cut into byte ranges like a local file (see `parallel`),
read by ranged requests where the store allows them.
"""

from __future__ import annotations

import glob
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from smtplogscan.errors import InputError

if TYPE_CHECKING:
    from smtplogscan.sources import Input

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: str) -> bool:
    """Say whether `text` names an input by URL rather than by path."""
    return _URL.match(text) is not None


def local_path(url: str) -> str | None:
    """Return the path of a ``file://`` URL; None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        return None
    return unquote(parts.path)


def expand_url(url: str) -> tuple[list[Input], list[InputError]]:
    """Turn a URL (a file, a folder or a glob) into inputs."""
    from smtplogscan.sources import Input, rotation_order

    try:
        fs, path = _filesystem(url)
        if glob.has_magic(path):
            found = sorted(fs.glob(path))
            if not found:
                return [], [InputError(f"{url}: no file matches this pattern")]
        elif fs.isdir(path):
            found = sorted(fs.find(path))
        elif fs.exists(path):
            found = [path]
        else:
            return [], [InputError(f"{url}: no such file or folder")]
    except InputError as err:
        return [], [err]
    except OSError as err:  # fsspec raises OSError subclasses for remote faults
        return [], [InputError(f"{url}: cannot list: {err}")]
    if found == [path]:
        return [Input(url, None, url=url)], []
    # Oldest rotation first, as for a local folder; the paths are only named.
    ordered = rotation_order(Path(p) for p in found)
    urls = [fs.unstrip_protocol(p.as_posix()) for p in ordered]
    return [Input(u, None, url=u) for u in urls], []


def open_url(url: str) -> BinaryIO:
    """Open a URL for reading raw bytes; the caller decompresses."""
    fs, path = _filesystem(url)
    try:
        handle: BinaryIO = fs.open(path, "rb")
    except OSError as err:
        raise InputError(f"{url}: cannot open: {err}") from None
    return handle


def stat(url: str) -> tuple[int, str] | None:
    """Return the size of the object at `url` and a token that changes when it
    is rewritten; None for a folder, or a store that does not tell the size."""
    fs, path = _filesystem(url)
    try:
        info = fs.info(path)
        size = info.get("size")
        if info.get("type") != "file" or not isinstance(size, int):
            return None
        return size, str(fs.ukey(path))
    except (OSError, NotImplementedError, ValueError):
        return None


def modified(url: str) -> datetime:
    """When the object was last written to; now if the store does not say."""
    try:
        fs, path = _filesystem(url)
        when: datetime = fs.modified(path)
    except (InputError, OSError, NotImplementedError):
        return datetime.now(UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _filesystem(url: str) -> tuple[Any, str]:
    """Return fsspec's filesystem for `url` and the path within it."""
    protocol = url.split("://", 1)[0].lower()
    try:
        import fsspec
    except ImportError:
        raise InputError(
            f"{url}: reading {protocol}:// URLs needs the package fsspec"
            " (pip install 'smtplogscan[dask]' or pip install fsspec)"
        ) from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as err:
        package = _missing_package(protocol, err)
        raise InputError(
            f"{url}: reading {protocol}:// URLs needs the package {package}"
            f" (pip install {package})"
        ) from None
    except ValueError as err:  # fsspec's "Protocol not known"
        raise InputError(f"{url}: {err}") from None
    return fs, path


def _missing_package(protocol: str, err: ImportError) -> str:
    """Name the package whose import failed, as fsspec reported it."""
    # fsspec raises its own ImportError from the ModuleNotFoundError that
    # names the missing module (aiohttp for https://, s3fs for s3://).
    cause = err.__cause__
    name = getattr(cause, "name", None) or getattr(err, "name", None)
    if name:
        return str(name).split(".")[0]
    from fsspec.registry import known_implementations

    known = known_implementations.get(protocol, {})
    return str(known.get("class", protocol)).split(".")[0]
