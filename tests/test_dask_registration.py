"""Issue 15 item 7: the quick suite on a real Dask LocalCluster with 2 threads per worker process
gives the rows of a local run (a fresh worker once reported "unknown method 'milp-highs'" when two
threads filled the method registry at once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from moebench.bench.runner import run_suite
from moebench.bench.suite import load_suite

QUICK = Path(__file__).resolve().parents[1] / "reports" / "quick" / "suite.toml"


@pytest.mark.slow
def test_quick_suite_on_a_local_cluster_with_two_threads_per_worker_equals_a_local_run(tmp_path: Path) -> None:
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    suite_path = tmp_path / "suite.toml"
    shutil.copy(QUICK, suite_path)  # no references.solu beside it: every reference task runs
    suite = load_suite(suite_path)
    run_suite(suite, tmp_path / "local", jobs=2, progress=False)
    # fresh worker processes (they import moebench themselves), two threads each, non-daemonic
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None, silence_logs=40
        )
        try:
            run_suite(suite, tmp_path / "dask", executor="dask", scheduler=cluster.scheduler_address, progress=False)
        finally:
            cluster.close()
    cols = ["task_id", "instance", "method", "seed", "status", "gain", "latency", "error"]
    a = pd.read_parquet(tmp_path / "local" / "results.parquet").set_index("task_id").sort_index()
    b = pd.read_parquet(tmp_path / "dask" / "results.parquet").set_index("task_id").sort_index()
    assert len(a) == len(b) == 116 and list(a.index) == list(b.index)
    assert not b["error"].fillna("").str.contains("unknown method").any()
    assert set(b["status"]) <= set(a["status"]) | {"time-limit"}
    # exact runs may stop at their 10 s limit on a loaded machine, in either run: compare the others
    same = (a["status"] != "time-limit") & (b["status"] != "time-limit")
    assert same.sum() >= 100
    pd.testing.assert_frame_equal(a.loc[same, cols[1:]], b.loc[same, cols[1:]], check_exact=False, rtol=1e-9)
    # deterministic heuristics give the same placements too
    fixed = (a["method_kind"] != "exact") & a["deterministic"].astype(bool)
    assert (a.loc[fixed, "placement"] == b.loc[fixed, "placement"]).all()
