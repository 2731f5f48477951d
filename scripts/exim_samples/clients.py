"""Loopback SMTP clients that fail TLS against the lab's Exim in known ways.

Usage: clients.py SCENARIO [SCENARIO ...]

Each scenario connects from a fixed source port (41000 + its index in SCENARIOS),
so that the anonymiser can give each one its own documentation address.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time

HOST = "127.0.0.1"
STARTTLS, SMTPS, BROKEN = 2525, 2465, 2526
LOWEST = "DEFAULT:@SECLEVEL=0"


def connect(index: int, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 41000 + index))
    sock.settimeout(15)
    sock.connect((HOST, port))
    return sock


def chat(sock: socket.socket, line: str | None) -> str:
    if line is not None:
        sock.sendall(line.encode() + b"\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        data += chunk
        if not chunk or data.endswith(b"\r\n") and data.split(b"\r\n")[-2][3:4] == b" ":
            return data.decode("latin-1")


def starttls(index: int, helo: str, port: int = STARTTLS) -> socket.socket:
    sock = connect(index, port)
    chat(sock, None)
    chat(sock, f"EHLO {helo}")
    chat(sock, "STARTTLS")
    return sock


def client_context(low: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if low:
        ctx.set_ciphers(LOWEST)
    return ctx


def send_mail(tls: ssl.SSLSocket, helo: str) -> None:
    chat(tls, f"EHLO {helo}")
    chat(tls, "MAIL FROM:<peer@example.net>")
    chat(tls, "RCPT TO:<postmaster@mx1.example.com>")
    chat(tls, "DATA")
    chat(tls, "Subject: lab\r\n\r\nhello\r\n.")


def good(index: int) -> None:
    """A modern client that sends one message and says QUIT."""
    helo = "mail.example.org"
    tls = client_context().wrap_socket(starttls(index, helo))
    send_mail(tls, helo)
    chat(tls, "QUIT")
    tls.close()


def rude(index: int) -> None:
    """Sends one message, then hangs up without QUIT or close_notify."""
    helo = "relay.example.org"
    tls = client_context().wrap_socket(starttls(index, helo))
    send_mail(tls, helo)
    tls.close()


def tls10(index: int) -> None:
    """Speaks TLS 1.0 only."""
    ctx = client_context(low=True)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
    _try(ctx, starttls(index, "old.example.net"))


def des3(index: int) -> None:
    """TLS 1.2 with ARIA, which GnuTLS does not implement, as its only suites."""
    ctx = client_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-ARIA128-GCM-SHA256:ARIA128-GCM-SHA256")
    _try(ctx, starttls(index, "legacy.example.net"))


def untrusting(index: int) -> None:
    """Verifies our certificate against the system CAs, which do not know it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    _try(ctx, starttls(index, "strict.example.org"))


def plaintext_smtps(index: int) -> None:
    """Speaks plain SMTP to the TLS-on-connect port."""
    sock = connect(index, SMTPS)
    sock.sendall(b"EHLO scanner.example.net\r\n")
    _drain(sock)


def http_smtps(index: int) -> None:
    """Sends an HTTP request to the TLS-on-connect port."""
    sock = connect(index, SMTPS)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: mx1.example.com\r\n\r\n")
    _drain(sock)


def abort(index: int) -> None:
    """Says STARTTLS and hangs up before the handshake."""
    starttls(index, "probe.example.net").close()


def half_hello(index: int) -> None:
    """Sends half a ClientHello and hangs up."""
    sock = starttls(index, "flaky.example.net")
    sock.sendall(bytes.fromhex("160301020001"))
    time.sleep(0.3)
    sock.close()


def stall(index: int) -> None:
    """Says STARTTLS and then nothing, until Exim gives up."""
    sock = starttls(index, "slow.example.net")
    time.sleep(7)
    sock.close()


def broken_port(index: int) -> None:
    """A normal client on the port whose certificate file is missing."""
    _try(client_context(), starttls(index, "mail.example.org", BROKEN))


def _try(ctx: ssl.SSLContext, sock: socket.socket) -> None:
    try:
        ctx.wrap_socket(sock).close()
    except (ssl.SSLError, OSError):
        sock.close()


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass
    sock.close()


SCENARIOS = {
    f.__name__: f
    for f in (
        good,
        rude,
        tls10,
        des3,
        untrusting,
        plaintext_smtps,
        http_smtps,
        abort,
        half_hello,
        stall,
        broken_port,
    )
}


def main() -> None:
    names = list(SCENARIOS)
    for name in sys.argv[1:] or names:
        SCENARIOS[name](names.index(name) + 1)
        time.sleep(0.5)


if __name__ == "__main__":
    main()
