"""The command line: the only place that prints, exits and sets up logging.

Exit statuses: 0 done; 1 some input could not be read (the report is still
printed); 2 usage error; 3 --fail-on reached; 4 the report could not be mailed;
130 interrupted.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from smtplogscan import registry as registry_mod
from smtplogscan import window as window_mod
from smtplogscan.errors import MailError, ScanError, UsageError
from smtplogscan.frame import sort_events
from smtplogscan.options import (
    BucketOpt,
    CompareInputsOpt,
    CompareToOpt,
    DebugOpt,
    Engine,
    EngineOpt,
    EventFormat,
    FailOnOpt,
    GrammarOpt,
    GrammarPath,
    JobsOpt,
    MailFromOpt,
    MailToOpt,
    PasswordEnvOpt,
    PasswordFileOpt,
    Paths,
    QuietIfEmptyOpt,
    QuietOpt,
    ReportFormat,
    SchedulerOpt,
    SendmailOpt,
    SendmailPathOpt,
    SinceOpt,
    SmtpHostOpt,
    SmtpPortOpt,
    SmtpUserOpt,
    StarttlsOpt,
    StoreOpt,
    UntilOpt,
    UtcOpt,
    VerboseOpt,
    YearOpt,
    ZoneOpt,
)
from smtplogscan.progress import Meter
from smtplogscan.report import clean
from smtplogscan.results import ScanResult
from smtplogscan.scan import Options, scan
from smtplogscan.window import Window

EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_FAILURES = 3
EXIT_MAIL = 4
EXIT_INTERRUPTED = 130

if TYPE_CHECKING:
    from smtplogscan.analysis import Analysis
    from smtplogscan.mail import Transport

log = logging.getLogger("smtplogscan")

_debug = False
_quiet = False

app = typer.Typer(
    name="smtplogscan",
    help="Find failed TLS handshakes in mail logs, and say why and who must act.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _fail(message: str, status: int) -> NoReturn:
    typer.echo(f"smtplogscan: {message}", err=True)
    raise typer.Exit(status)


def _setup_logging(verbose: int, quiet: bool, debug: bool) -> None:
    global _debug, _quiet
    _debug = debug
    _quiet = quiet
    level = logging.ERROR if quiet else logging.WARNING
    if verbose or debug:
        level = logging.DEBUG if verbose > 1 or debug else logging.INFO
    logging.basicConfig(
        level=level, format="smtplogscan: %(message)s", stream=sys.stderr
    )


def _zone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None


def _inputs(paths: list[str] | None) -> list[str]:
    if paths:
        return paths
    if sys.stdin is not None and not sys.stdin.isatty():
        return ["-"]
    raise UsageError("no input: name log files, or pipe a log into smtplogscan")


def _limits(window: Window | None, baseline: Window | None) -> dict[str, Any]:
    """Return the window options of a scan."""
    limits: dict[str, Any] = {}
    if window is not None:
        limits.update(since=window.since, until=window.until)
    if baseline is not None:
        limits["baseline"] = (baseline.since, baseline.until)
    return limits


def _windows(
    since: str | None, until: str | None, compare_to: str | None, timezone: str | None
) -> tuple[Window, Window | None]:
    """Return the report's window and the period it is compared with."""
    from datetime import UTC, datetime

    from smtplogscan.timestamps import local_zone

    zone = _zone(timezone) or local_zone()
    now = datetime.now(UTC)
    main = window_mod.parse_window(since, until, zone, now)
    if compare_to is None:
        return main, None
    period = window_mod.parse_period(compare_to, zone, now, main.since)
    if not main.bounded and period.until is not None:
        # Compared with a period and given no window: the window is what follows it.
        main = window_mod.Window(period.until, None, f"since {compare_to}")
    return main, period


@dataclass(frozen=True)
class _Reading:
    """How `report` and `events` read their inputs: the options they share."""

    grammar: str | None
    grammar_path: list[Path] | None
    year: int | None
    timezone: str | None
    jobs: int | None
    engine: Engine
    scheduler: str | None


def _run(
    paths: list[str] | None,
    reading: _Reading,
    window: Window | None = None,
    baseline: Window | None = None,
    store: Path | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> ScanResult:
    registry = registry_mod.load(reading.grammar_path or [])
    for failure in registry.failures:
        log.warning("%s", failure)
    options = Options(
        grammar=reading.grammar,
        zone=_zone(reading.timezone),
        year=reading.year,
        jobs=reading.jobs or _default_jobs(),
        engine=str(reading.engine),
        scheduler=reading.scheduler,
        **_limits(window, baseline),
    )
    if reading.grammar is not None:
        try:
            registry.get(reading.grammar)  # an unknown name is a usage error, early
        except ScanError as err:
            raise UsageError(str(err)) from None
    meter = Meter(enabled=False if _quiet else None)
    try:
        result = scan(
            _inputs(paths), registry, options, progress=meter, meanwhile=meanwhile
        )
    finally:
        meter.close()
    if store is not None:
        _store(store, _inputs(paths), registry, options, result)
    for error in result.errors:
        typer.echo(f"smtplogscan: {clean(error)}", err=True)
    return result


def _report_modules(fmt: ReportFormat) -> Callable[[], None]:
    """Return work for this process while worker processes scan: importing what a
    report in `fmt` needs, as pandas, which alone takes 0.3 s or more, and
    reading the catalogue of causes."""
    names = ["pandas", "smtplogscan.analysis"]
    if fmt in (ReportFormat.TEXT, ReportFormat.HTML):
        names.append("jinja2")

    def load() -> None:
        for name in names:
            importlib.import_module(name)
        from smtplogscan.causes import by_id

        by_id()

    return load


def _default_jobs() -> int:
    # Imported here: the process pool's modules cost a run with --jobs 1 for nothing.
    from smtplogscan.parallel import default_jobs

    return default_jobs()


def _store(
    folder: Path,
    paths: list[str],
    registry: registry_mod.Registry,
    options: Options,
    result: ScanResult,
) -> None:
    """Add the new lines of the inputs to the history store."""
    from smtplogscan import store
    from smtplogscan.sources import expand

    inputs, _ = expand(paths)  # the scan has reported those it could not find
    added = store.append(folder, inputs, registry, options)
    log.info(
        "stored %d input(s): %d failures, %d TLS sessions, %d deliveries",
        added.inputs, added.events, added.sessions, added.deliveries,
    )  # fmt: skip
    for name in added.skipped:
        log.warning("%s: not stored: stdin can be read only once", name)
    result.errors.extend(added.errors)


def _write(chunks: Iterable[str], output: Path | None) -> None:
    if output is not None:
        with output.open("w", encoding="utf-8") as handle:
            handle.writelines(chunks)
        return
    try:
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(0) from None


@app.command()
def report(
    paths: Paths = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="Report format.")
    ] = ReportFormat.TEXT,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file, not stdout."),
    ] = None,
    template_dir: Annotated[
        Path | None,
        typer.Option("--template-dir", help="A folder whose templates override ours."),
    ] = None,
    mail_to: MailToOpt = None,
    mail_from: MailFromOpt = None,
    smtp_host: SmtpHostOpt = None,
    smtp_port: SmtpPortOpt = 25,
    starttls: StarttlsOpt = True,
    smtp_user: SmtpUserOpt = None,
    smtp_password_file: PasswordFileOpt = None,
    smtp_password_env: PasswordEnvOpt = None,
    sendmail: SendmailOpt = False,
    sendmail_path: SendmailPathOpt = None,
    quiet_if_empty: QuietIfEmptyOpt = False,
    fail_on: FailOnOpt = None,
    grammar: GrammarOpt = None,
    grammar_path: GrammarPath = None,
    year: YearOpt = None,
    timezone: ZoneOpt = None,
    utc: UtcOpt = False,
    since: SinceOpt = None,
    until: UntilOpt = None,
    bucket: BucketOpt = None,
    compare_to: CompareToOpt = None,
    compare_inputs: CompareInputsOpt = None,
    jobs: JobsOpt = None,
    engine: EngineOpt = Engine.LOCAL,
    scheduler: SchedulerOpt = None,
    store: StoreOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Scan logs and report the TLS failures per peer, with causes and fixes."""
    from smtplogscan import report as render
    from smtplogscan.analysis import analyse

    _setup_logging(verbose, quiet, debug)
    mailing = _mailing(
        mail_to, mail_from, smtp_host, smtp_port, starttls,
        smtp_user, smtp_password_file, smtp_password_env,
        sendmail_path or ("" if sendmail else None),
    )  # fmt: skip
    reading = _Reading(grammar, grammar_path, year, timezone, jobs, engine, scheduler)
    window, period = _windows(since, until, compare_to, timezone)
    one_scan = period if not compare_inputs else None
    result = _run(paths, reading, window, one_scan, store, _report_modules(fmt))
    if store is not None and period is not None and not compare_inputs:
        _baseline_from_store(result, store, period)
    if compare_inputs:
        result.baseline = _run(compare_inputs, reading, period)
        result.errors.extend(result.baseline.errors)
    if utc:
        _to_utc(result)
    analysis = analyse(result, _shown_zone(timezone, utc), bucket and str(bucket))
    if result.baseline is not None:
        analysis.comparison = _comparison(result, window, period, compare_inputs)
    if quiet_if_empty and not analysis.totals["failures"]:
        raise typer.Exit(EXIT_INPUT if result.errors else 0)
    examples = result.counts.unmatched_examples
    if fmt is ReportFormat.JSON:
        text = render.render_json(analysis, examples)
    elif fmt is ReportFormat.CSV:
        text = render.render_csv(analysis)
    elif fmt is ReportFormat.HTML:
        text = render.render_html(analysis, examples, template_dir, result.events)
    else:
        text = render.render_text(analysis, examples, template_dir)
    if mailing is None or output is not None:
        _write([text], output)  # a mailed report goes to stdout only if asked to
    if mailing is not None:
        _send(mailing, analysis, result, template_dir)
    if result.errors:
        raise typer.Exit(EXIT_INPUT)
    if fail_on is not None and analysis.totals["failures"] >= fail_on:
        raise typer.Exit(EXIT_FAILURES)


@app.command()
def events(
    paths: Paths = None,
    fmt: Annotated[
        EventFormat,
        typer.Option("--format", "-f", help="One event per line, as JSON or CSV."),
    ] = EventFormat.JSONL,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file, not stdout."),
    ] = None,
    grammar: GrammarOpt = None,
    grammar_path: GrammarPath = None,
    year: YearOpt = None,
    timezone: ZoneOpt = None,
    utc: UtcOpt = False,
    since: SinceOpt = None,
    until: UntilOpt = None,
    jobs: JobsOpt = None,
    engine: EngineOpt = Engine.LOCAL,
    scheduler: SchedulerOpt = None,
    store: StoreOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Print every TLS failure as one line of JSON or CSV."""
    from smtplogscan.report import iter_event_lines

    _setup_logging(verbose, quiet, debug)
    reading = _Reading(grammar, grammar_path, year, timezone, jobs, engine, scheduler)
    window, _ = _windows(since, until, None, timezone)
    result = _run(paths, reading, window, store=store)
    _write(iter_event_lines(sort_events(result.events), fmt.value, utc), output)
    if result.errors:
        raise typer.Exit(EXIT_INPUT)


@app.command()
def grammars(
    grammar_path: GrammarPath = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List every grammar, the formats it reads and where it came from."""
    from smtplogscan.report import clean

    _setup_logging(verbose, quiet, debug)
    registry = registry_mod.load(grammar_path or [])
    for name, loaded in sorted(registry.grammars.items()):
        grammar = loaded.grammar
        typer.echo(
            f"{clean(name)}  ({clean(grammar.mta)})  {clean(grammar.description)}"
        )
        typer.echo(f"    formats: {clean(', '.join(grammar.formats))}")
        typer.echo(f"    from:    {clean(loaded.origin)}")
    for failure in registry.failures:
        typer.echo(f"smtplogscan: {clean(failure)}", err=True)


@dataclass(frozen=True, slots=True)
class _Mailing:
    recipients: list[str]
    sender: str
    transport: Transport


def _mailing(
    mail_to: list[str] | None,
    mail_from: str | None,
    smtp_host: str | None,
    smtp_port: int,
    starttls: bool,
    smtp_user: str | None,
    password_file: Path | None,
    password_env: str | None,
    sendmail: str | None,
) -> _Mailing | None:
    """Check the mail options before the scan, so that a typo costs no scan.

    `sendmail` is the program to pipe to: None when not asked for, ``""`` for
    the default one.
    """
    if not mail_to:
        if smtp_host or sendmail is not None or mail_from or smtp_user:
            raise UsageError("the mail options need --mail-to")
        return None
    if smtp_host and sendmail is not None:
        raise UsageError("give --smtp-host or --sendmail, not both")
    # Imported here: the email and SMTP modules serve only a mailed report.
    from smtplogscan import mail

    # Addresses first: they do not depend on what this machine has installed.
    recipients = mail.addresses(mail_to)
    sender = mail.addresses([mail_from])[0] if mail_from else mail.default_sender()
    password = mail.read_password(password_file, password_env)
    if smtp_user and password is None:
        raise UsageError(
            "--smtp-user needs --smtp-password-file or --smtp-password-env"
        )
    transport = mail.Transport(
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        starttls=starttls,
        user=smtp_user,
        password=password,
        sendmail=None if smtp_host else mail.check_program(sendmail or mail.SENDMAIL),
    )
    return _Mailing(recipients, sender, transport)


def _send(
    mailing: _Mailing, analysis: Analysis, result: ScanResult, template_dir: Path | None
) -> None:
    from smtplogscan import charts, mail
    from smtplogscan import report as render

    examples = result.counts.unmatched_examples
    text = render.render_text(analysis, examples, template_dir)
    html = render.render_html(analysis, examples, template_dir, result.events)
    days = charts.dates(charts.timeline(analysis, result.events), analysis.totals)
    subject = mail.subject(analysis.totals, analysis.hosts, days)
    message = mail.build_message(
        subject, mailing.sender, mailing.recipients, text, html
    )
    try:
        mail.send(message, mailing.transport)
    except MailError as err:
        if _debug:
            raise
        _fail(f"error: {err}", EXIT_MAIL)


def _shown_zone(timezone: str | None, utc: bool) -> tzinfo:
    """Return the zone reports show times in: UTC, --timezone, or the machine's."""
    from datetime import UTC

    from smtplogscan.timestamps import local_zone

    return UTC if utc else (_zone(timezone) or local_zone())


def _comparison(
    result: ScanResult, window: Window, period: Window | None, inputs: list[str] | None
) -> dict[str, Any]:
    """Compare the report's window with the baseline the scan put aside."""
    from smtplogscan.compare import between

    assert result.baseline is not None
    compared = period or Window(text="")
    described = compared.to_json()
    if inputs:
        described["inputs"] = list(inputs)
    return between(result, result.baseline, window, compared, described)


def _baseline_from_store(result: ScanResult, folder: Path, period: Window) -> None:
    """Take the compared period from the store when it holds all of it."""
    from smtplogscan import store

    if not store.covers(folder, period.since, period.until):
        log.info("the store lacks part of %s: compared with the logs", period.text)
        return
    result.baseline = store.load(folder, period.since, period.until)


def _to_utc(result: ScanResult) -> None:
    from datetime import UTC

    for event in result.events:
        if event.time is not None:
            event.time = event.time.astimezone(UTC)


def _silence_stdout() -> None:
    """The reader went away (``| head``): keep Python quiet when it flushes stdout."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main() -> NoReturn:
    """Run the command line and exit with its status."""
    status = 0
    try:
        _main()
    except SystemExit as done:
        status = done.code if isinstance(done.code, int) else 0
    _leave(status)


def _leave(status: int) -> NoReturn:
    """Exit now, without the interpreter's teardown.

    The teardown frees every object of the run one by one, a tenth of a second
    or more after a large report, where the system takes the memory back at
    once. Nothing here needs it: process pools and clusters are shut down and
    output files closed by the time a command returns; log handlers and the
    standard streams are flushed first.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a closed stream
            pass
    os._exit(status)


def _main() -> None:
    """Run the command line; turn errors into one line on stderr and a status."""
    try:
        status = app(standalone_mode=False)
        if status == EXIT_INTERRUPTED:  # typer turns Ctrl-C into this, silently
            typer.echo("smtplogscan: interrupted", err=True)
        sys.exit(status if isinstance(status, int) else 0)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(0)
    except KeyboardInterrupt:
        typer.echo("smtplogscan: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except ScanError as err:
        if _debug:
            raise
        typer.echo(f"smtplogscan: error: {err}", err=True)
        sys.exit(EXIT_USAGE if isinstance(err, UsageError) else EXIT_INPUT)
    except typer.Abort:
        typer.echo("smtplogscan: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as err:  # the parser's usage errors, and anything unforeseen
        show, code = getattr(err, "show", None), getattr(err, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()  # a usage error, worded by the option parser
            sys.exit(code)
        if _debug:
            raise
        typer.echo(
            f"smtplogscan: internal error: {type(err).__name__}: {err}"
            " (run with --debug)",
            err=True,
        )
        sys.exit(70)
