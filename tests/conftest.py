"""Fixtures shared by the tests: the registry, scanning text or files, and the
corpus of published lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from smtplogscan import Options, ScanResult, registry, scan

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"
#: Real lines that administrators published (see tests/corpus/README.md);
#: SMTPLOGSCAN_CORPUS names another copy.
CORPUS = Path(
    os.environ.get(
        "SMTPLOGSCAN_CORPUS", ROOT / "tests" / "corpus" / "public-lines.jsonl"
    )
)


def published(mta: str | None = None) -> list[dict[str, Any]]:
    """Return the corpus's rows, only those of `mta` when it is named."""
    rows = [json.loads(line) for line in CORPUS.read_text("utf-8").splitlines()]
    return [r for r in rows if mta is None or r["mta"] == mta]


@pytest.fixture(scope="session")
def grammars() -> registry.Registry:
    return registry.load()


@pytest.fixture
def scan_text(tmp_path: Path, grammars: registry.Registry) -> Callable[..., ScanResult]:
    """Scan `text` written to a file; `grammar` forces one, else it is detected."""

    def run(
        text: str, grammar: str | None = "postfix", **options: object
    ) -> ScanResult:
        path = tmp_path / "mail.log"
        path.write_text(text, encoding="utf-8")
        return scan([str(path)], grammars, Options(grammar=grammar, **options))  # type: ignore[arg-type]

    return run


def run_cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``python -m smtplogscan`` as a user would; bytes in, text out."""
    done = subprocess.run(
        [sys.executable, "-m", "smtplogscan", *args],
        capture_output=True,
        timeout=120,
        **kwargs,  # type: ignore[call-overload]
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )
