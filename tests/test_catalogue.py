"""The cause catalogue: every entry explains its own example, and is complete."""

from __future__ import annotations

import pytest

from smtplogscan import Direction, Kind, classify
from smtplogscan.causes import FALLBACK, catalogue

ENTRIES = catalogue()


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_example_classifies_to_its_own_entry(entry):
    direction = entry.direction or Direction.OUTBOUND
    assert entry.example, f"{entry.id} has no example"
    assert classify(entry.example, direction, entry.mta or "postfix").id == entry.id


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_entry_has_cause_and_a_fix_for_every_mta(entry):
    assert entry.cause.endswith(".")
    assert {"postfix", "exim", "exchange"} <= set(entry.fix), entry.fix


def test_every_kind_but_other_has_an_entry():
    kinds = {e.kind for e in ENTRIES}
    missing = set(Kind) - kinds - {Kind.OTHER}
    assert not missing


def test_unknown_reason_falls_back_to_other():
    cause = classify(
        "error:0A0000FF:SSL routines::something new", Direction.INBOUND, "postfix"
    )
    assert cause is FALLBACK
    assert cause.kind is Kind.OTHER


@pytest.mark.parametrize(
    ("detail", "direction", "culprit"),
    [
        # Our server cannot use its own certificate: we must act.
        ("error:0A00018F:SSL routines::ee key too small", Direction.INBOUND, "local"),
        # Our client refuses the peer's certificate: the peer must act.
        ("error:0A00018F:SSL routines::ee key too small", Direction.OUTBOUND, "peer"),
        ("error:0A00018D:SSL routines::ca md too weak", Direction.INBOUND, "local"),
        ("error:0A00018D:SSL routines::ca md too weak", Direction.OUTBOUND, "peer"),
        # dh key too small beside our own DH file's error: our file.
        (
            "error configuring explicit DH parameters; error:0A00018A:SSL routines::dh key too small",
            Direction.INBOUND,
            "local",
        ),
        ("error:0A00018A:SSL routines::dh key too small", Direction.OUTBOUND, "peer"),
    ],
)
def test_who_must_act_depends_on_the_side(detail, direction, culprit):
    assert classify(detail, direction, "postfix").culprit == culprit


@pytest.mark.parametrize(
    "detail",
    [
        # OpenSSL 1.0, 1.1 and 3.x write the same reason with other codes.
        "error:14082174:SSL routines:SSL3_CHECK_CERT_AND_ALGORITHM:dh key too small:s3_clnt.c:3331:",
        "1499:error:141A318A:SSL routines:tls_process_ske_dhe:dh key too small:../ssl/statem/statem_clnt.c:2150:",
        "error:0A00018A:SSL routines::dh key too small",
    ],
)
def test_reason_not_code_decides(detail):
    assert classify(detail, Direction.OUTBOUND, "postfix").kind is Kind.DH_KEY_TOO_SMALL
