"""Inputs: compression by content, rotation order, folders, globs, odd bytes."""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path

import pytest

from smtplogscan import Kind, scan
from smtplogscan.errors import InputError
from smtplogscan.sources import expand, rotation_order

LINES = (
    "Dec  3 15:01:02 mx1 postfix/smtpd[7]: SSL_accept error from a.example.org[192.0.2.7]: -1\n"
    "Dec  3 15:01:02 mx1 postfix/smtpd[7]: warning: TLS library problem: "
    "error:0A000102:SSL routines::unsupported protocol:ssl/statem/statem_srvr.c:1657:\n"
)


@pytest.mark.parametrize(
    "compress",
    [gzip.compress, bz2.compress, lzma.compress, lambda b: b],
    ids=["gzip", "bzip2", "xz", "plain"],
)
def test_compression_is_recognised_by_content_not_name(tmp_path, grammars, compress):
    path = tmp_path / "mail.log"  # no telling suffix on purpose
    path.write_bytes(compress(LINES.encode()))
    result = scan([str(path)], grammars)
    assert not result.errors
    assert [e.kind for e in result.events] == [Kind.PROTOCOL_VERSION]


def test_rotated_logs_are_read_oldest_first(tmp_path):
    names = [
        "mail.log",
        "mail.log.1",
        "mail.log.2.gz",
        "mail.log.10.gz",
        "mail.log.3.xz",
    ]
    paths = [tmp_path / n for n in names]
    ordered = [p.name for p in rotation_order(paths)]
    assert ordered == [
        "mail.log.10.gz",
        "mail.log.3.xz",
        "mail.log.2.gz",
        "mail.log.1",
        "mail.log",
    ]


def test_dated_rotations_come_before_the_live_file(tmp_path):
    names = ["mail.log", "mail.log-20261202.gz", "mail.log-20261130"]
    ordered = [p.name for p in rotation_order([tmp_path / n for n in names])]
    assert ordered == ["mail.log-20261130", "mail.log-20261202.gz", "mail.log"]


def test_folder_glob_and_missing_paths(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "mail.log").write_text(LINES)
    (tmp_path / "logs" / "mail.log.1").write_text(LINES)
    inputs, errors = expand(
        [
            str(tmp_path / "logs"),
            str(tmp_path / "logs" / "mail.log*"),
            str(tmp_path / "nope"),
        ]
    )
    assert [Path(i.name).name for i in inputs] == ["mail.log.1", "mail.log"] * 2
    assert [i.found for i in inputs] == [True, True, False, False]
    (error,) = errors
    assert isinstance(error, InputError)
    assert "nope" in str(error)


def test_missing_file_is_named_and_the_others_still_read(tmp_path, grammars):
    good = tmp_path / "mail.log"
    good.write_text(LINES)
    result = scan([str(tmp_path / "missing.log"), str(good)], grammars)
    assert len(result.events) == 1
    assert "missing.log" in str(result.errors[0])


def test_files_in_folders_that_are_no_mail_log_are_skipped(tmp_path, grammars):
    (tmp_path / "mail.log").write_text(LINES)
    (tmp_path / "notes.txt").write_text("shopping list\n")
    result = scan([str(tmp_path)], grammars)
    assert not result.errors
    assert result.skipped == [str(tmp_path / "notes.txt")]
    assert len(result.events) == 1


def test_named_file_that_no_grammar_knows_is_an_error(tmp_path, grammars):
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n")
    result = scan([str(path)], grammars)
    assert "no grammar recognises" in str(result.errors[0])


def test_invalid_utf8_nul_and_crlf_never_stop_a_scan(tmp_path, grammars):
    noise = b"Dec  3 15:01:01 mx1 postfix/smtpd[7]: connect from \xff\xfe\x00odd[192.0.2.7]\r\n"
    body = (
        noise + LINES.replace("\n", "\r\n").encode() + b"\x00\x00binary\xc3\x28 TLS\r\n"
    )
    path = tmp_path / "mail.log"
    path.write_bytes(body)
    result = scan([str(path)], grammars)
    (event,) = result.events
    assert event.detail.endswith("statem_srvr.c:1657:")  # no stray \r
    assert event.source.endswith(":3")
    assert result.counts.lines == 4


def test_last_line_without_newline_is_read(tmp_path, grammars):
    path = tmp_path / "mail.log"
    path.write_text(LINES.rstrip("\n"))
    result = scan([str(path)], grammars)
    assert len(result.events) == 1
    assert result.counts.lines == 2


def test_truncated_gzip_keeps_what_was_read(tmp_path, grammars):
    body = gzip.compress((LINES * 2000).encode())
    path = tmp_path / "mail.log.1.gz"
    path.write_bytes(body[: len(body) // 2])
    result = scan([str(path)], grammars)
    assert result.errors and "mail.log.1.gz" in str(result.errors[0])
    assert len(result.events) > 100


@pytest.mark.parametrize("compress", [bz2.compress, lzma.compress], ids=["bzip2", "xz"])
def test_every_stream_of_a_multi_stream_archive_is_read(tmp_path, grammars, compress):
    # pbzip2 and pixz write one stream per block: all of them are the log.
    path = tmp_path / "mail.log.2.bz"
    path.write_bytes(compress(LINES.encode()) + compress(LINES.encode()))
    result = scan([str(path)], grammars)
    assert not result.errors
    assert len(result.events) == 2
    assert result.counts.lines == 4
