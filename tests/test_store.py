"""The history store keeps every line's records once, however often logs are read."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smtplogscan import Options, cli, scan, store
from smtplogscan.frame import event_row

from .conftest import SAMPLES

pytest.importorskip("pyarrow")

REAL = SAMPLES / "postfix" / "real-debian-openssl3.log"


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli.app, [*args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _report(folder: Path, *paths: str) -> str:
    return _cli(
        "report", "-f", "json", "--timezone", "UTC", "--store", str(folder), *paths
    )


def _rows(folder: Path) -> dict[str, object]:
    """Every stored event, and the counts summed by key (ranges split them)."""
    import pyarrow.parquet as pq

    rows: dict[str, object] = {}
    for dataset in ("events", "sessions", "deliveries"):
        table = pq.read_table(folder / dataset) if (folder / dataset).exists() else None
        found = table.to_pylist() if table is not None else []
        if dataset == "events":
            rows[dataset] = sorted(
                json.dumps(r, sort_keys=True, default=str) for r in found
            )
            continue
        counts: Counter[str] = Counter()
        for row in found:
            count = row.pop("count")
            counts[json.dumps(row, sort_keys=True, default=str)] += count
        rows[dataset] = counts
    return rows


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*.parquet")}


def test_reading_the_same_logs_twice_stores_nothing_twice(tmp_path, grammars):
    first = _report(tmp_path, str(SAMPLES))
    rows, files = _rows(tmp_path), _files(tmp_path)
    second = _report(tmp_path, str(SAMPLES))
    assert second == first
    assert _rows(tmp_path) == rows and _files(tmp_path) == files

    scanned = scan([str(SAMPLES)], grammars, Options())
    assert len(rows["events"]) == len(scanned.events)
    loaded = store.load(tmp_path, None, None)
    dated = [e for e in scanned.events if e.time is not None]
    assert sorted(json.dumps(event_row(e), sort_keys=True) for e in loaded.events) == (
        sorted(json.dumps(event_row(e), sort_keys=True) for e in dated)
    )
    assert loaded.sessions == scanned.sessions
    assert loaded.deliveries == scanned.deliveries


@pytest.mark.parametrize(
    "path",
    [
        REAL,
        SAMPLES / "exim" / "gnutls-stamped.log",
        SAMPLES / "exchange" / "SEND2019110406-1.LOG",
    ],
    ids=lambda p: p.parent.name,
)
def test_a_grown_log_adds_only_its_new_lines(tmp_path, path):
    # Postfix and Exim logs are read from where the stored lines end (with the
    # overlap before it), the others whole.
    lines = path.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    log = tmp_path / "mail.log"
    log.write_bytes(b"".join(lines[:half]) + lines[half][:20])  # a line half written
    grown, whole = tmp_path / "grown", tmp_path / "whole"
    _report(grown, "--year", "2026", str(log))
    assert (
        json.loads((grown / store.MANIFEST).read_text())["inputs"][0]["lines"] == half
    )

    log.write_bytes(b"".join(lines))
    _report(grown, "--year", "2026", str(log))
    added = {f for f in _files(grown) if f.split("/")[-1].startswith(_digest(grown))}
    assert any(f.endswith(f"-{half + 1}-{len(lines)}.parquet") for f in added)

    _report(whole, "--year", "2026", str(log))
    assert _rows(grown) == _rows(whole)


def test_a_rotated_and_compressed_log_is_known_by_its_content(tmp_path):
    log = tmp_path / "logs" / "mail.log"
    log.parent.mkdir()
    log.write_bytes(REAL.read_bytes())
    folder = tmp_path / "store"
    _report(folder, "--year", "2026", str(log))
    rows = _rows(folder)

    rotated = log.with_name("mail.log.2.gz")
    rotated.write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    _report(folder, "--year", "2026", str(rotated))
    assert _rows(folder) == rows


def test_compare_to_from_the_store_equals_reading_the_logs(tmp_path, monkeypatch):
    window = ["--since", "2026-12-03", "--until", "2026-12-04"]
    period = ["--compare-to", "2019-11-04..2026-12-03"]
    from_logs = _comparison(*window, *period, str(SAMPLES))
    _report(tmp_path, str(SAMPLES))

    # Only the logs of the window: the period's failures are in the store alone.
    recent = [
        p
        for p in sorted(SAMPLES.rglob("*"))
        if p.suffix in (".log", ".json")
        and "expected" not in p.name
        and p.parent.name != "exchange"
        and p.name != "openssl.log"
    ]
    loads = []
    monkeypatch.setattr(store, "load", _spy(store.load, loads))
    from_store = _comparison(
        "--store", str(tmp_path), *window, *period, *map(str, recent)
    )
    assert loads, "the baseline was not taken from the store"
    assert from_store == from_logs
    assert from_logs["gone"], "the period must hold failures the window does not"

    without = _comparison(*window, *period, *map(str, recent))
    assert without != from_logs


def _comparison(*args: str) -> dict[str, object]:
    text = _cli("report", "-f", "json", "--timezone", "UTC", *args)
    comparison: dict[str, object] = json.loads(text)["comparison"]
    return comparison


def _spy(function, calls):
    def spy(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return spy


def _digest(folder: Path) -> str:
    return json.loads((folder / store.MANIFEST).read_text())["inputs"][0][
        "head_sha256"
    ][:16]
