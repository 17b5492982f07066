"""Common ground: no aggregate mixes instance sets silently; statuses, gaps and holdout shown.

A K = 1-only method next to methods that ran on every instance must carry its own instance
count (summary ``a/b``, paper-table ``(n)``, sweeps headline ``a/b`` after the full rows, with
the reference's reduction on its own instances); a run stopped at its limit with a gap shows up
in the status counts and the exact back ends' worst gap; holdout columns appear whenever
holdout twins exist.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from test_report_tables import _row, synthetic

from moebench.report import tables
from moebench.report.build import write_report
from moebench.report.sweeps import headline_table

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def k1_table() -> pd.DataFrame:
    """Family 'f': instance a (K = 1, optimum 40) and b (K = 2, optimum 10), empty latency 100.

    'k1' applies to K = 1 only and is optimal there (reduction 40 %); 'full' ran on both
    (reductions 30 % and 10 %: mean 20 %). A silent mix would show k1 'beating' the optimum.
    """
    rows = [
        _row("a", "ex", "optimal", 40.0, kind="exact", bound=40.0),
        _row("a", "full", "feasible", 30.0),
        _row("a", "k1", "feasible", 40.0),
        _row("a", "none", "feasible", 0.0, kind="baseline"),
        _row("b", "ex", "optimal", 10.0, K=2, kind="exact", bound=10.0),
        _row("b", "full", "feasible", 10.0, K=2),
        _row("b", "k1", "not-applicable", 0.0, K=2),
        _row("b", "none", "feasible", 0.0, K=2, kind="baseline"),
    ]
    return pd.DataFrame(rows)


def test_a_k1_only_method_is_never_averaged_over_another_set_without_its_count(tmp_path: Path) -> None:
    runs = tables.score(k1_table())
    s = tables.summary_table(runs).set_index(["family", "method"])
    assert (s.loc[("f", "k1"), "instances"], s.loc[("f", "k1"), "family_instances"]) == (1, 2)
    assert s.loc[("f", "full"), "instances"] == 2 and bool(tables.common_ground(s.reset_index()).sum() == 3)
    write_report(k1_table(), tmp_path, formats=("md", "latex", "csv"))
    md = (tmp_path / "report.md").read_text()
    k1_summary = next(ln for ln in md.splitlines() if ln.startswith("| f | k1 |"))
    assert k1_summary.split(" | ")[2] == "1/2"
    paper_row = next(ln for ln in (tmp_path / "tables.tex").read_text().splitlines() if ln.startswith("\\texttt{k1}"))
    assert paper_row.split(" & ")[1:3] == ["1.000 (1)", "1.000 (1)"]
    # the sweeps headline: k1 comes after the rows on both instances, and its reduction (40 %) is set
    # against the optimum's on the same instance (40 %), not the mean over both (25 %)
    t = headline_table(runs)
    assert list(t["method"]) == ["ex", "full", "none", "k1"]
    k1 = t.set_index("method").loc["k1"]
    assert (k1["instances"], k1["group_instances"]) == (1, 2)
    assert k1["reduction_pct"] == pytest.approx(40.0) and k1["ref_reduction_pct"] == pytest.approx(40.0)
    assert t.set_index("method").loc["full", "ref_reduction_pct"] == pytest.approx(25.0)
    _, hrows = _md_rows(md, "Headline: latency reduction and ratio to the reference")
    assert [r[1] for r in hrows] == ["ex", "full", "none", "k1"]
    assert hrows[-1][2:6] == ["1/2", "60.00", "40.0", "40.0"]  # instances, latency, reduction, ref. reduction


def test_a_geometric_mean_with_a_zero_ratio_is_na_not_zero(tmp_path: Path) -> None:
    s = tables.summary_table(tables.score(k1_table())).set_index(["family", "method"])
    none = s.loc[("f", "none")]
    assert math.isnan(none["gain_gmean"]) and none["gain_zero"] == 2 and none["gain_mean"] == 0.0
    write_report(k1_table(), tmp_path, formats=("md", "latex"))
    row = next(ln for ln in (tmp_path / "report.md").read_text().splitlines() if ln.startswith("| f | none |"))
    assert "| n/a |" in row
    assert "\\newcommand{\\mbGainGmeanNone}{n/a}" in (tmp_path / "macros.tex").read_text()


def test_time_limit_runs_and_the_exact_gap_are_in_the_summary(tmp_path: Path) -> None:
    s = tables.summary_table(tables.score(synthetic())).set_index(["family", "method"])
    ex = s.loc[("all", "ex")]
    # i2 stopped at its limit with gain 8 and bound 12: gap 1/3, not "failed 0, mean 1.000" silently
    assert (ex["optimal"], ex["time_limit"], ex["failed"]) == (3, 1, 0)
    assert ex["gap_worst"] == pytest.approx(1 / 3)
    write_report(synthetic(), tmp_path, formats=("md", "csv", "latex"))
    status = pd.read_csv(tmp_path / "exact-status.csv")
    assert status.to_dict("records") == [
        {
            "method": "ex",
            "runs": 4,
            "optimal": 3,
            "time_limit": 1,
            "feasible": 0,
            "failed": 0,
            "skipped": 0,
            "gap_worst": pytest.approx(1 / 3),
        }
    ]
    md = (tmp_path / "report.md").read_text()
    assert "| ex | 4 | 3 | 1 | 0 | 0 | 0 | 33.3 |" in md
    assert "\\newcommand{\\mbTimeLimitRuns}{1}" in (tmp_path / "macros.tex").read_text()


def test_holdout_columns_appear_whenever_holdout_twins_exist(tmp_path: Path) -> None:
    df = k1_table()
    df = df[df["method"] != "none"].copy()  # no `none` baseline in this suite
    df["holdout_empty_latency"] = 110.0
    df["holdout_latency"] = 110.0 - df["gain"].fillna(0.0) / 2
    write_report(df, tmp_path, formats=("md", "latex", "csv"))
    s = pd.read_csv(tmp_path / "summary.csv").set_index(["family", "method"])
    assert s.loc[("f", "full"), "holdout_reduction_pct"] == pytest.approx(100 * (15 + 5) / 2 / 110)
    assert "test \\%" in (tmp_path / "tables.tex").read_text()
    assert "| Test reduction % |" in (tmp_path / "report.md").read_text().split("## Summary per family")[1]
    assert (tmp_path / "sweeps-headline.csv").is_file()  # shown without `none` too


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quick")
    write_report(REPORTS / "quick" / "results.parquet", out, formats=("md", "csv", "latex"))
    return out


def _md_rows(md: str, title: str) -> tuple[list[str], list[list[str]]]:
    block = md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    return split[0], split[2:]


def test_the_quick_report_says_so_wherever_instance_sets_differ(quick: Path) -> None:
    md = (quick / "report.md").read_text()
    summary = pd.read_csv(quick / "summary.csv")
    header, rows = _md_rows(md, "Summary per family × method")
    inst = header.index("Instances")
    shown = {(r[0], r[1]): r[inst] for r in rows}
    partial = 0
    for r in summary.itertuples():
        cell = shown[(r.family, r.method)]
        if r.instances < r.family_instances:
            partial += 1
            assert cell == f"{r.instances}/{r.family_instances}"
        else:
            assert cell == str(r.instances)
    assert partial >= 8  # the K = 1 methods on zipf, uniform, clustered and all
    paper = pd.read_csv(quick / "paper.csv")
    tex = (quick / "tables.tex").read_text()
    for r in paper[paper["instances"] < paper["family_instances"]].itertuples():
        line = next(ln for ln in tex.splitlines() if ln.startswith(f"\\texttt{{{r.method}}}"))
        assert f"({r.instances})" in line or "n/a" in line
    head = pd.read_csv(quick / "sweeps-headline.csv")
    part = head[head["instances"] < head["group_instances"]]
    assert set(part["method"]) >= {"greedy-ratio", "greedy-ratio+single", "greedy-enum[2]", "greedy-ratio+ls"}
    _, hrows = _md_rows(md, "Headline: latency reduction and ratio to the reference")
    for r in hrows:
        fam, method, n = r[0], r[1], r[2]
        row = head[(head["family"] == fam) & (head["method"] == method)].iloc[0]
        assert n == (
            str(row.instances) if row.instances == row.group_instances else f"{row.instances}/{row.group_instances}"
        )
    # zipf: greedy-ratio's 38.0 % is on the K = 1 instance, where the optimum also reduces 38.0 %
    z = head[(head["family"] == "zipf") & (head["method"] == "greedy-ratio")].iloc[0]
    assert z["reduction_pct"] == pytest.approx(z["ref_reduction_pct"])


def test_reference_runs_of_a_benchmarked_method_are_not_averaged_with_it() -> None:
    df = synthetic()
    ref = df[df["method"] == "ex"].assign(role="reference", wall_time=9.0)
    ref.loc[ref["instance"] == "i2", ["status", "gain", "latency"]] = ["optimal", 12.0, 88.0]
    runs = tables.score(pd.concat([df, ref], ignore_index=True))
    assert sorted(runs["method"].unique()) == ["ex", "ex (reference)", "g", "h"]
    s = tables.summary_table(runs).set_index(["family", "method"])
    assert s.loc[("all", "ex"), "runs"] == 4 and s.loc[("all", "ex (reference)"), "runs"] == 4
    assert s.loc[("all", "ex"), "time_limit"] == 1 and s.loc[("all", "ex (reference)"), "time_limit"] == 0
    # the reference's proven 12 on i2 is the reference of both: ex's time-limit incumbent 8 has ratio 2/3
    assert s.loc[("f", "ex"), "gain_worst"] == pytest.approx(8 / 12)


def test_holdout_columns_only_for_the_families_that_have_holdout_twins(tmp_path: Path) -> None:
    other = k1_table().assign(
        family="g", instance=lambda d: d["instance"] + "-g", instance_hash=lambda d: d["instance"]
    )
    df = pd.concat([k1_table(), other], ignore_index=True)
    on_f = df["family"] == "f"
    df["holdout_empty_latency"] = (110.0 * on_f).where(on_f)
    df["holdout_latency"] = (110.0 - df["gain"].fillna(0.0) / 2).where(on_f)
    write_report(df, tmp_path, formats=("latex",))
    head = next(ln for ln in (tmp_path / "tables.tex").read_text().splitlines() if ln.startswith("Method &"))
    assert head == "Method & mean & worst & test \\% & mean & worst & time [s] \\\\"  # f, then g without it
