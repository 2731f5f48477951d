"""A one-line progress meter on stderr for long scans, shown only on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

#: Nothing is shown for scans shorter than this: a flash of text is noise.
DELAY = 1.0
#: The line is redrawn at most this often.
INTERVAL = 0.25
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(count: float) -> str:
    """Return a byte count as a short human figure: ``12.3 MiB``."""
    for unit in _UNITS[:-1]:
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} {_UNITS[-1]}"


class Meter:
    """Count the bytes and lines a scan reads and redraw one line of stderr.

    Pass an instance as the `progress` callback of `scan`; call `close` when the
    scan ends, so that the line is wiped before the report is printed.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_tty(self.stream) if enabled is None else enabled
        self.clock = clock
        self.bytes = 0
        self.lines = 0
        self._start = clock()
        self._drawn = 0.0  # when the line was last drawn; 0 while nothing is shown

    def __call__(self, nbytes: int, nlines: int = 0) -> None:
        """Count one block that the scan has read."""
        self.bytes += nbytes
        self.lines += nlines
        if not self.enabled:
            return
        now = self.clock()
        if now - self._start < DELAY or now - self._drawn < INTERVAL:
            return
        self._draw(now)

    def line(self, now: float | None = None) -> str:
        """Return the text of the meter: bytes, lines and the rate so far."""
        elapsed = max((self.clock() if now is None else now) - self._start, 1e-9)
        rate = self.bytes / elapsed
        return (
            f"smtplogscan: read {size(self.bytes)}, {self.lines:,} lines,"
            f" {size(rate)}/s, {self.lines / elapsed:,.0f} lines/s"
        )

    def _draw(self, now: float) -> None:
        # \r returns to the line start and ESC[K clears what a longer line left.
        self.stream.write("\r" + self.line(now) + "\x1b[K")
        self.stream.flush()
        self._drawn = now

    def close(self) -> None:
        """Wipe the meter's line, if one was drawn."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = 0.0


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False
