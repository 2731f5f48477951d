"""Mail a report: a text and an HTML alternative, through SMTP or ``sendmail -t``.

Headers are set through `email.policy`, which refuses line breaks in a header
value; the subject is also stripped of control characters first, so a host or
peer name taken from a log can never add a header of its own.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import Any

from smtplogscan.errors import MailError, UsageError
from smtplogscan.report import clean

log = logging.getLogger(__name__)

SENDMAIL = "/usr/sbin/sendmail"
TIMEOUT = 60.0
#: The subject names this many hosts; the others are counted.
SUBJECT_HOSTS = 2
MAX_SUBJECT = 200
#: RFC 5322's limit. The default of 78 makes Python fold a subject that just
#: misses it right after "Subject:", which some readers show with a leading space.
POLICY = policy.default.clone(max_line_length=998)


@dataclass(frozen=True, slots=True)
class Transport:
    """How to send: an SMTP server, or the local sendmail program."""

    smtp_host: str | None = None
    smtp_port: int = 25
    starttls: bool = True
    user: str | None = None
    password: str | None = None
    sendmail: str | None = None
    timeout: float = TIMEOUT


def addresses(values: Iterable[str]) -> list[str]:
    """Split comma-separated addresses; raise UsageError on one that is not valid."""
    found = []
    for value in values:
        if any(c in value for c in "\r\n"):
            raise UsageError(f"a mail address may not hold a line break: {value!r}")
        for _, addr in getaddresses([value]):
            if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
                raise UsageError(f"not a mail address: {addr or value!r}")
            found.append(addr)
    if not found:
        raise UsageError("no mail address given")
    return found


def check_program(path: str) -> str:
    """Return `path` if it names an executable file; raise UsageError if not."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise UsageError(f"{path} is no executable program (see --sendmail-path)")
    return path


def default_sender() -> str:
    """Return smtplogscan@ this host's fully qualified name."""
    return str(Address("smtplogscan", addr_spec=f"smtplogscan@{socket.getfqdn()}"))


def _hosts(hosts: Sequence[Mapping[str, Any]]) -> str:
    names = [clean(h.get("host")) for h in hosts if h.get("host")]
    if not names:
        return socket.gethostname()
    shown = ", ".join(names[:SUBJECT_HOSTS])
    more = len(names) - SUBJECT_HOSTS
    return f"{shown} and {more} more" if more > 0 else shown


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def subject(
    totals: Mapping[str, Any],
    hosts: Sequence[Mapping[str, Any]],
    dates: tuple[str, str] | None,
) -> str:
    """State the numbers: ``smtplogscan mx1: 42 TLS failures from 7 peers, DATE``."""
    failures, peers = int(totals.get("failures") or 0), int(totals.get("peers") or 0)
    if failures:
        what = f"{_plural(failures, 'TLS failure')} from {_plural(peers, 'peer')}"
    else:
        what = "no TLS failures"
    when = ""
    if dates is not None:
        when = (
            f", {dates[0]}" if dates[0] == dates[1] else f", {dates[0]} to {dates[1]}"
        )
    text = f"smtplogscan {_hosts(hosts)}: {what}{when}"
    # Line breaks would be refused by the policy; spaces keep the subject readable.
    text = " ".join(clean(text.replace("\r", " ").replace("\n", " ")).split())
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1] + "…"


def build_message(
    subject_line: str, sender: str, recipients: Sequence[str], text: str, html: str
) -> EmailMessage:
    """Build a multipart/alternative message: the text first, the HTML preferred."""
    message = EmailMessage(policy=POLICY)
    message["Subject"] = subject_line
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=socket.getfqdn())
    # RFC 3834: tells vacation responders not to answer a machine.
    message["Auto-Submitted"] = "auto-generated"
    # Quoted-printable keeps long HTML lines and stray carriage returns from the
    # logs inside the body, whatever the transport does with line ends.
    message.set_content(text, charset="utf-8", cte="quoted-printable")
    message.add_alternative(
        html, subtype="html", charset="utf-8", cte="quoted-printable"
    )
    return message


def send(message: EmailMessage, transport: Transport) -> None:
    """Hand `message` to the SMTP server or to sendmail; raise MailError on failure."""
    if transport.sendmail is not None:
        _sendmail(message, transport)
    elif transport.smtp_host is not None:
        _smtp(message, transport)
    else:
        raise UsageError("name an SMTP server with --smtp-host, or use --sendmail")


def _sendmail(message: EmailMessage, transport: Transport) -> None:
    program = transport.sendmail or SENDMAIL
    data = message.as_bytes(policy=POLICY)
    try:
        # -i: a line holding one dot is text, not the end of the message.
        done = subprocess.run(
            [program, "-t", "-i"],
            input=data,
            capture_output=True,
            timeout=transport.timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise MailError(f"cannot run {program}: {err}") from None
    if done.returncode != 0:
        why = (
            done.stderr.decode("utf-8", "replace").strip()
            or f"status {done.returncode}"
        )
        raise MailError(f"{program} refused the report: {clean(why)}")


def _smtp(message: EmailMessage, transport: Transport) -> None:
    host, port = transport.smtp_host or "localhost", transport.smtp_port
    where = f"{host}:{port}"
    if transport.user and not transport.starttls:
        raise UsageError(
            "refusing to send the SMTP password unencrypted: drop --no-starttls"
        )
    try:
        with smtplib.SMTP(host, port, timeout=transport.timeout) as client:
            client.ehlo()
            if transport.starttls:
                # The system's CAs (or SSL_CERT_FILE) verify the server's name.
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if transport.user:
                client.login(transport.user, transport.password or "")
            client.send_message(message)
    except smtplib.SMTPNotSupportedError:
        raise MailError(
            f"{where} offers no STARTTLS; use --no-starttls for a local relay"
        ) from None
    except smtplib.SMTPAuthenticationError as err:
        raise MailError(f"{where} refused the login: {_reply(err)}") from None
    except smtplib.SMTPRecipientsRefused as err:
        refused = ", ".join(err.recipients)
        raise MailError(f"{where} refused the recipients: {refused}") from None
    except smtplib.SMTPResponseException as err:
        raise MailError(f"{where} refused the report: {_reply(err)}") from None
    except (smtplib.SMTPException, ssl.SSLError, OSError) as err:
        raise MailError(f"cannot send through {where}: {err}") from None
    log.info("report sent through %s", where)


def _reply(err: smtplib.SMTPResponseException) -> str:
    text = err.smtp_error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{err.smtp_code} {clean(text)}"


def read_password(file: Path | None, env: str | None) -> str | None:
    """Read the SMTP password from a file or an environment variable, never argv."""
    if file is not None and env is not None:
        raise UsageError("give --smtp-password-file or --smtp-password-env, not both")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as err:
            raise UsageError(
                f"cannot read the password file {file}: {err.strerror}"
            ) from None
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise UsageError(f"the environment variable {env} is not set")
        return value
    return None
