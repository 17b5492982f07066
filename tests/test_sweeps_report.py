"""The sweeps report sections on hand-made scored tables: every number recomputed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moebench.families import generate
from moebench.regime import regime_label, regime_tags
from moebench.report.sections import ReportContext
from moebench.report.sweeps import headline_table, sweep_data, sweep_groups, sweeps_sections

NAN = math.nan


def _row(
    inst,
    method,
    lat,
    empty,
    *,
    status="feasible",
    role="method",
    proven,
    ref_gain,
    ref_bound,
    cap,
    other=1,
    hl=NAN,
    he=NAN,
    regime="r",
):
    gain = empty - lat if not math.isnan(lat) else NAN
    ok = status in ("optimal", "feasible", "time-limit")
    gr = gain / ref_gain if ok and ref_gain > 0 else NAN
    br = gain / ref_bound if ok and not proven else NAN
    return {
        "instance": inst,
        "family": "fam",
        "method": method,
        "role": role,
        "status": status,
        "feasible": ok,
        "latency": lat,
        "empty_latency": empty,
        "gain": gain,
        "ref_proven": proven,
        "ref_gain": ref_gain,
        "ref_bound": ref_bound,
        "gain_ratio": gr,
        "bound_ratio": br,
        "holdout_latency": hl,
        "holdout_empty_latency": he,
        "regime": regime,
        "param_capacity": cap,
        "param_other": other,
    }


@pytest.fixture()
def runs() -> pd.DataFrame:
    # A: empty 100, proven optimum gain 25 (Lat* = 75); B: empty 50, best known 10, bound 20
    a = {"proven": True, "ref_gain": 25.0, "ref_bound": 25.0, "cap": 0.1, "regime": "r1"}
    b = {"proven": False, "ref_gain": 10.0, "ref_bound": 20.0, "cap": 0.2, "regime": "r2"}
    rows = [
        _row("A", "none", 100.0, 100.0, hl=110.0, he=110.0, **a),
        _row("A", "m1", 80.0, 100.0, hl=90.0, he=110.0, **a),
        _row("A", "m2", 90.0, 100.0, hl=100.0, he=110.0, **a),
        _row("A", "exact", 75.0, 100.0, status="optimal", role="reference", **a),
        _row("B", "none", 50.0, 50.0, **b),
        _row("B", "m1", 40.0, 50.0, **b),
        _row("B", "m2", NAN, 50.0, status="error", **b),
        _row("B", "exact", 40.0, 50.0, status="time-limit", role="reference", **b),
    ]
    return pd.DataFrame(rows)


def test_headline_values_by_hand(runs: pd.DataFrame) -> None:
    t = headline_table(runs).set_index("method")
    # suite order, benchmarked methods before the references; m2 (failed on B) after the rows on every instance
    assert list(t.index) == ["none", "m1", "exact", "m2"]
    assert t["instances"].to_dict() == {"none": 2, "m1": 2, "exact": 2, "m2": 1}
    assert set(t["group_instances"]) == {2}
    m1 = t.loc["m1"]
    assert m1["runs"] == 2
    assert m1["latency"] == pytest.approx((80 + 40) / 2)
    assert m1["reduction_pct"] == pytest.approx((20.0 + 20.0) / 2)  # 100·(100−80)/100, 100·(50−40)/50
    # A against its proven optimum: 20/25; B against the bound: 10/20
    assert m1["ratio_mean"] == pytest.approx((0.8 + 0.5) / 2) and m1["ratio_worst"] == pytest.approx(0.5)
    assert m1["reference"] == "optimum 1 / bound 1"
    # holdout only on A: 100·(110−90)/110
    assert m1["holdout_runs"] == 1 and m1["holdout_reduction_pct"] == pytest.approx(100 * 20 / 110)
    # the failed run of m2 is not averaged in
    m2 = t.loc["m2"]
    assert m2["runs"] == 1 and m2["reduction_pct"] == pytest.approx(10.0) and m2["ratio_worst"] == pytest.approx(0.4)
    assert m2["reference"] == "optimum"
    # what m2's reduction compares with: the optimum's on A alone (25 %), not the mean over A and B
    assert m2["ref_reduction_pct"] == pytest.approx(25.0) and m1["ref_reduction_pct"] == pytest.approx(22.5)
    none = t.loc["none"]
    assert none["reduction_pct"] == 0.0 and none["holdout_reduction_pct"] == 0.0 and none["ratio_mean"] == 0.0
    ex = t.loc["exact"]
    assert ex["ratio_mean"] == pytest.approx((1.0 + 0.5) / 2)


def test_by_regime_splits_the_groups(runs: pd.DataFrame) -> None:
    t = headline_table(runs, ("family", "regime"))
    m1 = t[t["method"] == "m1"].set_index("regime")
    assert m1.loc["r1", "reduction_pct"] == pytest.approx(20.0) and m1.loc["r1", "ratio_mean"] == pytest.approx(0.8)
    assert m1.loc["r2", "reference"] == "bound" and m1.loc["r2", "ratio_mean"] == pytest.approx(0.5)
    assert math.isnan(m1.loc["r2", "holdout_reduction_pct"])


def test_sweeps_group_only_instances_with_the_other_parameters_fixed(runs: pd.DataFrame) -> None:
    more = runs.copy()
    more["instance"] = more["instance"] + "2"
    more["param_other"] = 2  # a second capacity sweep at another value of `other`
    more["param_capacity"] = more["param_capacity"] + 1.0  # at capacities 1.1 and 1.2
    groups = sweep_groups(pd.concat([runs, more], ignore_index=True))
    caps = sorted(tuple(sorted(g["_x"].unique())) for fam, col, g in groups if col == "param_capacity")
    assert caps == [(0.1, 0.2), (1.1, 1.2)]
    assert not [g for _, col, g in groups if col == "param_other"]  # other never varies at a fixed capacity
    d = sweep_data(runs)
    m1 = d[d["method"] == "m1"].set_index("value")
    assert m1.loc[0.1, "latency"] == 80.0 and m1.loc[0.1, "holdout_latency"] == 90.0
    assert math.isnan(m1.loc[0.2, "holdout_latency"])
    # reference latency bound Lat(∅) − UB: 100 − 25 and 50 − 20
    assert m1.loc[0.1, "reference_latency_bound"] == 75.0 and m1.loc[0.2, "reference_latency_bound"] == 30.0


def test_sections_render_cells_and_figures(runs: pd.DataFrame, tmp_path: Path) -> None:
    secs = sweeps_sections(ReportContext(runs, pd.DataFrame(), None, tmp_path))
    assert [s.slug for s in secs] == ["sweeps-headline", "sweeps-regimes", "sweeps-figures"]
    head = {r[1]: r for r in secs[0].rows}
    # instances, latency, reduction, ref. reduction, ratio mean, ratio worst, reference, test (on 1 run of 2)
    assert head["m1"][2:] == ["2", "60.00", "20.0", "22.5", "0.650", "0.500", "optimum 1 / bound 1", "18.2 (n=1)"]
    assert head["m2"][2] == "1/2" and head["m2"][9] == "9.1"  # 100·(110−100)/110 on A
    assert [r[1] for r in secs[0].rows] == ["none", "m1", "exact", "m2"]
    fig = secs[2].figures
    assert len(fig) == 1 and fig[0].is_file() and fig[0].parent == tmp_path / "plots"
    assert secs[2].rows[0][:4] == ["fam", "capacity", "0.1, 0.2", "2"]
    # without a `none` baseline and without holdout twins there is nothing to show; holdout twins alone suffice
    bare = runs[runs["method"] != "none"]
    assert sweeps_sections(ReportContext(bare.assign(holdout_latency=NAN), pd.DataFrame(), None, tmp_path)) == []
    assert sweeps_sections(ReportContext(bare, pd.DataFrame(), None, tmp_path))[0].slug == "sweeps-headline"
    assert (
        len(sweeps_sections(ReportContext(runs.assign(suite="quick"), pd.DataFrame(), None, tmp_path))) == 3
    )  # any suite that ran none
    assert len(sweeps_sections(ReportContext(runs.assign(suite="sweeps-small"), pd.DataFrame(), None, tmp_path))) == 3


def test_regime_tags_follow_the_documented_rule() -> None:
    p = {"layers": 4, "experts": 8, "servers": 2, "tokens": 200}
    # capacity: 0.1 of 4 layers = 0.4 layer; 0.25 = exactly one layer; 0.5 = two layers
    assert regime_tags(generate("zipf", {**p, "capacity": 0.1, "K": 1}, 0))[0] == "capacity-below-one-layer"
    assert regime_tags(generate("zipf", {**p, "capacity": 0.25}, 0))[0] == "capacity-about-one-layer"
    assert regime_tags(generate("zipf", {**p, "capacity": 0.5}, 0))[0] == "capacity-several-layers"
    inst = generate("zipf", {**p, "cloud_delay": 3.0, "K": 3}, 0)
    assert float(np.median(inst.fallback)) < 2 * float(inst.latency.max())
    assert regime_label(inst) == "capacity-about-one-layer;fallback-near-edge;large-K"
    far = generate("zipf", {**p, "cloud_delay": 60.0, "K": 1}, 0)
    assert regime_tags(far)[1:] == ("fallback-far", "K=1")
    assert regime_tags(generate("zipf", {**p, "K": 2}, 0))[2] == "small-K"
    # away from the exact one-layer boundary, the capacity and fallback tags are the generator's own
    for cap in (0.1, 0.5):
        for cloud in (3.0, 60.0):
            inst = generate("clustered", {**p, "capacity": cap, "cloud_delay": cloud}, 1)
            assert regime_tags(inst)[:2] == tuple(inst.meta["regime"])
