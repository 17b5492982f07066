"""Report scoring on a hand-made results table: ratios, aggregates, guarantee violations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from moebench.report import tables

E = 1 - 1 / math.e


def _row(inst, method, status, gain, *, K=1, bound=None, kind="heuristic", guarantee=None, t=1.0, fam="f", cap=0.25):
    empty = 100.0
    ok = status in ("optimal", "feasible", "time-limit")
    return {
        "suite": "synthetic",
        "role": "method",
        "instance": inst,
        "instance_hash": "h-" + inst,
        "family": fam,
        "method": method,
        "method_kind": kind,
        "status": status,
        "gain": gain if ok else None,
        "latency": empty - gain if ok else None,
        "empty_latency": empty,
        "bound": bound,
        "feasible": True if ok else None,
        "wall_time": t,
        "K": K,
        "N": 2,
        "L": 1,
        "G": 4,
        "binaries": 8,
        "equal_sizes": True,
        "param_capacity": cap,
        "guarantee_ratio": guarantee,
        "guarantee_conditions": "K = 1" if guarantee else None,
        "guarantee_source": "test theorem" if guarantee else None,
        "guarantee_applies": (K == 1) if guarantee else None,
        "error": None if ok else "boom",
    }


def synthetic() -> pd.DataFrame:
    """Four instances; exact 'ex', a guaranteed heuristic 'h' (1 - 1/e when K = 1) and 'g'."""
    rows = [
        _row("i1", "ex", "optimal", 10.0, kind="exact", bound=10.0, t=2.0),
        _row("i1", "h", "feasible", 5.0, guarantee=E, t=0.5),
        _row("i1", "g", "feasible", 8.0, t=0.0),
        _row("i2", "ex", "time-limit", 8.0, K=2, kind="exact", bound=12.0, t=20.0, cap=0.5),
        _row("i2", "h", "feasible", 4.0, K=2, guarantee=E, t=0.5, cap=0.5),
        _row("i2", "g", "feasible", 8.0, K=2, t=0.0, cap=0.5),
        _row("i3", "ex", "optimal", 0.0, kind="exact", bound=0.0, t=1.0, fam="z"),
        _row("i3", "h", "feasible", 0.0, guarantee=E, t=0.5, fam="z"),
        _row("i3", "g", "not-applicable", 0.0, t=0.0, fam="z"),
        _row("i4", "ex", "optimal", 20.0, kind="exact", bound=20.0, t=3.0, fam="z"),
        _row("i4", "h", "error", 0.0, guarantee=E, t=0.5, fam="z"),
        _row("i4", "g", "feasible", 19.0, t=0.0, fam="z"),
    ]
    return pd.DataFrame(rows)


def test_ratios_against_references() -> None:
    runs = tables.score(synthetic()).set_index(["instance", "method"])
    assert runs.loc[("i1", "h"), "gain_ratio"] == pytest.approx(0.5)
    assert runs.loc[("i1", "h"), "latency_ratio"] == pytest.approx(95.0 / 90.0)
    assert np.isnan(runs.loc[("i1", "h"), "bound_ratio"])  # optimum proven: no bound ratio
    # i2: no proven optimum; best exact incumbent 8, best bound 12
    assert runs.loc[("i2", "h"), "ref_proven"] == False  # noqa: E712
    assert runs.loc[("i2", "h"), "gain_ratio"] == pytest.approx(0.5)
    assert runs.loc[("i2", "h"), "bound_ratio"] == pytest.approx(4.0 / 12.0)
    assert runs.loc[("i2", "g"), "bound_ratio"] == pytest.approx(8.0 / 12.0)
    # i3: nothing to gain: every placement is optimal
    assert runs.loc[("i3", "h"), "gain_ratio"] == 1.0 and runs.loc[("i3", "h"), "latency_ratio"] == 1.0
    # failures and not-applicable runs get no ratio
    assert np.isnan(runs.loc[("i4", "h"), "gain_ratio"]) and np.isnan(runs.loc[("i3", "g"), "gain_ratio"])


def test_summary_aggregates() -> None:
    s = tables.summary_table(tables.score(synthetic())).set_index(["family", "method"])
    h = s.loc[("all", "h")]
    assert (h["runs"], h["ok"], h["failed"], h["skipped"]) == (4, 3, 1, 0)
    assert h["gain_mean"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert h["gain_gmean"] == pytest.approx((0.5 * 0.5 * 1.0) ** (1 / 3))
    assert h["gain_worst"] == pytest.approx(0.5)
    assert h["lat_worst"] == pytest.approx(max(95.0 / 90.0, 96.0 / 92.0))
    assert h["bound_worst"] == pytest.approx(4.0 / 12.0)
    assert h["time_sgm"] == pytest.approx(0.5)  # equal times: the shifted geomean is the time
    g = s.loc[("z", "g")]
    assert (g["runs"], g["skipped"]) == (2, 1) and g["gain_mean"] == pytest.approx(0.95)
    ex = s.loc[("f", "ex")]
    assert ex["time_sgm"] == pytest.approx(math.sqrt(3.0 * 21.0) - 1.0)


def test_shifted_geomean_and_geomean() -> None:
    assert tables.shifted_geomean([0.0, 3.0], 1.0) == pytest.approx(1.0)
    assert tables.shifted_geomean([9.0], 1.0) == pytest.approx(9.0)
    assert math.isnan(tables.shifted_geomean([], 1.0))
    assert tables.geomean([0.5, 2.0]) == pytest.approx(1.0)
    # a zero ratio: the geometric mean says nothing about the others (n/a, never 0)
    assert math.isnan(tables.geomean([0.0, 1.0]))


def test_every_violation_is_listed_with_its_instance() -> None:
    v = tables.guarantee_violations(tables.score(synthetic()))
    got = sorted(zip(v["instance"], v["method"], v["kind"]))
    # i1: 5 < 0.632 * 10 (applies, K = 1); i2 is below too but K = 2: the theorem does not apply;
    # i4 failed while the guarantee applies
    assert got == [("i1", "h", "below"), ("i4", "h", "failed")]
    assert "proven optimum 10" in v[v["kind"] == "below"]["detail"].item()


def test_conditions_evaluated_from_columns_when_the_flag_is_missing() -> None:
    df = synthetic().drop(columns=["guarantee_applies"])
    v = tables.guarantee_violations(tables.score(df))
    assert sorted(zip(v["instance"], v["kind"])) == [("i1", "below"), ("i4", "failed")]


def test_references_from_the_file_override_weaker_table_values() -> None:
    from moebench.bench.references import Reference

    refs = {("i2", "h-i2"): Reference("i2", "h-i2", 10.0, 90.0, True, 10.0, "cpsat", "cpsat")}
    runs = tables.score(synthetic(), refs).set_index(["instance", "method"])
    assert runs.loc[("i2", "h"), "ref_proven"] == True  # noqa: E712
    assert runs.loc[("i2", "h"), "gain_ratio"] == pytest.approx(0.4)
    assert runs.loc[("i2", "g"), "gain_ratio"] == pytest.approx(0.8)
