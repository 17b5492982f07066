"""``moebench compare A B``: shared instances by name and content hash, paired differences,
Wilcoxon signed-rank tests (values checked against scipy by hand), every format, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench_helpers import write_suite
from scipy.stats import wilcoxon
from test_report_tables import _row

from moebench.bench.runner import run_suite
from moebench.bench.suite import load_suite
from moebench.errors import InputError
from moebench.report.compare import MIN_PAIRS, compare_runs, to_latex, wilcoxon_test, write_comparison


def _table(gains: dict[str, list[float]], times: list[float] | None = None, n: int = 8) -> pd.DataFrame:
    """n instances with optimum 10 ('ex'); each other method's gains per instance."""
    rows = []
    for i in range(n):
        rows.append(_row(f"i{i}", "ex", "optimal", 10.0, kind="exact", bound=10.0, t=1.0))
        for m, g in gains.items():
            rows.append(_row(f"i{i}", m, "feasible", g[i], t=(times[i] if times else 0.5)))
    return pd.DataFrame(rows)


def test_paired_differences_and_the_wilcoxon_test_by_hand() -> None:
    a = _table({"h": [5, 6, 7, 8, 9, 10, 4, 5]}, times=[1.0] * 8)
    b = _table({"h": [6, 6, 8, 9, 10, 10, 6, 7]}, times=[2.0, 2.5, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    c = compare_runs(a, b)
    h = c.methods.set_index("method").loc["h"]
    d = np.array([1, 0, 1, 1, 1, 0, 2, 2]) / 10.0
    assert h["pairs"] == 8 and h["ratio_a"] == pytest.approx(np.mean([5, 6, 7, 8, 9, 10, 4, 5]) / 10)
    assert h["diff_mean"] == pytest.approx(d.mean()) and h["diff_worst"] == pytest.approx(0.0)
    assert (h["b_better"], h["equal"], h["b_worse"]) == (6, 2, 0)
    # ties dropped, then the two-sided signed-rank test on the 6 differing pairs
    assert h["ratio_p"] == pytest.approx(wilcoxon(d[d != 0]).pvalue) and h["ratio_test"] == "n=6"
    assert h["time_quotient"] == pytest.approx(
        (np.exp(np.mean(np.log(np.array([3, 3.5, 4, 3, 3, 3, 3, 3])))) - 1) / 1.0
    )
    assert h["time_p"] == pytest.approx(wilcoxon(np.array([1.0, 1.5, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0])).pvalue)
    ex = c.methods.set_index("method").loc["ex"]
    assert ex["ratio_test"] == "all pairs equal" and np.isnan(ex["ratio_p"])
    assert c.shared_instances == 8 and (c.only_a, c.only_b) == (0, 0)


def test_too_few_pairs_give_no_p_value() -> None:
    p, why = wilcoxon_test(np.array([0.1, 0.2, -0.1, 0.3, 0.2]))
    assert np.isnan(p) and why.startswith(f"n=5 differing pairs < {MIN_PAIRS}")
    p, why = wilcoxon_test(np.array([0.0, 1e-12, 0.0]), tie=1e-9)
    assert np.isnan(p) and why == "all pairs equal"


def test_only_instances_with_the_same_name_and_hash_are_compared() -> None:
    a = _table({"h": [5] * 8})
    b = _table({"h": [6] * 8, "g": [1] * 8})
    b.loc[b["instance"] == "i0", "instance_hash"] = "other contents"
    b = b[b["instance"] != "i7"]
    b.loc[b["instance"] == "i1", "instance"] = "i1-renamed"  # same contents, another name: still i1
    c = compare_runs(a, b)
    assert c.shared_instances == 6 and (c.only_a, c.only_b) == (2, 1) and c.changed == ("i0",)
    assert c.renamed == 1
    assert c.methods_only_b == ("g",) and c.methods_only_a == ()
    assert set(c.pairs["instance"]) == {f"i{i}" for i in range(1, 7)}
    tex = to_latex(c)
    assert "\\caption{" in tex and "\\label{tab:moebench-compare}" in tex


def test_no_shared_instance_is_an_input_error() -> None:
    a = _table({"h": [5] * 3}, n=3)
    b = a.assign(instance_hash="x")
    with pytest.raises(InputError, match="share no"):
        compare_runs(a, b)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The small suite (6 instances, bruteforce references) run twice; the second adds a method."""
    root = tmp_path_factory.mktemp("compare")
    methods = ("greedy-ratio", "popularity", "sgd-levels[dp]")
    (root / "a").mkdir()
    (root / "b").mkdir()
    suite_a = load_suite(write_suite(root / "a", methods))
    run_suite(suite_a, root / "a" / "out", jobs=2, progress=False)
    # B through `moebench run`, with a [report] table: kept as report.toml, honoured by the report
    extra = '\n[report]\nmethods = ["popularity", "greedy-ratio"]\ncolumns = ["gain_mean", "time"]\n'
    path_b = write_suite(root / "b", (*methods, "random"), extra=extra)
    cmd = [sys.executable, "-m", "moebench.cli", "run", str(path_b), "--out", str(root / "b" / "out"), "-j", "2", "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)  # the suite's test plugin
    assert res.returncode == 0, res.stderr
    return root / "a" / "out", root / "b" / "out"


def test_the_suite_report_table_is_kept_and_honoured(two_runs: tuple[Path, Path]) -> None:
    _, b = two_runs
    assert 'methods = ["popularity", "greedy-ratio"]' in (b / "report.toml").read_text()
    summary = pd.read_csv(b / "report" / "summary.csv")
    assert set(summary["method"]) == {"popularity", "greedy-ratio"}
    tex = (b / "report" / "tables.tex").read_text()
    assert "Method & mean & mean & time [s] \\\\" in tex  # two families, gain mean each, then time


def test_compare_two_runs_of_a_small_suite(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    c = compare_runs(a, b / "results.parquet")
    m = c.methods.set_index("method")
    assert c.shared_instances == 6 and c.changed == () and c.methods_only_b == ("random",)
    assert set(m.index) == {"bruteforce", "greedy-ratio", "popularity", "sgd-levels[dp]"}
    # greedy-ratio applies to the K = 1 instances only (2 of 6); deterministic methods agree exactly
    assert m.loc["greedy-ratio", "pairs"] == 2 and m.loc["popularity", "pairs"] == 6
    assert (m["diff_mean"] == 0).all() and (m["ratio_test"] == "all pairs equal").all()
    assert (m["status_changed"] == 0).all()
    files = write_comparison(c, tmp_path, ("md", "csv", "latex", "html"))
    assert {p.name for p in files} == {"compare.md", "compare.csv", "compare-pairs.csv", "compare.tex", "compare.html"}
    assert pd.read_csv(tmp_path / "compare.csv").shape[0] == 4
    html_text = (tmp_path / "compare.html").read_text()
    assert html_text.startswith("<!DOCTYPE html>") and "<script" not in html_text and "sgd-levels[dp]" in html_text


def test_compare_cli(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_runs
    cmd = [sys.executable, "-m", "moebench.cli", "compare", str(a), str(b)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("# moebench compare") and "| popularity | 6 |" in res.stdout
    res = subprocess.run([*cmd, "--out", str(tmp_path / "c"), "--format", "md,tex"], capture_output=True, text=True)
    assert res.returncode == 0 and sorted(p.name for p in (tmp_path / "c").iterdir()) == ["compare.md", "compare.tex"]
    res = subprocess.run([*cmd[:4], str(tmp_path / "missing"), str(b)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith("moebench: error: ") and "missing" in res.stderr and "no such file" in res.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    res = subprocess.run([*cmd[:4], str(bad), str(b)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "missing column" in res.stderr and "Traceback" not in res.stderr
