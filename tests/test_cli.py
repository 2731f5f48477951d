"""The command line as a user runs it: output, JSON contract, exit statuses."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from .conftest import SAMPLES, run_cli

POSTFIX = SAMPLES / "postfix"
SYSLOG = POSTFIX / "openssl11-syslog.log"
EVENT_KEYS = {
    "time",
    "host",
    "mta",
    "direction",
    "peer_name",
    "peer_addr",
    "peer_port",
    "kind",
    "detail",
    "culprit",
    "outcome",
    "source",
}


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, input=stdin)


def test_text_report_leads_with_a_verdict():
    done = run("report", str(SYSLOG))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    verdict = lines[lines.index("VERDICT") + 1].strip()
    assert verdict.startswith("7 TLS failure(s) with 7 peer(s): 4 inbound, 3 outbound")
    assert "1 mail(s) went out IN PLAINTEXT" in done.stdout
    assert "CAUSES AND WHAT TO CHANGE" in done.stdout
    assert max(len(line) for line in lines) <= 100


def test_text_report_over_all_mtas_fits_100_columns_and_names_the_mta():
    done = run("report", str(SAMPLES))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    start = lines.index("PEERS, most failures first") + 1
    column = lines[start].index("mta")
    rows = lines[start + 1 : lines.index("", start)]
    shown = {
        row[column : column + 8].strip() for row in rows if not row.startswith("  …")
    }
    assert shown == {"postfix", "exim", "exchange"}


def test_report_json_contract():
    done = run("report", "--format", "json", str(SYSLOG))
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    totals = body["totals"]
    assert {
        "lines",
        "failures",
        "tls_successes",
        "peers",
        "unmatched_tls_lines",
    } <= set(totals)
    assert (totals["lines"], totals["failures"], totals["tls_successes"]) == (41, 7, 2)
    for peer in body["peers"]:
        assert {
            "peer_addr",
            "peer_name",
            "direction",
            "failures",
            "successes",
            "kinds",
            "first_seen",
            "last_seen",
            "culprit",
            "cause",
            "advice",
        } <= set(peer)
    weak = next(p for p in body["peers"] if p["peer_addr"] == "198.51.100.25")
    assert weak["kinds"] == {"dh_key_too_small": 1}
    assert weak["outcomes"] == {"plaintext": 1}
    assert weak["culprit"] == "peer"
    assert "exclude=kDHE" in weak["advice"]
    kinds = {k["kind"]: k for k in body["kinds"]}
    assert kinds["starttls_unavailable"] == {
        "kind": "starttls_unavailable",
        "failures": 2,
        "peers": 2,
    }


def test_events_jsonl_contract():
    done = run("events", str(SYSLOG))
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) == 7
    assert all(EVENT_KEYS <= set(e) for e in events)
    first = events[0]
    assert first["source"] == f"{SYSLOG}:6"
    assert (
        first["time"].endswith(("+00:00", "Z"))
        or "+" in first["time"]
        or "-" in first["time"][19:]
    )
    assert first["direction"] == "inbound" and first["kind"] == "protocol_version"


def test_events_csv_has_a_header_and_a_row_per_event():
    done = run("events", "--format", "csv", str(SYSLOG))
    rows = done.stdout.splitlines()
    assert rows[0].startswith("time,host,mta,direction,peer_name")
    assert len(rows) == 8


def test_gzip_on_stdin():
    done = run("events", "-", stdin=gzip.compress(SYSLOG.read_bytes()))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 7
    assert "<stdin>:6" in done.stdout


def test_missing_input_is_named_and_the_report_still_printed(tmp_path):
    done = run("report", str(tmp_path / "gone.log"), str(SYSLOG))
    assert done.returncode == 1
    assert "gone.log" in done.stderr
    assert "Traceback" not in done.stderr
    assert "7 TLS failure(s)" in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("report", "--format", "pdf", str(SYSLOG)),
        ("report", "--grammar", "sendmail", str(SYSLOG)),
        ("report", "--timezone", "Mars/Olympus", str(SYSLOG)),
        ("frobnicate",),
    ],
)
def test_usage_errors_exit_2_without_traceback(args):
    done = run(*args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip()


def test_grammars_lists_builtins_with_their_origin():
    done = run("grammars")
    assert done.returncode == 0
    assert "postfix  (postfix)" in done.stdout
    assert (
        "from:    postfix (smtplogscan.grammars.postfix:PostfixGrammar" in done.stdout
    )


PLUGIN = '''
from smtplogscan import Grammar, Event, Peer, Direction, Kind, Culprit

class ToyGrammar(Grammar):
    """Reads lines like: TOYFAIL 192.0.2.1 reason."""
    name = "toy"
    mta = "toymta"
    formats = ("toy",)
    prefilter = ("TOYFAIL",)

    @classmethod
    def sniff(cls, lines):
        return 1.0 if any(l.startswith("TOYFAIL") for l in lines) else 0.0

    def feed(self, line, lineno):
        _, addr, reason = line.split(" ", 2)
        return [Event(None, "toyhost", self.mta, Direction.INBOUND, Peer(addr=addr),
                      Kind.OTHER, reason, self.where(lineno), Culprit.UNKNOWN)]
'''


def test_grammar_path_plugin_works_and_a_broken_one_is_skipped(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "toy.py").write_text(PLUGIN)
    (plugins / "broken.py").write_text("import no_such_module_here\n")
    log = tmp_path / "toy.log"
    log.write_text("TOYFAIL 192.0.2.1 the toy broke\nnoise\n")

    listing = run("grammars", "--grammar-path", str(plugins))
    assert "toy  (toymta)" in listing.stdout
    assert "broken.py skipped: ModuleNotFoundError" in listing.stderr
    assert "postfix  (postfix)" in listing.stdout

    done = run("events", "--grammar-path", str(plugins), str(log))
    assert done.returncode == 0, done.stderr
    (event,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert (event["mta"], event["peer_addr"], event["detail"]) == (
        "toymta",
        "192.0.2.1",
        "the toy broke",
    )


def test_events_into_a_closed_pipe_exit_quietly():
    big = SYSLOG.read_text() * 400
    proc = subprocess.run(
        f"{sys.executable} -m smtplogscan events - | head -n 1",
        shell=True,
        input=big,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert "BrokenPipe" not in proc.stderr


def test_hostile_values_never_reach_the_terminal_raw(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text(
        # ESC c resets a terminal; BEL rings it; an unknown TLS line is quoted
        # in the report's coverage notes.
        "Dec  3 15:01:02 mx1 postfix/smtpd[7]: SSL_accept error from \x1bcevil\x07.example[192.0.2.66]: -1\n"
        "Dec  3 15:01:02 mx1 postfix/smtpd[7]: warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol\n"
        "Dec  3 15:01:03 mx1 postfix/smtpd[8]: warning: TLS oddity \x1b[31mred\x1b[0m \x9b2J\n"
    )
    done = run("report", str(log))
    assert "evil.example" in done.stdout
    assert "oddity red" in done.stdout
    for raw in ("\x1b", "\x07", "\x9b"):
        assert raw not in done.stdout


def test_csv_cells_cannot_run_as_formulas(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text(
        "Dec  3 15:01:02 mx1 postfix/smtpd[7]: SSL_accept error from =cmd|'/Ccalc'!A0[192.0.2.66]: -1\n"
    )
    done = run("events", "--format", "csv", str(log))
    assert ",'=cmd|" in done.stdout


def test_a_grammar_that_raises_stops_its_input_not_the_run(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "toy.py").write_text(
        PLUGIN.replace(
            "_, addr, reason = line.split",
            "1 / 0\n        _, addr, reason = line.split",
        )
    )
    toy = tmp_path / "toy.log"
    toy.write_text("TOYFAIL 192.0.2.1 the toy broke\n")
    done = run("events", "--grammar-path", str(plugins), str(toy), str(SYSLOG))
    assert done.returncode == 1
    assert "grammar toy failed" in done.stderr and "ZeroDivisionError" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) == 7  # the Postfix log was read all the same


# Runs the command line in a fresh interpreter, then names every module it
# loaded, as it leaves (main ends with os._exit).
_MODULES = """\
import os, sys
from smtplogscan.cli import main

leave = os._exit

def name_modules_then_leave(status):
    print(" ".join(sorted(sys.modules)), file=sys.stderr, flush=True)
    leave(status)

os._exit = name_modules_then_leave
main()
"""


def loaded_by(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", _MODULES, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stderr.splitlines()[-1].split())


def test_a_json_report_loads_no_templates_mail_or_process_pool():
    loaded = loaded_by("report", "--format", "json", "--jobs", "1", str(SYSLOG))
    assert "pandas" in loaded
    for module in ("jinja2", "smtplib", "smtplogscan.mail", "smtplogscan.parallel"):
        assert module not in loaded


def test_listing_grammars_loads_no_pandas_catalogue_or_templates():
    loaded = loaded_by("grammars")
    assert "smtplogscan.grammars.postfix" in loaded
    for module in ("pandas", "tomllib", "jinja2", "smtplogscan.mail"):
        assert module not in loaded
