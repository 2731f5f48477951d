"""Run the fuzz tests over more than 100,000 generated inputs and sum them up.

    .venv/bin/python scripts/fuzz_long.py [--timeout MINUTES] [--log FILE]

The tests of tests/test_fuzz.py run under HYPOTHESIS_PROFILE=long (see
tests/hypothesis_profiles.py for the examples each test gets), niced, in two
pytest processes side by side: the grammar tests and the pipeline tests. The
figures are taken from hypothesis's own statistics; the exit status is that of
pytest (0 when no input crashed anything).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {
    "grammars": "test_grammar_never_raises",
    "pipeline": "test_pipeline_on_edited or test_pipeline_on_random",
}
# "- 12500 passing, 0 failing, and 1015 invalid test cases" (older hypothesis:
# "- 1234 passing examples, 0 failing examples, 5 invalid examples"), one line
# per phase of each test.
_FIGURES = re.compile(
    r"- (\d+) passing(?: examples?)?, (\d+) failing(?: examples?)?, "
    r"(?:and )?(\d+) invalid"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=25.0, help="minutes")
    parser.add_argument("--log", type=Path, default=Path("fuzz_long.log"))
    args = parser.parse_args()

    env = dict(os.environ, HYPOTHESIS_PROFILE="long")
    started = time.monotonic()
    runs = {
        name: subprocess.Popen(
            [
                "nice",
                "-n",
                "10",
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--hypothesis-show-statistics",
                "tests/test_fuzz.py",
                "-k",
                selection,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for name, selection in GROUPS.items()
    }
    outputs: dict[str, str] = {}
    status = 0
    for name, proc in runs.items():
        left = max(args.timeout * 60 - (time.monotonic() - started), 1.0)
        try:
            outputs[name], _ = proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            # SIGINT, not SIGTERM: pytest then still prints the statistics of
            # the tests that finished.
            proc.send_signal(signal.SIGINT)
            outputs[name], _ = proc.communicate()
            outputs[name] += "\n[stopped: time limit reached]\n"
        status = status or proc.returncode or 0

    text = "\n".join(f"===== {n} =====\n{o}" for n, o in outputs.items())
    args.log.write_text(text, encoding="utf-8")
    passing = failing = invalid = 0
    for match in _FIGURES.finditer(text):
        passing += int(match[1])
        failing += int(match[2])
        invalid += int(match[3])
    minutes = (time.monotonic() - started) / 60
    print(
        f"fuzz: {passing + failing} inputs run ({passing} passed, {failing} failed, "
        f"{invalid} rejected) in {minutes:.1f} min; pytest status {status}; "
        f"details in {args.log}"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
