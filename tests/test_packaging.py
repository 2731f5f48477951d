"""The wheel, installed with plain pip into a clean environment, works on its own.

This builds the wheel, makes a new virtual environment, installs the wheel (not
editable, with its dependencies) and runs the command there, away from the source
tree, so that nothing in the checkout can stand in for a missing package file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

from .conftest import ROOT, SAMPLES


def test_wheel_installs_into_a_clean_environment_and_runs(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("smtplogscan-*.whl")

    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
    )

    work = tmp_path / "elsewhere"
    work.mkdir()
    listing = subprocess.run(
        [str(env / "bin" / "smtplogscan"), "grammars"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    for name in ("postfix", "exim", "exchange"):
        assert f"{name}  (" in listing.stdout
    assert not listing.stderr

    done = subprocess.run(
        [str(python), "-m", "smtplogscan", "report", "--format", "json", str(SAMPLES)],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {p["mta"] for p in report["peers"]} == {"postfix", "exim", "exchange"}
    assert report["totals"]["failures"] > 30
