#!/usr/bin/env python3
"""Connect to the loopback Postfix as good and bad SMTP/TLS clients.

Usage: clients.py all | good | setup_probe

Each scenario binds its own loopback source address (see peers.tsv), so that
Postfix logs a distinct peer NAME[ADDR] for it. Every connection goes to
127.0.0.1 or ::1 only.
"""

from __future__ import annotations

import random
import smtplib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable

SERVER_V4 = "127.0.0.1"
SERVER_V6 = "::1"
SMTP, SMTPS, SUBMISSION = 25, 465, 587
LOCAL_RCPT = "postmaster@mx1.lab.test"
MESSAGE = "Subject: sample\r\n\r\nhello\r\n"


def lax_context(
    low: ssl.TLSVersion | None = None,
    high: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """Return a client context that checks nothing, as most MTAs do."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if ciphers:
        context.set_ciphers(ciphers)
    if low:
        context.minimum_version = low
    if high:
        context.maximum_version = high
    return context


class Raw:
    """A bare SMTP connection for clients that misbehave on purpose."""

    def __init__(self, source: str, port: int = SMTP) -> None:
        self.sock = socket.create_connection(
            (SERVER_V4, port), timeout=30, source_address=(source, 0)
        )
        self.reader = self.sock.makefile("rb")

    def reply(self) -> str:
        lines = []
        while True:
            line = self.reader.readline().decode("ascii", "replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return "".join(lines)

    def command(self, text: str) -> str:
        self.sock.sendall(text.encode("ascii") + b"\r\n")
        return self.reply()

    def to_starttls(self, helo: str) -> None:
        self.reply()
        self.command(f"EHLO {helo}")
        self.command("STARTTLS")

    def close(self) -> None:
        self.sock.close()


def try_starttls(
    source: str, context: ssl.SSLContext, port: int = SMTP, server: str = SERVER_V4
) -> None:
    """STARTTLS with the given context; on failure just drop the connection."""
    client = smtplib.SMTP(
        server,
        port,
        local_hostname=host_of(source),
        source_address=(source, 0),
        timeout=30,
    )
    try:
        client.ehlo()
        client.starttls(context=context)
        client.ehlo()
        client.sendmail(f"alice@{host_of(source)}", [LOCAL_RCPT], MESSAGE)
        client.quit()
    except (ssl.SSLError, OSError, smtplib.SMTPException) as exc:
        print(f"{source}: {type(exc).__name__}: {exc}", file=sys.stderr)
        client.close()


def host_of(source: str) -> str:
    return {
        "127.0.0.31": "good1.client.test",
        "127.0.0.32": "good2.client.test",
        "127.0.0.33": "wrap.client.test",
        "127.0.0.34": "notls.client.test",
        "::1": "ws6.client.test",
    }.get(source, "client.test")


# --- inbound scenarios -------------------------------------------------------
# Each function is one client. The comment says what Postfix should log.


def old_tls10() -> None:
    # A client that can only do TLS 1.0 (old appliance): no protocol in common
    # with OpenSSL 3 at security level 2 -> protocol_version.
    try_starttls(
        "127.0.0.11",
        lax_context(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1, "DEFAULT:@SECLEVEL=0"),
    )


def old_tls11() -> None:
    # The same with TLS 1.1 only.
    try_starttls(
        "127.0.0.12",
        lax_context(
            ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0"
        ),
    )


def plaintext_after_starttls() -> None:
    # Says STARTTLS, then goes on in plaintext: the bytes are not TLS records.
    raw = Raw("127.0.0.13")
    raw.to_starttls("plain.client.test")
    raw.sock.sendall(b"EHLO plain.client.test\r\n")
    time.sleep(1)
    raw.close()


def http_after_starttls() -> None:
    # A scanner that sends an HTTP request where the ClientHello should be.
    raw = Raw("127.0.0.14")
    raw.to_starttls("http.client.test")
    raw.sock.sendall(b"GET / HTTP/1.1\r\nHost: mx1.lab.test\r\n\r\n")
    time.sleep(1)
    raw.close()


def ecdsa_only() -> None:
    # TLS 1.2 with ECDSA suites only; our certificate is RSA -> no shared cipher.
    try_starttls(
        "127.0.0.15",
        lax_context(
            ssl.TLSVersion.TLSv1_2,
            ssl.TLSVersion.TLSv1_2,
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
        ),
    )


def strict_verifier() -> None:
    # Verifies our self-signed certificate against the system CAs and aborts
    # the handshake with an alert (unknown ca / bad certificate).
    context = ssl.create_default_context()
    context.check_hostname = False
    try_starttls("127.0.0.16", context)


def drop_after_starttls() -> None:
    # Gets "220 Ready to start TLS" and closes without a byte of TLS.
    raw = Raw("127.0.0.17")
    raw.to_starttls("drop.client.test")
    raw.close()


def half_client_hello() -> None:
    # Sends the first 40 bytes of a real ClientHello, then closes.
    raw = Raw("127.0.0.18")
    raw.to_starttls("half.client.test")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = lax_context().wrap_bio(incoming, outgoing)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    raw.sock.sendall(outgoing.read()[:40])
    time.sleep(1)
    raw.close()


def silent_after_starttls() -> None:
    # Says STARTTLS and then nothing until smtpd_starttls_timeout (8s) expires.
    raw = Raw("127.0.0.19")
    raw.to_starttls("slow.client.test")
    time.sleep(12)
    raw.close()


def smtps_plaintext() -> None:
    # Plaintext EHLO to the implicit-TLS port 465.
    raw = Raw("127.0.0.20", SMTPS)
    raw.sock.sendall(b"EHLO scan.client.test\r\n")
    time.sleep(1)
    raw.close()


def smtps_http() -> None:
    # An HTTP probe to port 465.
    time.sleep(3)
    raw = Raw("127.0.0.20", SMTPS)
    raw.sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    time.sleep(1)
    raw.close()


def submission_tls11() -> None:
    # A mail client stuck on TLS 1.1 at the submission port.
    try_starttls(
        "127.0.0.35",
        lax_context(
            ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0"
        ),
        port=SUBMISSION,
    )


def good_sessions() -> None:
    # Successful STARTTLS sessions (TLS 1.3 and 1.2) and one relayed outbound.
    try_starttls("127.0.0.31", lax_context())
    try_starttls("127.0.0.32", lax_context(high=ssl.TLSVersion.TLSv1_2))
    client = smtplib.SMTP(
        SERVER_V4,
        SMTP,
        local_hostname="good1.client.test",
        source_address=("127.0.0.31", 0),
        timeout=30,
    )
    client.starttls(context=lax_context())
    client.sendmail("bob@good1.client.test", ["user@good.test"], MESSAGE)
    client.quit()


def implicit_tls() -> None:
    # Successful session on port 465 (implicit TLS).
    client = smtplib.SMTP_SSL(
        SERVER_V4,
        SMTPS,
        local_hostname="wrap.client.test",
        source_address=("127.0.0.33", 0),
        timeout=30,
        context=lax_context(),
    )
    client.sendmail("carol@wrap.client.test", [LOCAL_RCPT], MESSAGE)
    client.quit()


def no_starttls() -> None:
    # Plaintext mail without STARTTLS: everyday noise, not a failure.
    client = smtplib.SMTP(
        SERVER_V4,
        SMTP,
        local_hostname="notls.client.test",
        source_address=("127.0.0.34", 0),
        timeout=30,
    )
    client.sendmail("dave@notls.client.test", [LOCAL_RCPT], MESSAGE)
    client.quit()


def submission_ipv6() -> None:
    # Successful STARTTLS on the submission port over IPv6.
    try_starttls("::1", lax_context(), port=SUBMISSION, server=SERVER_V6)


def setup_probe() -> None:
    # One ordinary client against a freshly reloaded smtpd (phase 2): tries
    # STARTTLS, and if the server cannot do TLS, goes on in plaintext.
    client = smtplib.SMTP(
        SERVER_V4,
        SMTP,
        local_hostname="good2.client.test",
        source_address=("127.0.0.32", 0),
        timeout=30,
    )
    client.ehlo()
    try:
        if client.has_extn("starttls"):
            client.starttls(context=lax_context(high=ssl.TLSVersion.TLSv1_2))
            client.ehlo()
        client.sendmail("erin@good2.client.test", [LOCAL_RCPT], MESSAGE)
        client.quit()
    except (ssl.SSLError, OSError, smtplib.SMTPException) as exc:
        print(f"setup_probe: {type(exc).__name__}: {exc}", file=sys.stderr)
        client.close()
        # Real MTAs retry without TLS after a failed handshake.
        client = smtplib.SMTP(
            SERVER_V4,
            SMTP,
            local_hostname="good2.client.test",
            source_address=("127.0.0.32", 0),
            timeout=30,
        )
        client.sendmail("erin@good2.client.test", [LOCAL_RCPT], MESSAGE)
        client.quit()


ALL: list[Callable[[], None]] = [
    good_sessions,
    old_tls10,
    plaintext_after_starttls,
    ecdsa_only,
    old_tls11,
    strict_verifier,
    http_after_starttls,
    drop_after_starttls,
    implicit_tls,
    half_client_hello,
    silent_after_starttls,
    smtps_plaintext,
    no_starttls,
    submission_tls11,
    smtps_http,
    submission_ipv6,
]


def run_together(scenarios: list[Callable[[], None]]) -> None:
    """Start the scenarios a fraction of a second apart so their lines interleave."""
    rng = random.Random(25)
    threads = []
    for scenario in scenarios:
        thread = threading.Thread(target=guarded, args=(scenario,))
        thread.start()
        threads.append(thread)
        time.sleep(rng.uniform(0.05, 0.4))
    for thread in threads:
        thread.join()


def guarded(scenario: Callable[[], None]) -> None:
    try:
        scenario()
    except Exception as exc:  # noqa: BLE001 - report and let the others run
        print(f"{scenario.__name__}: {type(exc).__name__}: {exc}", file=sys.stderr)


def main(argv: list[str]) -> None:
    what = argv[0] if argv else "all"
    if what == "all":
        run_together(ALL)
    elif what == "good":
        run_together([good_sessions, implicit_tls, submission_ipv6])
    elif what == "setup_probe":
        guarded(setup_probe)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
