#!/usr/bin/env python3
"""Run a small loopback SMTP server whose STARTTLS behaviour is chosen per run.

Postfix's smtp client delivers to these servers, so that the TLS failures it logs
come from real handshakes against badly configured peers. The server speaks just
enough SMTP for a delivery (EHLO/HELO, STARTTLS, MAIL, RCPT, DATA, RSET, NOOP,
QUIT) and throws the mail away.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import ssl
import sys
import threading

LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
LOOPBACK_V6 = ipaddress.ip_address("::1")

VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="loopback address")
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--name", required=True, help="name in the greeting")
    parser.add_argument(
        "--starttls",
        choices=("offer", "absent", "refuse"),
        default="offer",
        help="offer STARTTLS, leave it out of EHLO, or answer it with 454",
    )
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--dhparam", help="finite-field DH group to offer")
    parser.add_argument("--ciphers", help="OpenSSL cipher string (TLS <= 1.2)")
    parser.add_argument("--min-version", choices=VERSIONS)
    parser.add_argument("--max-version", choices=VERSIONS)
    return parser.parse_args(argv)


def check_loopback(address: str) -> None:
    """Refuse to listen anywhere but on the loopback interface."""
    ip = ipaddress.ip_address(address)
    if ip != LOOPBACK_V6 and ip not in LOOPBACK_V4:
        sys.exit(f"peer_server: {address} is not a loopback address")


def make_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """Build the server-side TLS context, weak on purpose where asked."""
    if args.starttls != "offer":
        return None

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # The cipher string first: an "@SECLEVEL=0" in it must be in force before
    # a weak key or a SHA-1 certificate is loaded, or loading fails.
    if args.ciphers:
        context.set_ciphers(args.ciphers)
    context.load_cert_chain(args.cert, args.key)
    if args.dhparam:
        context.load_dh_params(args.dhparam)
    if args.min_version:
        context.minimum_version = VERSIONS[args.min_version]
    if args.max_version:
        context.maximum_version = VERSIONS[args.max_version]
    return context


class Session:
    """One SMTP conversation, in plaintext until STARTTLS succeeds."""

    def __init__(
        self,
        sock: socket.socket,
        args: argparse.Namespace,
        context: ssl.SSLContext | None,
    ) -> None:
        self.sock = sock
        self.args = args
        self.context = context
        self.reader = sock.makefile("rb")
        self.in_tls = False

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("ascii") + b"\r\n")

    def ehlo_lines(self) -> list[str]:
        lines = [self.args.name, "PIPELINING", "SIZE 10240000", "8BITMIME"]
        if not self.in_tls and self.args.starttls != "absent":
            lines.append("STARTTLS")
        return lines

    def run(self) -> None:
        self.send(f"220 {self.args.name} ESMTP peer_server")
        while True:
            raw = self.reader.readline()
            if not raw:
                return
            verb = raw.decode("ascii", "replace").strip().split(" ")[0].upper()
            if not self.handle(verb):
                return

    def handle(self, verb: str) -> bool:
        if verb == "EHLO":
            lines = self.ehlo_lines()
            for line in lines[:-1]:
                self.send(f"250-{line}")
            self.send(f"250 {lines[-1]}")
        elif verb == "HELO":
            self.send(f"250 {self.args.name}")
        elif verb == "STARTTLS":
            return self.starttls()
        elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
            self.send("250 2.0.0 Ok")
        elif verb == "DATA":
            self.send("354 End data with <CR><LF>.<CR><LF>")
            while True:
                line = self.reader.readline()
                if not line or line.rstrip(b"\r\n") == b".":
                    break
            self.send("250 2.0.0 Ok: queued as PEER")
        elif verb == "QUIT":
            self.send("221 2.0.0 Bye")
            return False
        else:
            self.send("502 5.5.2 Error: command not recognized")
        return True

    def starttls(self) -> bool:
        if self.args.starttls == "refuse" or self.context is None:
            self.send("454 4.7.0 TLS not available due to local problem")
            return True

        self.send("220 2.0.0 Ready to start TLS")
        try:
            self.sock = self.context.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            print(f"{self.args.name}: handshake failed: {exc}", file=sys.stderr)
            return False

        self.reader = self.sock.makefile("rb")
        self.in_tls = True
        return True


def serve(args: argparse.Namespace) -> None:
    """Accept connections until killed, one thread per connection."""
    check_loopback(args.listen)
    context = make_context(args)
    family = socket.AF_INET6 if ":" in args.listen else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.listen, args.port))
    listener.listen(16)

    while True:
        conn, _ = listener.accept()
        conn.settimeout(60)
        session = Session(conn, args, context)
        threading.Thread(target=close_after, args=(session,), daemon=True).start()


def close_after(session: Session) -> None:
    try:
        session.run()
    except (OSError, ssl.SSLError):
        pass
    finally:
        session.sock.close()


if __name__ == "__main__":
    serve(parse_args(sys.argv[1:]))
