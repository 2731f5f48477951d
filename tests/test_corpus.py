"""Real lines that administrators published: every grammar survives all of them,
and the Postfix grammar names each published failure as its label does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smtplogscan import Options, Stream, scan
from smtplogscan.registry import load

from .conftest import published

ROWS = published()
REGISTRY = load()
# Shapes that carry a Postfix header; "message-only" rows are fragments published
# without one, which no real log holds.
POSTFIX = Options(grammar="postfix")
POSTFIX_SHAPES = {
    "syslog-traditional",
    "syslog-rfc3339",
    "syslog-iso8601-offset-nocolon",
    "docker-postfix-rfc3339-level",
    "syslog-stripped",
}


@pytest.mark.parametrize("name", sorted(REGISTRY.grammars))
def test_every_grammar_survives_every_published_line(name, tmp_path):
    grammar = REGISTRY.grammars[name].grammar
    assert 0 <= grammar.sniff([r["line"] for r in ROWS]) <= 1
    reader = grammar(Stream("corpus", datetime(2026, 12, 3, tzinfo=UTC)))
    for lineno, row in enumerate(ROWS, start=1):
        reader.feed(row["line"], lineno)  # must not raise
    reader.finish()


def test_the_whole_corpus_as_one_file(tmp_path):
    path = tmp_path / "corpus.log"
    path.write_text("".join(r["line"] + "\n" for r in ROWS), encoding="utf-8")
    for name in REGISTRY.grammars:
        result = scan([str(path)], REGISTRY, Options(grammar=name))
        assert not result.errors
        assert result.counts.lines == len(ROWS)


def _postfix_rows() -> list[dict[str, object]]:
    return [r for r in ROWS if r["mta"] == "postfix"]


def test_postfix_primaries_are_found_with_their_kind(tmp_path):
    rows = _postfix_rows()
    path = tmp_path / "postfix.log"
    path.write_text("".join(r["line"] + "\n" for r in rows), encoding="utf-8")
    result = scan([str(path)], REGISTRY, POSTFIX)
    found = {int(e.source.rsplit(":", 1)[1]): e for e in result.events}

    checked = 0
    for lineno, row in enumerate(rows, start=1):
        if not row["primary"] or row["format"] not in POSTFIX_SHAPES:
            continue
        if row["kind"] == "summary-line":
            continue  # the group's cause is on another line
        event = found.get(lineno)
        assert event is not None, f"line {lineno}: {row['line']}"
        assert str(event.kind) == row["kind"], f"line {lineno}: {row['line']}"
        if row["direction"] in ("inbound", "outbound"):
            assert str(event.direction) == row["direction"], row["line"]
        checked += 1
    assert checked >= 20


def test_postfix_finds_nothing_in_lines_that_are_no_failure(tmp_path):
    rows = _postfix_rows()
    path = tmp_path / "postfix.log"
    path.write_text("".join(r["line"] + "\n" for r in rows), encoding="utf-8")
    result = scan([str(path)], REGISTRY, POSTFIX)
    for event in result.events:
        row = rows[int(event.source.rsplit(":", 1)[1]) - 1]
        assert row["is_tls_failure"], row["line"]
