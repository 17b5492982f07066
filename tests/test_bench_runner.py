"""The runner: failing methods become rows, SIGKILL + --resume, Dask = local, reference reuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench_helpers import BASELINES, write_suite

from moebench.bench.runner import run_suite
from moebench.bench.store import ResultStore
from moebench.bench.suite import load_suite
from moebench.evaluate import evaluate
from moebench.harness import run_method
from moebench.placement import from_triples

TESTS = Path(__file__).parent
#: columns that legitimately differ between two runs of the same suite
VOLATILE = ["wall_time", "method_time", "method_cpu_time", "build_time", "solve_time", "started_at", "finished_at"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "moebench.cli", *args]


def test_faulty_methods_become_rows_and_the_suite_completes(tmp_path: Path) -> None:
    suite_path = write_suite(
        tmp_path,
        ("test-raise", "test-hang", "test-infeasible", "test-crash", "test-oom", "popularity"),
        extra="",
    )
    text = suite_path.read_text().replace("time_limit = 5.0", "time_limit = 1.0\nmemory_limit_mb = 1024")
    text = text.replace('[[instances]]\nfamily = "clustered"', '[[instances]]\nfamily = "clustered"\nname = "x"', 1)
    suite_path.write_text(text.replace("grid = { K = [1, 2], capacity = [0.25, 0.5] }", "grid = { K = [2] }"))
    suite = load_suite(suite_path)
    summary = run_suite(suite, tmp_path / "out", jobs=2, progress=False)
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(df) == summary.tasks == 3 * 7  # 3 instances x (bruteforce + 6 methods)
    status = df.groupby("method")["status"].unique().map(list).to_dict()
    assert status == {
        "bruteforce": ["optimal"],
        "popularity": ["feasible"],
        "test-crash": ["error"],
        "test-hang": ["time-limit"],
        "test-infeasible": ["invalid"],
        "test-oom": ["error"],
        "test-raise": ["error"],
    }
    err = df.groupby("method")["error"].first()
    assert err["test-raise"].startswith("RuntimeError: deliberate failure")
    assert "killed by the runner after 1 + 1 s" in err["test-hang"]
    assert err["test-infeasible"].startswith("infeasible placement: server 0")
    assert "child process died: killed by signal 9" in err["test-crash"]
    assert err["test-oom"] == "out of memory"
    # the names of the clustered instances carry the entry's prefix
    assert sorted(df["instance"].unique())[-1].startswith("x-clustered-")


def _table(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "results.parquet").drop(columns=VOLATILE)


def test_sigkill_midway_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    suite_path = write_suite(tmp_path, ("test-slow", *BASELINES))
    n_tasks = 6 * 7
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli("run", str(suite_path), "--out", str(killed), "-j", "1", "-q", "--no-report"),
        env=_env(),
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    store = killed / "results.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if store.exists() and store.read_bytes().count(b"\n") >= 8:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers of our own session only
        except ProcessLookupError:
            pass
    done_before = len({r["task_id"] for r in ResultStore(store).records()})
    assert 8 <= done_before < n_tasks, "the kill must land midway"
    assert not (killed / "results.parquet").exists()
    res = subprocess.run(
        _cli("run", str(suite_path), "--out", str(killed), "-j", "2", "-q", "--resume", "--no-report"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert f"{done_before} already done" in res.stderr
    ids = [r["task_id"] for r in ResultStore(store).records()]
    assert len(ids) == len(set(ids)) == n_tasks  # nothing ran twice, nothing lost
    whole = tmp_path / "whole"
    res = subprocess.run(
        _cli("run", str(suite_path), "--out", str(whole), "-j", "2", "-q", "--no-report"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    a, b = _table(killed), _table(whole)
    assert len(a) == n_tasks and a["task_id"].is_unique
    pd.testing.assert_frame_equal(a, b)


def test_rows_hold_recomputed_objectives_and_references_are_reused(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, ("popularity", "random")))
    out = tmp_path / "out"
    first = run_suite(suite, out, jobs=2, progress=False)
    df = pd.read_parquet(out / "results.parquet")
    assert first.tasks == 18 and (df["role"] == "reference").sum() == 6
    insts = {i.name: i for i in suite.instances()}
    for _, row in df.iterrows():
        inst = insts[row["instance"]]
        ev = evaluate(inst, from_triples(inst, json.loads(row["placement"])))
        assert row["latency"] == pytest.approx(ev.latency, rel=1e-12)
        assert row["gain"] == pytest.approx(ev.gain, rel=1e-12, abs=1e-12)
        assert row["K"] == inst.K and row["N"] == inst.N and row["G"] == inst.G
        assert row["moebench_version"] and row["machine"] and row["finished_at"]
    # independent check of the exact references against an in-process bruteforce run
    for name, inst in insts.items():
        opt = run_method(inst, "bruteforce").gain
        assert df[(df["instance"] == name) & (df["method"] == "bruteforce")]["gain"].item() == pytest.approx(opt)
    # the random baseline got the suite seed (3)
    assert set(df[df["method"] == "random"]["seed"]) == {3}
    # a second run into a new folder reuses references.solu instead of re-solving
    text = (out / "references.solu").read_text()
    assert text.count("=opt=") == 6
    suite2 = load_suite(write_suite(tmp_path, ("popularity", "random")))
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "references.solu").write_text(text)  # a run reads and writes references in its folder
    second = run_suite(suite2, tmp_path / "out2", jobs=2, progress=False)
    assert second.tasks == 12
    df2 = pd.read_parquet(tmp_path / "out2" / "results.parquet")
    assert set(df2["method"]) == {"popularity", "random"}


def test_dask_local_cluster_gives_the_same_objectives(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    suite = load_suite(write_suite(tmp_path, ("popularity", "whole-layer", "random")))
    run_suite(suite, tmp_path / "local", jobs=2, progress=False)
    run_suite(suite, tmp_path / "dask", jobs=2, executor="dask", progress=False)
    cols = ["task_id", "instance", "method", "seed", "status", "latency", "gain", "placement"]
    a = pd.read_parquet(tmp_path / "local" / "results.parquet")[cols]
    b = pd.read_parquet(tmp_path / "dask" / "results.parquet")[cols]
    assert len(a) == 24
    pd.testing.assert_frame_equal(a, b)
    assert np.all(a["status"].isin(["optimal", "feasible"]))
