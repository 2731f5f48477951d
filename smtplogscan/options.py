"""The command line's options, declared once for the commands that share them.

Each alias is a typer parameter type: a command lists it as ``name: Alias = default``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class ReportFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    CSV = "csv"
    HTML = "html"


class EventFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


Paths = Annotated[
    list[str] | None,
    typer.Argument(
        help="Log files, folders of rotated logs, globs, or - for stdin. "
        "With none, stdin is read when it is a pipe.",
        show_default=False,
    ),
]
GrammarOpt = Annotated[
    str | None,
    typer.Option("--grammar", "-g", help="Read every input with this grammar."),
]
GrammarPath = Annotated[
    list[Path] | None,
    typer.Option(
        "--grammar-path", help="A folder of grammar plugins (*.py); repeatable."
    ),
]
YearOpt = Annotated[
    int | None, typer.Option("--year", help="Year of syslog stamps that carry none.")
]
ZoneOpt = Annotated[
    str | None,
    typer.Option(
        "--timezone", help="IANA zone of stamps without an offset (default: local)."
    ),
]
UtcOpt = Annotated[bool, typer.Option("--utc", help="Print times in UTC.")]
_WHEN = "an ISO date or time, a span back from now (30m, 24h, 7d), today or yesterday"
SinceOpt = Annotated[
    str | None, typer.Option("--since", help=f"Only records from then on: {_WHEN}.")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help=f"Only records before then: {_WHEN}.")
]


class Bucket(StrEnum):
    HOUR = "hour"
    DAY = "day"


BucketOpt = Annotated[
    Bucket | None,
    typer.Option("--bucket", help="Timeline buckets (default: hours up to 3 days)."),
]
CompareToOpt = Annotated[
    str | None,
    typer.Option(
        "--compare-to",
        help="Compare with this period of the same inputs: yesterday, a date, "
        "a span before --since (7d), or START..END.",
    ),
]
CompareInputsOpt = Annotated[
    list[str] | None,
    typer.Option("--compare-inputs", help="Compare with these logs; repeatable."),
]
VerboseOpt = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="More diagnostics.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Worker processes (default: one per core).",
        show_default=False,
    ),
]


class Engine(StrEnum):
    LOCAL = "local"
    DASK = "dask"


EngineOpt = Annotated[
    Engine,
    typer.Option("--engine", help="Scan here (local) or as tasks on a Dask cluster."),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="With --engine dask: the scheduler's address (default: a local cluster).",
    ),
]
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Add what the logs hold to this Parquet history (once per line), and "
        "take --compare-to periods from it when it holds them.",
    ),
]
MailToOpt = Annotated[
    list[str] | None,
    typer.Option("--mail-to", help="Mail the report to ADDR[,ADDR]; repeatable."),
]
MailFromOpt = Annotated[
    str | None,
    typer.Option("--mail-from", help="Sender (default: smtplogscan@this host)."),
]
SmtpHostOpt = Annotated[
    str | None,
    typer.Option("--smtp-host", help="Send through this SMTP server (else: sendmail)."),
]
SmtpPortOpt = Annotated[
    int, typer.Option("--smtp-port", min=1, max=65535, help="SMTP port.")
]
StarttlsOpt = Annotated[
    bool,
    typer.Option(
        "--starttls/--no-starttls", help="Require STARTTLS (off for a local relay)."
    ),
]
SmtpUserOpt = Annotated[
    str | None, typer.Option("--smtp-user", help="Log in as this user.")
]
PasswordFileOpt = Annotated[
    Path | None,
    typer.Option("--smtp-password-file", help="Read the SMTP password from here."),
]
PasswordEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--smtp-password-env", help="Read the SMTP password from this variable."
    ),
]
SendmailOpt = Annotated[
    bool,
    typer.Option("--sendmail", help="Pipe the mail to `sendmail -t` (the default)."),
]
SendmailPathOpt = Annotated[
    str | None,
    typer.Option("--sendmail-path", help="The sendmail program [/usr/sbin/sendmail]."),
]
QuietIfEmptyOpt = Annotated[
    bool,
    typer.Option(
        "--quiet-if-empty", help="Print and send nothing when no failure was found."
    ),
]
FailOnOpt = Annotated[
    int | None,
    typer.Option(
        "--fail-on",
        min=1,
        help="Exit with status 3 when N or more failures were found.",
    ),
]
