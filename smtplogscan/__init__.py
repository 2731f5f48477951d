"""smtplogscan: find failed TLS handshakes in mail-server logs, and say why.

The public surface: the grammar contract (`Grammar`, `Stream`), the records a
grammar emits (`Event`, `Success`, `Delivery`, `Peer`) with their vocabularies
(`Kind`, `Direction`, `Culprit`, `Outcome`), the cause catalogue (`classify`),
the time helpers grammars share (`SyslogClock`, `parse_iso`), and `scan`.
"""

from smtplogscan.causes import Cause, classify
from smtplogscan.errors import ScanError
from smtplogscan.grammar import Grammar, Stream
from smtplogscan.records import (
    Culprit,
    Delivery,
    Direction,
    Event,
    Kind,
    Outcome,
    Peer,
    Record,
    Success,
)
from smtplogscan.results import ScanResult
from smtplogscan.scan import Options, scan
from smtplogscan.timestamps import SyslogClock, parse_iso

__version__ = "0.1.0"

__all__ = [
    "Cause",
    "Culprit",
    "Delivery",
    "Direction",
    "Event",
    "Grammar",
    "Kind",
    "Options",
    "Outcome",
    "Peer",
    "Record",
    "ScanError",
    "ScanResult",
    "Stream",
    "Success",
    "SyslogClock",
    "classify",
    "parse_iso",
    "scan",
]
