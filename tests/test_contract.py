"""One contract, checked over every registered grammar and every sample.

A grammar must sniff its own samples high and the others' low, and its prefilter
must lose nothing: feeding it every line of a sample gives exactly what the
engine's filtered scan gives.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from smtplogscan import Event, Grammar, ScanResult, Stream, scan
from smtplogscan.grammars.postfix import PostfixGrammar
from smtplogscan.registry import Registry, load
from smtplogscan.results import settle_bounces
from smtplogscan.scan import detect

from .conftest import SAMPLES

REGISTRY = load()
LOGS = sorted(
    p for p in SAMPLES.rglob("*") if p.is_file() and ".expected" not in p.name
)


def _owner(log: Path) -> type[Grammar]:
    head = log.read_text(encoding="utf-8", errors="replace").splitlines()[:64]
    return detect(head, REGISTRY, str(log))


def test_builtin_grammars_load_from_entry_points():
    assert not REGISTRY.failures, REGISTRY.failures
    assert {"postfix", "exim", "exchange", "exchange-tracking"} <= set(
        REGISTRY.grammars
    )
    for name, loaded in REGISTRY.grammars.items():
        grammar = loaded.grammar
        assert grammar.name == name
        assert grammar.mta and grammar.formats and grammar.prefilter
        assert "from smtplogscan" in loaded.origin


def test_a_session_pattern_cut_without_its_groups_is_skipped():
    # The tail of a Postfix session line names its peer "name", not "peer_name".
    tail = re.compile(rb"TLS connection established (?P<way>from|to) (?P<name>\S+)")
    registry = Registry()
    registry.add(
        type("Uncut", (PostfixGrammar,), {"name": "uncut", "session_tail": tail}),
        "uncut.py",
    )
    assert "uncut" not in registry.grammars
    (failure,) = registry.failures
    assert str(failure).startswith("grammar plugin uncut.py skipped: session_head")
    assert "session_tail the groups way, peer_name, peer_addr" in str(failure)


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.relative_to(SAMPLES).as_posix())
def test_each_sample_sniffs_highest_for_its_own_grammar(log):
    folder = log.relative_to(SAMPLES).parts[0]
    head = log.read_text(encoding="utf-8-sig", errors="replace").splitlines()[:64]
    scores = {n: g.grammar.sniff(head) for n, g in REGISTRY.grammars.items()}
    best = max(scores, key=lambda n: scores[n])
    assert best.startswith(folder), scores
    assert scores[best] >= 0.5
    others = [s for n, s in scores.items() if not n.startswith(folder)]
    assert max(others) < 0.2, scores


def _stream(log: Path) -> Stream:
    mtime = datetime.fromtimestamp(log.stat().st_mtime, UTC)
    return Stream(str(log), mtime)


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.relative_to(SAMPLES).as_posix())
def test_prefilter_loses_nothing(log):
    grammar = _owner(log)(_stream(log))
    unfiltered = ScanResult()
    text = log.read_bytes().decode("utf-8", "replace")
    for lineno, line in enumerate(text.splitlines(), start=1):
        unfiltered.keep(grammar.feed(line.rstrip("\r"), lineno) or [])
    unfiltered.keep(grammar.finish())
    settle_bounces(unfiltered)

    result = scan([str(log)], REGISTRY)
    assert sorted(map(_key, unfiltered.events)) == sorted(map(_key, result.events))
    assert unfiltered.sessions == result.sessions
    assert unfiltered.deliveries == result.deliveries


def _key(event: Event) -> str:
    row = {
        "source": event.source.rsplit(":", 1)[1],
        "kind": str(event.kind),
        "peer": event.peer.addr,
        "detail": event.detail,
        "outcome": str(event.outcome),
    }
    return json.dumps(row, sort_keys=True)
