"""The HTML report: self-contained, escaped, overridable, and drawn by a real browser.

The browser tests need Debian's `chromium`. A missing browser fails them, so that a
CI image without it is noticed; set SMTPLOGSCAN_NO_BROWSER=1 to skip them instead.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from smtplogscan import charts
from smtplogscan.records import Direction, Event, Kind, Peer

from .conftest import SAMPLES

SYSLOG = SAMPLES / "postfix" / "openssl11-syslog.log"
PINNED = ("--timezone", "UTC", "--year", "2026")
NO_BROWSER = "SMTPLOGSCAN_NO_BROWSER"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE_LOG = f"""\
Dec  2 10:00:01 mx1 postfix/smtpd[3102]: connect from {SCRIPT}[192.0.2.66]
Dec  2 10:00:01 mx1 postfix/smtpd[3102]: SSL_accept error from {SCRIPT}[192.0.2.66]: -1
Dec  2 10:00:01 mx1 postfix/smtpd[3102]: warning: TLS library problem: error:0A000102:SSL routines::{IMG}
Dec  2 10:00:01 mx1 postfix/smtpd[3102]: lost connection after STARTTLS from {SCRIPT}[192.0.2.66]
"""  # noqa: E501


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtplogscan", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def html_report(path: Path, *args: str) -> str:
    done = run("report", "--format", "html", *PINNED, *args, str(path))
    assert done.returncode == 0, done.stderr
    return done.stdout


class Elements(HTMLParser):
    """Collect every start tag with its attributes, and the text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


def bar_totals(page: Elements, table_id: str) -> dict[str, int]:
    """Return {label: total} of the bars in the chart `table_id`."""
    inside, totals = False, {}
    for tag, attrs in page.tags:
        if tag == "table" and attrs.get("class") == "chart":
            inside = attrs.get("id") == table_id
        elif inside and tag == "tr" and "data-label" in attrs:
            totals[attrs["data-label"]] = int(attrs["data-total"])
    return totals


def external_references(page: Elements, html: str) -> list[str]:
    """Return every attribute or CSS rule that would load something from elsewhere."""
    found = [
        f"{tag} {name}={value}"
        for tag, attrs in page.tags
        for name, value in attrs.items()
        if name in ("src", "href", "srcset", "action", "poster", "data")
        and not value.startswith("#")
    ]
    found += [tag for tag, _ in page.tags if tag in ("script", "img", "link", "iframe")]
    lowered = html.lower()
    found += [
        word for word in ("url(", "@import", "http://", "https://") if word in lowered
    ]
    return found


def test_report_is_self_contained_and_holds_every_section() -> None:
    html = html_report(SYSLOG)
    page = parse(html)

    assert external_references(page, html) == []
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert {"verdict", "timeline", "top-peers", "peers", "kinds", "causes"} <= ids
    assert {"peer-table", "timeline-chart", "peers-chart", "kinds-chart"} <= ids
    text = " ".join(page.text)
    assert "7 TLS failure(s) with 7 peer(s)" in text
    assert "went out in plaintext" in text
    assert "Note for the peer:" in text and "Change (postfix):" in text


def test_charts_hold_the_numbers_of_the_json_report() -> None:
    body = json.loads(run("report", "-f", "json", *PINNED, str(SYSLOG)).stdout)
    page = parse(html_report(SYSLOG))

    timeline = bar_totals(page, "timeline-chart")
    assert timeline == {"12-02 23:00": 2, "12-03 00:00": 5}
    assert sum(timeline.values()) == body["totals"]["failures"]
    peers = bar_totals(page, "peers-chart")
    assert peers == {charts.peer_name(p): p["failures"] for p in body["peers"]}
    kinds = bar_totals(page, "kinds-chart")
    assert kinds == {k["kind"]: k["failures"] for k in body["kinds"]}


def test_hostile_names_are_shown_as_text(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    log.write_text(HOSTILE_LOG, encoding="utf-8")

    html = html_report(log)
    page = parse(html)

    assert SCRIPT not in html and IMG not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert [t for t, _ in page.tags if t in ("script", "img")] == []
    assert not any(name.startswith("on") for _, a in page.tags for name in a)
    text = "".join(page.text)
    assert SCRIPT in text and IMG in text


def test_hostile_values_stay_inside_attributes() -> None:
    label = '" onmouseover="alert(1)'
    bar = charts.Bar(label, 1, [charts.Segment("x", 1, "100.0%", "#000000")])
    chart = charts.Chart("t", [bar])
    from smtplogscan.report import environment

    env = environment(html=True)
    macro = env.get_template("_chart.html.j2").module.chart  # type: ignore[attr-defined]
    page = parse(str(macro(chart, "c")))

    rows = [a for t, a in page.tags if t == "tr" and "data-label" in a]
    assert rows[0]["data-label"] == label
    assert not any(name.startswith("on") for _, a in page.tags for name in a)


def test_template_dir_overrides_the_html_template(tmp_path: Path) -> None:
    (tmp_path / "report.html.j2").write_text(
        "<p>{{ a.totals.failures }} from {{ a.peers[0].peer_name }}</p>\n",
        encoding="utf-8",
    )
    log = tmp_path / "mail.log"
    log.write_text(HOSTILE_LOG, encoding="utf-8")

    html = html_report(log, "--template-dir", str(tmp_path))

    assert html == "<p>1 from &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"


def test_timeline_fills_empty_hours_and_uses_the_analysis_one_when_present() -> None:
    from datetime import UTC, datetime

    def event(hour: int, kind: Kind) -> Event:
        when = datetime(2026, 12, 2, hour, 5, tzinfo=UTC)
        return Event(when, "mx1", "postfix", Direction.INBOUND, Peer(addr="192.0.2.1"),
                     kind, "x", "f:1")  # fmt: skip

    events = [event(1, Kind.NOT_TLS), event(1, Kind.OTHER), event(4, Kind.NOT_TLS)]
    built = charts.build_timeline(events)
    assert built["bucket"] == "hour"
    assert [r["failures"] for r in built["rows"]] == [2, 0, 0, 1]
    assert built["rows"][0]["kinds"] == {"not_tls": 1, "other": 1}

    class WithTimeline:
        timeline = {"bucket": "day", "zone": "UTC", "rows": [], "spikes": []}

    assert charts.timeline(WithTimeline(), events)["bucket"] == "day"


# The browser: what a postmaster's screen shows.


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get(NO_BROWSER) == "1":
        pytest.skip(f"chromium is not installed and {NO_BROWSER}=1")
    pytest.fail(
        f"chromium is not installed: apt-get install chromium, or set {NO_BROWSER}=1"
    )


def browse(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Open `page` in headless chromium, with every name resolving to nothing."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # the tests may run as root, where the sandbox refuses
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp / 'profile'}",
        *args,
        page.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """Render the report of all sample logs once, and let chromium draw it."""
    tmp = tmp_path_factory.mktemp("browser")
    page = tmp / "report.html"
    done = run("report", "-f", "html", *PINNED, "-o", str(page), str(SAMPLES))
    assert done.returncode == 0, done.stderr
    png, netlog = tmp / "report.png", tmp / "netlog.json"
    browse(page, tmp, "--window-size=1000,1400", f"--screenshot={png}",
           f"--log-net-log={netlog}", "--net-log-capture-mode=Everything")  # fmt: skip
    dom = browse(page, tmp, "--dump-dom").stdout
    return {"page": page, "png": png, "netlog": netlog, "dom": dom}


def test_browser_renders_the_peer_table_and_the_charts(
    rendered: dict[str, object],
) -> None:
    body = json.loads(run("report", "-f", "json", *PINNED, str(SAMPLES)).stdout)
    dom = parse(str(rendered["dom"]))

    ids = {attrs.get("id") for _, attrs in dom.tags}
    assert {"peer-table", "timeline-chart", "peers-chart", "kinds-chart"} <= ids
    in_table = [a for t, a in dom.tags if t == "tr"]
    assert len(in_table) > len(body["peers"])
    peers = bar_totals(dom, "peers-chart")
    assert list(peers.values()) == [p["failures"] for p in body["peers"][:10]]
    assert sum(bar_totals(dom, "timeline-chart").values()) == body["totals"]["failures"]
    assert f"{body['totals']['failures']} TLS failure(s)" in " ".join(dom.text)


def test_browser_draws_the_bars(rendered: dict[str, object]) -> None:
    png = Path(str(rendered["png"])).read_bytes()

    width, height, colours = png_colours(png)

    assert (width, height) == (1000, 1400)
    assert len(png) > 20_000
    assert len(colours) > 50  # text, badges and bars, not a blank page
    drawn = {kind for kind, hex_ in charts.KIND_COLOURS.items() if rgb(hex_) in colours}
    assert {"dh_key_too_small", "protocol_version", "cert_untrusted"} <= drawn


def test_browser_requests_nothing_from_the_network(rendered: dict[str, object]) -> None:
    assert page_requests(Path(str(rendered["netlog"]))) == []


def test_the_network_check_sees_a_page_that_loads_things(tmp_path: Path) -> None:
    page, netlog = tmp_path / "bad.html", tmp_path / "netlog.json"
    page.write_text(
        '<link rel="stylesheet" href="https://fonts.example.net/a.css">'
        '<img src="http://img.example.net/b.png">',
        encoding="utf-8",
    )

    browse(page, tmp_path, f"--log-net-log={netlog}", "--dump-dom")

    assert sorted(page_requests(netlog)) == [
        "http://img.example.net/b.png",
        "https://fonts.example.net/a.css",
    ]


def page_requests(path: Path) -> list[str]:
    """Return the URLs a page asked for, from a chromium net log.

    The browser's own background fetches (clock, updates) carry no page origin
    and are left out; the resolver rules send them nowhere anyway.
    """
    text = path.read_text(encoding="utf-8").rstrip().rstrip(",")
    if not text.endswith("}"):  # a log whose browser was stopped lacks its closing
        text += "]}"
    log = json.loads(text)
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if event.get("type") != start or "url" not in params:
            continue  # not a request, or the end of one
        if params.get("initiator") != "not an origin":
            urls.append(str(params["url"]))
    return urls


def rgb(hex_: str) -> tuple[int, int, int]:
    value = int(hex_.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def png_colours(data: bytes) -> tuple[int, int, set[tuple[int, int, int]]]:
    """Decode an 8-bit RGB or RGBA PNG and return its size and its set of colours."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + size]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        pos += 12 + size
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour_type in (2, 6), (depth, colour_type)
    step = 3 if colour_type == 2 else 4
    rows = unfilter(zlib.decompress(idat), width * step, height, step)
    colours = {
        tuple(row[i : i + 3]) for row in rows[::4] for i in range(0, len(row), step * 2)
    }
    return width, height, colours  # type: ignore[return-value]


def unfilter(raw: bytes, stride: int, height: int, step: int) -> list[bytearray]:
    """Undo the PNG scanline filters (RFC 2083, section 6)."""
    rows: list[bytearray] = []
    prior = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = prior[i], prior[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + paeth(left, up, corner)) & 0xFF
        rows.append(line)
        prior = line
    return rows


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c
