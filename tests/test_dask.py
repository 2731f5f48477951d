"""A scan as Dask tasks gives the same report as the local engine, byte for byte.

The cluster runs its workers as threads of this process (processes=False): it
starts in a fraction of a second, and the workers see the lowered SPLIT_MIN.
The code path of a task is the same as on a cluster of processes; one test
runs the command line on a local cluster of real worker processes.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from smtplogscan import Options, cli, parallel
from smtplogscan.sources import Input

from .conftest import SAMPLES

distributed = pytest.importorskip("distributed")

REAL = SAMPLES / "postfix" / "real-debian-openssl3.log"


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,  # inproc:// - no socket at all
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


def _report(*args: str) -> str:
    result = CliRunner().invoke(
        cli.app, ["report", "--format", "json", "--timezone", "UTC", *args]
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_sample_logs_give_the_same_report(scheduler):
    local = _report("--jobs", "1", str(SAMPLES))
    dask = _report("--engine", "dask", "--scheduler", scheduler, str(SAMPLES))
    assert dask == local
    assert '"failures"' in dask


def test_a_file_cut_into_ranges_gives_the_same_report(scheduler, monkeypatch, grammars):
    monkeypatch.setattr(parallel, "SPLIT_MIN", 10_000)
    monkeypatch.setattr(parallel, "OVERLAP", 4096)
    inputs = (str(REAL), str(SAMPLES / "exim"), str(REAL))
    parts = list(parallel.plan([Input(str(REAL), REAL)], grammars, Options(jobs=2)))
    assert len(parts) == 2  # as for the cluster's two threads: cut in two
    local = _report("--jobs", "1", *inputs)
    dask = _report("--engine", "dask", "--scheduler", scheduler, *inputs)
    assert dask == local


@pytest.mark.skipif(
    importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed"
)
def test_a_missing_filesystem_package_is_named_and_the_rest_is_read(scheduler):
    result = CliRunner().invoke(
        cli.app,
        [
            "report", "--format", "json", "--engine", "dask",
            "--scheduler", scheduler,
            "s3://bucket/mail.log", f"file://{REAL}",
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "s3://bucket/mail.log: reading s3:// URLs needs the package s3fs" in (
        result.stderr
    )
    assert '"failures"' in result.stdout


def test_urls_are_read_through_fsspec(scheduler):
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    folder = SAMPLES / "exim"
    for path in sorted(folder.glob("*.log")):
        memory.pipe(f"/smtplogscan-test/{path.name}", path.read_bytes())
    try:
        local = json.loads(_report("--jobs", "1", str(folder)))
        remote = json.loads(
            _report(
                "--engine",
                "dask",
                "--scheduler",
                scheduler,
                "memory://smtplogscan-test/",
            )
        )
    finally:
        memory.rm("/smtplogscan-test", recursive=True)
    assert [i["name"].rpartition("/")[2] for i in remote["inputs"]] == [
        i["name"].rpartition("/")[2] for i in local["inputs"]
    ]
    assert all(i["name"].startswith("memory://") for i in remote["inputs"])
    for field in ("totals", "peers", "kinds", "causes"):
        assert remote[field] == local[field]


def test_a_large_object_is_read_in_ranges_by_several_tasks(
    scheduler, monkeypatch, grammars
):
    fsspec = pytest.importorskip("fsspec")
    monkeypatch.setattr(parallel, "SPLIT_MIN", 10_000)
    monkeypatch.setattr(parallel, "OVERLAP", 4096)
    memory = fsspec.filesystem("memory")
    memory.pipe("/smtplogscan-big/mail.log", REAL.read_bytes())
    url = "memory://smtplogscan-big/mail.log"
    read: list[parallel.Part] = []
    run_part = parallel.run_part

    def spy(part, *args, **kwargs):
        read.append(part)
        return run_part(part, *args, **kwargs)

    monkeypatch.setattr(parallel, "run_part", spy)
    try:
        local = json.loads(_report("--jobs", "1", str(REAL)))
        remote = json.loads(_report("--engine", "dask", "--scheduler", scheduler, url))
    finally:
        memory.rm("/smtplogscan-big", recursive=True)
    assert sorted((p.start, p.end) for p in read)[-1][1] == REAL.stat().st_size
    assert len(read) == 2 and all(p.source.url == url for p in read)
    for field in ("totals", "peers", "kinds", "causes"):
        assert remote[field] == local[field]
    assert remote["totals"]["failures"] > 50


def test_a_local_cluster_of_processes_gives_the_same_report():
    # The real thing: worker processes that load the grammars themselves.
    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "smtplogscan", "report", "-f", "json", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    paths = [str(SAMPLES / "exim"), str(REAL)]
    assert run("--engine", "dask", "--jobs", "2", *paths) == run("--jobs", "1", *paths)
