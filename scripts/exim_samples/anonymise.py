"""Give the lab's loopback peers documentation names and addresses.

Reads an Exim mainlog of the lab on stdin and writes it to stdout with:

* inbound clients, told apart by their fixed source port 410NN, moved to
  198.51.100.NN (the port is kept);
* outbound peers, told apart by the message's recipient domain (``mode.may.test``
  and the lab's ports file), named ``mx.MODE.example.net`` at 203.0.113.PP on
  port 25, where PP is the lab port less 2600;
* our own listening address, 127.0.0.1, moved to 192.0.2.25;
* lab paths moved to /etc/exim4/.

Every other byte of every line is kept.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MSGID = re.compile(
    r"(?:\] |\d\d:\d\d(?: [+-]\d{4})? )"
    r"([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}) "
)
RECIPIENT = re.compile(r" for \S+@(\S+)$")
INBOUND = re.compile(r"\[127\.0\.0\.1\]:410(\d\d)")
LAB_DOMAIN = re.compile(r"@([a-z0-9.]+)\.test\b")


def load_ports(path: Path) -> dict[str, int]:
    ports = {}
    for row in path.read_text().splitlines():
        domain, _, port = row.partition(":")
        ports[domain.strip()] = int(port)
    return ports


def peer(domain: str, ports: dict[str, int]) -> tuple[str, str]:
    port = ports[domain]
    mode = domain.split(".")[0]
    return f"mx.{mode}.example.net", f"203.0.113.{port - 2600}"


def rewrite(line: str, domains: dict[str, str], ports: dict[str, int]) -> str:
    match = MSGID.search(line)
    if match:
        msgid = match[1]
        if (rcpt := RECIPIENT.search(line)) and rcpt[1] in ports:
            domains[msgid] = rcpt[1]
        if msgid in domains:
            name, addr = peer(domains[msgid], ports)
            line = line.replace("localhost [127.0.0.1]", f"{name} [127.0.0.1]")
            line = re.sub(r"\[127\.0\.0\.1\]:26\d\d", f"[{addr}]:25", line)
            line = line.replace("[127.0.0.1]", f"[{addr}]")
            line = line.replace('DN="CN=localhost"', f'DN="CN={name}"')
    line = INBOUND.sub(lambda m: f"[198.51.100.{int(m[1])}]:410{m[1]}", line)
    line = LAB_DOMAIN.sub(lambda m: "@" + m[1].replace(".", "-") + ".example.net", line)
    line = line.replace("127.0.0.1", "192.0.2.25")
    return line.replace("/tmp/exim-lab/certs/", "/etc/exim4/")


def main() -> None:
    lab = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/exim-lab")
    ports = load_ports(lab / "ports")
    domains: dict[str, str] = {}
    for line in sys.stdin:
        sys.stdout.write(rewrite(line.rstrip("\n"), domains, ports) + "\n")


if __name__ == "__main__":
    main()
