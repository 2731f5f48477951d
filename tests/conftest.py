"""Fixtures shared by the tests: the registry, and scanning text or files."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from smtplogscan import Options, ScanResult, registry, scan

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"
#: Real lines that administrators published, kept beside the project (in
#: ../shared/corpus) rather than in it; SMTPLOGSCAN_CORPUS names another copy.
CORPUS = Path(
    os.environ.get(
        "SMTPLOGSCAN_CORPUS", ROOT.parent / "shared" / "corpus" / "public-lines.jsonl"
    )
)


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
