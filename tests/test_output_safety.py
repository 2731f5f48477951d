"""What a log holds never acts on the terminal, the browser, the spreadsheet or the
mail that shows it.

Peer names, HELO names, reason texts and file names are chosen by strangers.
These tests put escape sequences (CSI, OSC, C1), markup, formulas and header
breaks in them and check every output: the text report, the `grammars`
listing, stderr, HTML, both CSVs and the mailed report.
"""

from __future__ import annotations

import csv
import email
import gzip
import io
from email import policy
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from smtplogscan import mail

from .conftest import run_cli
from .hypothesis_profiles import fuzz

ESCAPES = (
    "\x1b[2J\x1b[31m",  # CSI: clear the screen, red
    "\x1b]0;owned\x07",  # OSC: set the window title
    "\x1b]8;;http://evil.example/\x1b\\",  # OSC 8: a hidden link
    "\x9b31m",  # C1 CSI
    "\x1bc",  # reset the terminal
    "\x07\x08\x7f",
)
RAW = ("\x1b", "\x9b", "\x07", "\x08", "\x7f")
FORMULAS = ('=HYPERLINK("http://evil.example")', "+1+1", "-1+1", "@SUM(A1)", "\tx")


def failure(
    pid: int, name: str, addr: str, reason: str = "unsupported protocol"
) -> str:
    return (
        f"Dec  3 15:01:02 mx1 postfix/smtpd[{pid}]: SSL_accept error from {name}[{addr}]: -1\n"
        f"Dec  3 15:01:02 mx1 postfix/smtpd[{pid}]: warning: TLS library problem: "
        f"error:0A000102:SSL routines::{reason}\n"
    )


def hostile_log(tmp_path: Path) -> Path:
    lines = [
        failure(n, f"p{n}{text}.example", f"192.0.2.{n}", f"{text} reason {n}")
        for n, text in enumerate(ESCAPES + FORMULAS + ("<script>alert(1)</script>",))
    ]
    lines.append(failure(90, "x\r=cmd|' /C calc'!A0", "192.0.2.90"))
    lines.append(
        "Dec  3 15:01:03 mx1 postfix/smtpd[99]: TLS oddity \x1b]0;t\x07 \x9b2J\n"
    )
    path = tmp_path / "mail.log"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_text_report_holds_no_control_character(tmp_path: Path) -> None:
    done = run_cli("report", str(hostile_log(tmp_path)))
    assert done.returncode == 0, done.stderr
    for raw in RAW:
        assert raw not in done.stdout, repr(raw)
    assert "owned" in done.stdout  # the text stays, the escape goes


def test_html_report_escapes_markup(tmp_path: Path) -> None:
    done = run_cli("report", "--format", "html", str(hostile_log(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "<script" not in done.stdout.lower()
    assert "&lt;script&gt;" in done.stdout


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_report_and_events_csv_neutralise_formulas(tmp_path: Path) -> None:
    log = str(hostile_log(tmp_path))
    for args in (("report", "--format", "csv"), ("events", "--format", "csv")):
        done = run_cli(*args, log)
        assert done.returncode == 0, done.stderr
        rows = _cells(done.stdout)
        assert len(rows) > 10
        for row in rows[1:]:
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        # A bare CR would end the row in a spreadsheet and start a formula.
        assert all("\r" not in cell for row in rows for cell in row)


def test_grammars_listing_holds_no_control_character(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "evil.py").write_text(
        "from smtplogscan import Grammar\n"
        "class Evil(Grammar):\n"
        f"    name = {'evil' + ESCAPES[0]!r}\n"
        f"    mta = {ESCAPES[1]!r}\n"
        f"    formats = ({ESCAPES[3]!r},)\n"
        "    prefilter = ('x',)\n"
        f"    description = {ESCAPES[2] + 'desc'!r}\n"
        "    @classmethod\n"
        "    def sniff(cls, lines): return 0.0\n"
        "    def feed(self, line, lineno): return []\n"
    )
    (plugins / "broken.py").write_text(f"raise ImportError({ESCAPES[1]!r})\n")
    done = run_cli("grammars", "--grammar-path", str(plugins))
    assert done.returncode == 0, done.stderr
    assert "desc" in done.stdout and "broken.py" in done.stderr
    for raw in RAW:
        assert raw not in done.stdout, repr(raw)
        assert raw not in done.stderr, repr(raw)


def test_an_error_about_a_hostile_file_name_holds_no_escape(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    body = gzip.compress(hostile_log(tmp_path).read_bytes())
    (folder / "mail.log.1\x1b]0;owned\x07.gz").write_bytes(body[: len(body) // 2])
    done = run_cli("report", str(folder))
    assert done.returncode == 1
    assert "stopped reading" in done.stderr
    for raw in RAW:
        assert raw not in done.stderr, repr(raw)


# -- the mailed report ------------------------------------------------------------------

HEADER_BREAKS = ("\r\nBcc: victim@example.org", "\nX-Evil: 1", "\r\n\r\nbody", "\x85")


@fuzz()
@given(
    hosts=st.lists(
        st.one_of(
            st.sampled_from(HEADER_BREAKS + ESCAPES),
            st.text(max_size=60),
        ),
        max_size=4,
    ),
    failures=st.integers(0, 10**6),
)
def test_the_mail_subject_and_headers_cannot_be_injected(
    hosts: list[str], failures: int
) -> None:
    subject = mail.subject(
        {"failures": failures, "peers": 1},
        [{"host": host} for host in hosts],
        ("2026-12-02", "2026-12-02"),
    )
    assert not any(c in subject for c in "\r\n\x85\x1b\x9b")
    assert len(subject) <= mail.MAX_SUBJECT
    message = mail.build_message(
        subject, "smtplogscan@example.org", ["pm@example.org"], "text", "<p>html</p>"
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert sorted(parsed.keys()) == sorted(
        [
            "Subject",
            "From",
            "To",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "MIME-Version",
            "Content-Type",
        ]
    )
    assert parsed["To"] == "pm@example.org"
