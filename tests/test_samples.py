"""Every sample log gives exactly the events worked out by hand beside it.

A sample ``NAME.log`` (or any other ending) has ``NAME.expected.jsonl``: one
object per failure, and may have ``NAME.expected-successes.json``. The format is
detected, as a user's run would detect it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smtplogscan import scan

from .conftest import SAMPLES

FIELDS = (
    "line",
    "direction",
    "peer_name",
    "peer_addr",
    "peer_port",
    "kind",
    "culprit",
    "outcome",
)


def _samples() -> list[tuple[Path, Path]]:
    pairs = []
    for expected in sorted(SAMPLES.rglob("*.expected.jsonl")):
        stem = expected.name.removesuffix(".expected.jsonl")
        logs = [
            p
            for p in expected.parent.iterdir()
            if p.name.startswith(stem + ".") and ".expected" not in p.name
        ]
        assert len(logs) == 1, f"{expected}: expected one log beside it, found {logs}"
        pairs.append((logs[0], expected))
    return pairs


SAMPLE_PAIRS = _samples()


def _row(event) -> dict[str, object]:
    return {
        "line": int(event.source.rsplit(":", 1)[1]),
        "direction": str(event.direction),
        "peer_name": event.peer.name,
        "peer_addr": event.peer.addr,
        "peer_port": event.peer.port,
        "kind": str(event.kind),
        "culprit": str(event.culprit),
        "outcome": str(event.outcome),
    }


def test_there_are_samples():
    assert len(SAMPLE_PAIRS) >= 4


@pytest.mark.parametrize(
    ("log", "expected"),
    SAMPLE_PAIRS,
    ids=[p[0].relative_to(SAMPLES).as_posix() for p in SAMPLE_PAIRS],
)
def test_sample_events_equal_the_hand_worked_ones(grammars, log, expected):
    result = scan([str(log)], grammars)
    assert not result.errors
    assert result.counts.unmatched == 0, result.counts.unmatched_examples
    want = [
        json.loads(line) for line in expected.read_text().splitlines() if line.strip()
    ]
    want = [{k: w.get(k) for k in FIELDS} for w in want]
    got = sorted((_row(e) for e in result.events), key=lambda r: r["line"])
    assert got == sorted(want, key=lambda r: r["line"])

    successes = expected.with_name(
        expected.name.replace(".expected.jsonl", ".expected-successes.json")
    )
    if successes.exists():
        counts = json.loads(successes.read_text())
        seen = {"inbound": 0, "outbound": 0}
        for key, n in result.sessions.items():
            seen[key.direction] = seen.get(key.direction, 0) + n
        assert seen == {"inbound": counts["inbound"], "outbound": counts["outbound"]}
