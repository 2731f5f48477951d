"""Mailing the report: a real SMTP server on loopback receives and we read what came."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from smtplogscan import mail
from smtplogscan.errors import MailError, UsageError

from .conftest import SAMPLES

aiosmtpd = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

SYSLOG = SAMPLES / "postfix" / "openssl11-syslog.log"
PINNED = ("--timezone", "UTC", "--year", "2026")
HOSTILE = "<script>alert(1)</script>"
# A carriage return inside a line survives line splitting; were it copied into a
# header it would start a new one.
HOSTILE_LOG = f"""\
Dec  2 10:00:01 mx1 postfix/smtpd[3102]: connect from {HOSTILE}[192.0.2.66]
Dec  2 10:00:01 mx1 postfix/smtpd[3102]: SSL_accept error from {HOSTILE}[192.0.2.66]: -1
Dec  2 10:00:01 mx1 postfix/smtpd[3102]: warning: TLS library problem: x\rBcc: evil@example.net
Dec  2 10:00:01 mx1 postfix/smtpd[3102]: lost connection after STARTTLS from {HOSTILE}[192.0.2.66]
"""
USER, PASSWORD = "reports", "s3cret pass"


class Sink:
    """Keep every message the server accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


def authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server() -> Iterator[tuple[Sink, int]]:
    """A plain SMTP server on loopback."""
    sink, port = Sink(), free_port()
    controller = aiosmtpd.Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed for the STARTTLS test")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[Sink, int]]:
    """An SMTP server on loopback that requires STARTTLS and a login."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink, port = Sink(), free_port()
    controller = aiosmtpd.Controller(
        sink,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def run(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtplogscan", "report", *PINNED, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def received(sink: Sink) -> EmailMessage:
    assert len(sink.received) == 1
    message = message_from_bytes(sink.received[0][2], policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> dict[str, str]:
    return {p.get_content_type(): p.get_content() for p in message.iter_parts()}


def test_report_arrives_as_text_and_html(server: tuple[Sink, int]) -> None:
    sink, port = server

    done = run(
        "--mail-to", "pm@example.org,noc@example.org", "--mail-to", "cto@example.org",
        "--mail-from", "reports@example.org", "--smtp-host", "127.0.0.1",
        "--smtp-port", str(port), "--no-starttls", str(SYSLOG),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # the report went by mail, not to cron's mail of stdout
    sender, recipients, _ = sink.received[0]
    assert sender == "reports@example.org"
    assert recipients == ["pm@example.org", "noc@example.org", "cto@example.org"]
    message = received(sink)
    assert message.get_content_type() == "multipart/alternative"
    subject = "smtplogscan mx1: 7 TLS failures from 7 peers, 2026-12-02 to 2026-12-03"
    assert message["Subject"] == subject
    assert message["Auto-Submitted"] == "auto-generated"
    body = parts(message)
    assert list(body) == ["text/plain", "text/html"]
    assert "7 TLS failure(s) with 7 peer(s)" in body["text/plain"]
    assert 'id="peer-table"' in body["text/html"]


def test_a_hostile_log_adds_no_header(server: tuple[Sink, int], tmp_path: Path) -> None:
    sink, port = server
    log = tmp_path / "mail.log"
    log.write_bytes(HOSTILE_LOG.encode())

    done = run(
        "--mail-to", "pm@example.org", "--smtp-host", "127.0.0.1",
        "--smtp-port", str(port), "--no-starttls", str(log),
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert sink.received[0][1] == ["pm@example.org"]
    message = received(sink)
    assert message["Bcc"] is None
    assert (
        message["Subject"] == "smtplogscan mx1: 1 TLS failure from 1 peer, 2026-12-02"
    )
    html = parts(message)["text/html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and HOSTILE not in html


def test_starttls_and_login(
    tls_server: tuple[Sink, int], certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    sink, port = tls_server
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    trust = {"SSL_CERT_FILE": str(certificate[0])}

    done = run(
        "--mail-to", "pm@example.org", "--smtp-host", "127.0.0.1",
        "--smtp-port", str(port), "--smtp-user", USER,
        "--smtp-password-file", str(secret), str(SYSLOG), env=trust,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert received(sink).get_content_type() == "multipart/alternative"


def test_password_from_the_environment(
    tls_server: tuple[Sink, int], certificate: tuple[Path, Path]
) -> None:
    sink, port = tls_server
    env = {"SSL_CERT_FILE": str(certificate[0]), "REPORT_PW": PASSWORD}

    done = run(
        "--mail-to", "pm@example.org", "--smtp-host", "127.0.0.1",
        "--smtp-port", str(port), "--smtp-user", USER,
        "--smtp-password-env", "REPORT_PW", str(SYSLOG), env=env,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert len(sink.received) == 1


def test_an_untrusted_certificate_is_refused(tls_server: tuple[Sink, int]) -> None:
    sink, port = tls_server

    done = run(
        "--mail-to", "pm@example.org", "--smtp-host", "127.0.0.1",
        "--smtp-port", str(port), str(SYSLOG),
    )  # fmt: skip

    assert done.returncode == 4
    assert "certificate verify failed" in done.stderr
    assert sink.received == []


def test_a_server_without_starttls_is_named(server: tuple[Sink, int]) -> None:
    _, port = server

    done = run(
        "--mail-to", "pm@example.org", "--smtp-host", "127.0.0.1",
        "--smtp-port", str(port), str(SYSLOG),
    )  # fmt: skip

    assert done.returncode == 4
    assert "offers no STARTTLS; use --no-starttls" in done.stderr


def test_sendmail_gets_the_message_on_stdin(tmp_path: Path) -> None:
    copy = tmp_path / "copy.eml"
    program = tmp_path / "sendmail"
    program.write_text(f'#!/bin/sh\necho "$@" > {copy}.args\ncat > {copy}\n')
    program.chmod(0o755)

    done = run(
        "--mail-to", "pm@example.org", "--sendmail-path", str(program), str(SYSLOG)
    )

    assert done.returncode == 0, done.stderr
    assert Path(f"{copy}.args").read_text().split() == ["-t", "-i"]
    message = message_from_bytes(copy.read_bytes(), policy=policy.default)
    assert message["To"] == "pm@example.org"
    assert message.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--smtp-host", "127.0.0.1"), "need --mail-to"),
        (("--mail-to", "not-an-address"), "not a mail address"),
        (("--mail-to", "a@example.org", "--smtp-host", "h", "--sendmail"), "not both"),
        (("--mail-to", "a@example.org", "--smtp-host", "h", "--smtp-user", "u"),
         "needs --smtp-password-file"),
        (("--mail-to", "a@example.org", "--smtp-host", "h", "--smtp-user", "u",
          "--smtp-password-env", "SMTPLOGSCAN_UNSET_VARIABLE"), "is not set"),
        (("--mail-to", "a@example.org", "--sendmail-path", "/nonexistent/sendmail"),
         "no executable program"),
        (("--mail-to", "a@example.org", "--smtp-password", "x"), "No such option"),
    ],
)  # fmt: skip
def test_mail_usage_errors_exit_2_before_the_scan(
    args: tuple[str, ...], says: str
) -> None:
    done = run(*args, "/nonexistent/mail.log")

    assert done.returncode == 2
    assert says in done.stderr
    assert "/nonexistent/mail.log" not in done.stderr  # nothing was read


def test_subject_never_holds_a_line_break() -> None:
    hosts = [{"host": "mx1\r\nBcc: evil@example.net"}, {"host": "mx2"}, {"host": "mx3"}]
    totals = {"failures": 42, "peers": 7}

    subject = mail.subject(totals, hosts, ("2026-12-02", "2026-12-02"))
    message = mail.build_message(
        subject, "a@example.org", ["b@example.org"], "t", "<p>h</p>"
    )

    assert subject == (
        "smtplogscan mx1 Bcc: evil@example.net, mx2 and 1 more: "
        "42 TLS failures from 7 peers, 2026-12-02"
    )
    wire = message.as_bytes(policy=policy.SMTP)
    head = wire.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head


def test_no_failures_say_so() -> None:
    subject = mail.subject({"failures": 0, "peers": 0}, [{"host": "mx1"}], None)

    assert subject == "smtplogscan mx1: no TLS failures"


def test_password_sources() -> None:
    with pytest.raises(UsageError, match="not both"):
        mail.read_password(Path("x"), "Y")
    assert mail.read_password(None, None) is None


def test_an_unreachable_server_is_a_mail_error() -> None:
    message = mail.build_message("s", "a@example.org", ["b@example.org"], "t", "h")
    transport = mail.Transport(smtp_host="127.0.0.1", smtp_port=free_port(), timeout=5)

    with pytest.raises(MailError, match="cannot send through 127.0.0.1"):
        mail.send(message, transport)
