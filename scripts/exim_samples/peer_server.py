"""Loopback SMTP servers with broken TLS, for Exim to deliver to.

Usage: peer_server.py CERT_DIR MODE:PORT [MODE:PORT ...]

Each MODE listens on 127.0.0.1:PORT and behaves like one kind of remote MX:

    good      STARTTLS with a CA-signed certificate (the success case)
    rude      as good, but closes TLS after QUIT without a close_notify
    tls10     TLS 1.0 only
    dh512     TLS 1.2, DHE suites only, a 512-bit DH group
    dh1024    TLS 1.2, DHE suites only, a 1024-bit DH group
    self      a self-signed certificate
    expired   a certificate that expired in 2021
    weak      a certificate with a 1024-bit RSA key
    ccert     demands a client certificate Exim does not have
    notls     does not offer STARTTLS
    refuse    offers STARTTLS and answers it with 454
    abort     answers STARTTLS with 220 and hangs up
    reject    good TLS, then rejects the recipient with 550

Every mode accepts mail in plaintext when the client does not ask for TLS, so
Exim's fallback to an unencrypted delivery shows up in its log.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import sys
import threading

CERTS = ""
SECLEVEL0 = "DEFAULT:@SECLEVEL=0"


def context(mode: str) -> ssl.SSLContext:
    """Return the server-side TLS context of one mode."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert = {"self": "self", "expired": "expired", "weak": "weak"}.get(mode, "good")
    if mode in {"tls10", "dh512", "dh1024", "weak"}:
        ctx.set_ciphers(SECLEVEL0)
    ctx.load_cert_chain(f"{CERTS}/{cert}.pem", f"{CERTS}/{cert}.key")
    if mode == "tls10":
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    if mode.startswith("dh"):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(
            "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:@SECLEVEL=0"
        )
        ctx.load_dh_params(f"{CERTS}/{mode}.pem")
    if mode == "ccert":
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(f"{CERTS}/ca.pem")
    return ctx


class Session(socketserver.StreamRequestHandler):
    """One SMTP session, plaintext until STARTTLS."""

    mode = "good"

    def handle(self) -> None:
        self.sock: socket.socket = self.request
        self.buf = b""
        self.send("220 peer ESMTP lab")
        while (line := self.line()) is not None:
            verb = line[:4].upper()
            if verb in {"EHLO", "HELO"}:
                self.ehlo()
            elif verb == "STAR":
                if not self.starttls():
                    return
            elif verb == "MAIL":
                self.send("250 OK")
            elif verb == "RCPT":
                self.send(
                    "550 5.1.1 no such user" if self.mode == "reject" else "250 OK"
                )
            elif verb == "DATA":
                self.send("354 go on")
                while (body := self.line()) is not None and body != ".":
                    pass
                self.send("250 OK queued")
            elif verb == "QUIT":
                self.send("221 bye")
                self.quit()
                return
            else:
                self.send("250 OK")

    def ehlo(self) -> None:
        tls = isinstance(self.sock, ssl.SSLSocket)
        offer = not tls and self.mode != "notls"
        self.send(
            "250-peer" + ("\r\n250-STARTTLS" if offer else "") + "\r\n250 8BITMIME"
        )

    def starttls(self) -> bool:
        if self.mode == "refuse":
            self.send("454 4.7.0 TLS not available due to local problem")
            return True
        self.send("220 go ahead")
        if self.mode == "abort":
            self.sock.close()
            return False
        try:
            self.sock = context(self.mode).wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError):
            return False
        self.buf = b""
        return True

    def quit(self) -> None:
        if isinstance(self.sock, ssl.SSLSocket) and self.mode != "rude":
            try:
                self.sock.unwrap()
            except (ssl.SSLError, OSError):
                pass
        self.sock.close()

    def send(self, text: str) -> None:
        try:
            self.sock.sendall(text.encode() + b"\r\n")
        except OSError:
            pass

    def line(self) -> str | None:
        while b"\r\n" not in self.buf:
            try:
                chunk = self.sock.recv(4096)
            except (OSError, ssl.SSLError):
                return None
            if not chunk:
                return None
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\r\n", 1)
        return raw.decode("latin-1")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(mode: str, port: int) -> None:
    handler = type(f"Session_{mode}", (Session,), {"mode": mode})
    Server(("127.0.0.1", port), handler).serve_forever()


def main() -> None:
    global CERTS
    CERTS = sys.argv[1]
    for spec in sys.argv[2:]:
        mode, port = spec.split(":")
        threading.Thread(target=serve, args=(mode, int(port)), daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
