"""Scan on a Dask cluster: one task per part, partial results merged in a tree.

The parts are those of the local engine (`parallel.plan`): whole inputs, or
line-aligned byte ranges of large plain files or objects. Each task scans one
part with `parallel.run_part`; pairs of neighbouring results are merged by
further tasks (`parallel.merge`, which keeps input order), so the client
receives one result, whose bounces it settles as a local scan does. The report
is therefore the same, byte for byte.

Workers need smtplogscan (and any grammar plugin) installed, and must reach the
inputs by the same paths or URLs as the client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from smtplogscan import parallel
from smtplogscan.errors import ScanError, UsageError
from smtplogscan.registry import Registry, load
from smtplogscan.results import ScanResult
from smtplogscan.scan import Options
from smtplogscan.sources import Input

log = logging.getLogger(__name__)

#: How long to wait for an existing scheduler to answer.
CONNECT_TIMEOUT = "10s"

# One task's answer: the first part it covers (to join ranges of one input at
# the seam) and what it found.
_Partial = tuple[parallel.Part, ScanResult]


def scan_dask(
    inputs: list[Input], registry: Registry, options: Options, result: ScanResult
) -> None:
    """Scan `inputs` as Dask tasks into `result`, in input order."""
    if any(i.is_stdin for i in inputs):
        raise UsageError("--engine dask cannot read stdin: name files or URLs")
    paths = tuple(str(p) for p in registry.paths)
    with _client(options.scheduler, options.jobs) as client:
        # Cut for the cluster's threads, not for this machine's cores.
        threads = sum(client.nthreads().values())
        parts = list(parallel.plan(inputs, registry, replace(options, jobs=threads)))
        log.info("scanning %d part(s) on %d Dask thread(s)", len(parts), threads)
        tree = _tree([_leaf(part, options, paths) for part in parts])
        first, found = client.compute(tree).result()
    parallel.merge(result, found, first)


@contextmanager
def _client(scheduler: str | None, jobs: int) -> Iterator[Any]:
    """Connect to `scheduler`, or start a cluster of `jobs` processes on loopback."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(
            "--engine dask needs Dask: pip install 'smtplogscan[dask]'"
        ) from None
    # distributed logs every worker's start and stop at INFO, and a harmless
    # traceback when a worker closes first at shutdown: show them only with -vv.
    verbose = log.isEnabledFor(logging.DEBUG)
    logging.getLogger("distributed").setLevel(
        logging.INFO if verbose else logging.CRITICAL
    )
    if scheduler is not None:
        try:
            client = Client(  # type: ignore[no-untyped-call]
                scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False
            )
        except (OSError, TimeoutError) as err:
            raise ScanError(
                f"cannot reach the Dask scheduler {scheduler}: {err}"
            ) from None
        with client:
            yield client
        return
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=jobs,
        threads_per_worker=1,  # the scan holds the GIL: one thread per process
        processes=True,
        host="127.0.0.1",
        scheduler_kwargs={"dashboard": False},
        dashboard_address=None,
    )
    client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
    with cluster, client:
        yield client


def _leaf(part: parallel.Part, options: Options, paths: tuple[str, ...]) -> Any:
    from dask.delayed import delayed

    return delayed(_scan_part, pure=False)(part, options, paths)


def _tree(nodes: list[Any]) -> Any:
    """Merge neighbours pairwise until one node is left."""
    from dask.delayed import delayed

    combine = delayed(_combine, pure=False)
    while len(nodes) > 1:
        pairs = zip(nodes[0::2], nodes[1::2], strict=False)
        merged = [combine(left, right) for left, right in pairs]
        nodes = merged + nodes[len(merged) * 2 :]
    return nodes[0]


def _scan_part(
    part: parallel.Part, options: Options, paths: tuple[str, ...]
) -> _Partial:
    """Scan one part on a worker."""
    return part, parallel.run_part(part, options, _registry(paths))


def _combine(left: _Partial, right: _Partial) -> _Partial:
    """Append what `right` found to what `left` found; both are in input order."""
    parallel.merge(left[1], right[1], right[0])
    return left


@lru_cache(maxsize=4)
def _registry(paths: tuple[str, ...]) -> Registry:
    """The grammars of a worker, loaded once per set of plugin folders."""
    return load([Path(p) for p in paths])
