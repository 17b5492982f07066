"""Scoring (SPEC section 5): ratios against references, aggregates and guarantee checks.

Definitions used throughout the report:

- ``gain_ratio`` = R(alg) / R(ref), where R(ref) is the proven optimum or, failing that, the
  best gain of any exact run. When R(ref) is 0 (nothing can be gained) the ratio is 1.
- ``latency_ratio`` = Lat(alg) / Lat(ref) (>= 1 against a proven optimum; what users feel).
- ``bound_ratio`` = R(alg) / UB, only where no optimum is proven: a certified lower bound
  on the true gain ratio.
- Ratios exist only for runs with a placement (status optimal, feasible or time-limit); runs
  that failed (error, invalid, infeasible) are counted in ``failed`` and listed in the
  failures section, never averaged in silently; not-applicable and unavailable runs are
  counted in ``skipped``.
- Times: shifted geometric mean (shift 1 s) of the method time (the solve call itself, without
  child-process start-up), or of the wall time where no method time was recorded.
- Geometric means of ratios are taken only where every ratio is positive; one zero ratio makes
  the geometric mean 0 whatever the other values, so it is reported as n/a (NaN here) with the
  number of zero ratios (``gain_zero``) beside it.
- Common ground: every aggregate says over how many distinct instances it was taken
  (``instances``) and how many its family has in the table (``family_instances``); a method
  that does not apply everywhere (a K = 1-only method) or failed somewhere is never averaged
  over another set than its neighbours without that count (see :func:`common_ground`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from moebench.bench import claims
from moebench.bench.claims import attach_references, guarantee_applies
from moebench.bench.references import Reference
from moebench.schema.rows import conform
from moebench.status import FAILED, SKIPPED, WITH_PLACEMENT, Status

#: Absolute tolerance (relative to max(1, Lat(empty))) of ratio comparisons and the guarantee check.
RTOL = claims.RTOL


def shifted_geomean(values: Any, shift: float = 1.0) -> float:
    """Shifted geometric mean ``exp(mean(log(v + shift))) - shift`` (NaN for no values)."""
    v = np.asarray(pd.Series(values).dropna(), dtype=float)
    if v.size == 0:
        return math.nan
    return float(np.exp(np.mean(np.log(np.maximum(v, 0.0) + shift))) - shift)


def geomean(values: Any) -> float:
    """Geometric mean of positive values; NaN for no values or when any value is <= 0 (a
    geometric mean that collapses to 0 says nothing about the other values: report n/a)."""
    v = np.asarray(pd.Series(values).dropna(), dtype=float)
    if v.size == 0 or np.any(v <= 0):
        return math.nan
    return float(np.exp(np.mean(np.log(v))))


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``gain_ratio``, ``latency_ratio`` and ``bound_ratio`` (see the module docstring)."""
    out = df.copy()
    ok = out["status"].isin(WITH_PLACEMENT) & out["feasible"]
    gain, lat, empty = out["gain"], out["latency"], out["empty_latency"]
    tol = RTOL * np.maximum(1.0, empty)
    ref = out["ref_gain"]
    ref_lat = out["ref_latency"].where(out["ref_latency"].notna(), empty - ref)
    nothing = ref <= tol
    gr = np.where(nothing, 1.0, gain / ref.where(~nothing))
    out["gain_ratio"] = pd.Series(gr, index=out.index).where(ok & ref.notna())
    out["latency_ratio"] = (lat / ref_lat).where(ok & ref_lat.notna() & (ref_lat > 0))
    ub = out["ref_bound"]
    br = np.where(ub <= tol, 1.0, gain / ub.where(ub > tol))
    out["bound_ratio"] = pd.Series(br, index=out.index).where(ok & ub.notna() & ~out["ref_proven"])
    return out


#: Order of the method kinds in grouped tables (exact back ends first, baselines last).
KIND_ORDER = ("exact", "approximation", "heuristic", "baseline")


def kind_rank(kind: Any) -> int:
    """Position of a method kind in :data:`KIND_ORDER` (unknown kinds last)."""
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def run_gap(df: pd.DataFrame) -> pd.Series:
    """Relative gain gap (bound − gain)/bound of each run that reports a bound (NaN elsewhere).

    The recorded ``gap`` column where present, else computed from ``bound`` and ``gain``; a
    proven optimum has gap 0 within the solver's tolerance.
    """
    gap = df["gap"] if "gap" in df else pd.Series(math.nan, index=df.index)
    bound = df["bound"] if "bound" in df else pd.Series(math.nan, index=df.index)
    own = (bound - df["gain"]) / bound.where(bound > 0)
    out = gap.where(gap.notna(), own).clip(lower=0.0)
    return out.where(df["status"].isin(WITH_PLACEMENT))


def reduction_pct(df: pd.DataFrame, latency: str = "latency", empty: str = "empty_latency") -> pd.Series:
    """100 · (Lat(∅) − Lat)/Lat(∅) per run (NaN where there is no latency)."""
    if latency not in df or empty not in df:
        return pd.Series(math.nan, index=df.index)
    e = df[empty]
    return 100.0 * (e - df[latency]) / e.where(e > 0)


def family_instances(df: pd.DataFrame) -> dict[str, int]:
    """Distinct instances (name and content hash) of each family in the table, plus ``all``."""
    inst = df.drop_duplicates(["instance", "instance_hash"])
    out = {str(f): int(n) for f, n in inst.groupby("family").size().items()}
    out["all"] = len(inst)
    return out


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per family × method aggregates (plus family ``all``), from a table with ratios.

    Columns: family, method, kind (method kind), family_instances (distinct instances of the
    family), instances (distinct instances with a ratio: the common ground of this row), runs,
    ok, optimal, time_limit, feasible, failed, skipped, gain ratio (mean, gmean, worst; gmean is
    NaN when any ratio is 0, ``gain_zero`` counts those), latency ratio (mean, gmean, worst),
    bound ratio (mean, worst; no proven optimum only), gap_worst (largest relative gap
    (bound − gain)/bound of a run that reports a bound: the exact back ends), reduction_pct and
    holdout_reduction_pct (mean latency reduction against the empty placement, on the instance
    and on its holdout twin), time_sgm (shifted geometric mean of the method time, shift 1 s).
    """
    rows = []
    counts = family_instances(df)
    d = df.assign(
        _gap=run_gap(df),
        _red=reduction_pct(df).where(df["gain_ratio"].notna()),
        _hred=reduction_pct(df, "holdout_latency", "holdout_empty_latency").where(df["gain_ratio"].notna()),
    )
    groups = [(fam, m, g) for (fam, m), g in d.groupby(["family", "method"], sort=True)]
    if d["family"].nunique() > 1:
        groups += [("all", m, g) for m, g in d.groupby("method", sort=True)]
    for fam, method, g in groups:
        gr = g["gain_ratio"]
        tol = RTOL * np.maximum(1.0, g["empty_latency"])
        kind = g["method_kind"].dropna() if "method_kind" in g else pd.Series(dtype=object)
        rows.append(
            {
                "family": fam,
                "method": method,
                "kind": str(kind.iloc[0]) if not kind.empty else "",
                "family_instances": counts[str(fam)],
                "instances": int(g.loc[gr.notna(), ["instance", "instance_hash"]].drop_duplicates().shape[0]),
                "runs": len(g),
                "ok": int(g["status"].isin(WITH_PLACEMENT).sum()),
                "optimal": int((g["status"] == Status.OPTIMAL.value).sum()),
                "time_limit": int((g["status"] == Status.TIME_LIMIT.value).sum()),
                "feasible": int((g["status"] == Status.FEASIBLE.value).sum()),
                "failed": int(g["status"].isin(FAILED).sum()),
                "skipped": int(g["status"].isin(SKIPPED).sum()),
                "gain_mean": float(gr.mean()),
                "gain_gmean": geomean(gr),
                "gain_zero": int((gr.notna() & (g["ref_gain"] > tol) & (g["gain"] <= tol)).sum()),
                "gain_worst": float(gr.min()),
                "lat_mean": float(g["latency_ratio"].mean()),
                "lat_gmean": geomean(g["latency_ratio"]),
                "lat_worst": float(g["latency_ratio"].max()),
                "bound_mean": float(g["bound_ratio"].mean()),
                "bound_worst": float(g["bound_ratio"].min()),
                "gap_worst": float(g["_gap"].max()),
                "reduction_pct": float(g["_red"].mean()),
                "holdout_reduction_pct": float(g["_hred"].mean()),
                "time_sgm": shifted_geomean(g[time_column(g)], 1.0),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_FIELDS)


#: Columns of :func:`summary_table`.
SUMMARY_FIELDS = (
    "family method kind family_instances instances runs ok optimal time_limit feasible failed skipped "
    "gain_mean gain_gmean gain_zero gain_worst lat_mean lat_gmean lat_worst bound_mean bound_worst gap_worst "
    "reduction_pct holdout_reduction_pct time_sgm"
).split()


def common_ground(summary: pd.DataFrame) -> pd.Series:
    """Per summary row: whether its aggregates cover every instance of its family.

    A row that does not (a method not applicable everywhere, or failed somewhere) must show
    its own instance count beside its numbers.
    """
    return summary["instances"] == summary["family_instances"]


def overall_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary rows over every family: family ``all`` where there are several families, else all rows."""
    return summary[summary["family"] == "all"] if (summary["family"] == "all").any() else summary


def exact_status(summary: pd.DataFrame) -> pd.DataFrame:
    """Status counts and worst gap of the exact back ends, over all families (one row each)."""
    cols = ["method", "runs", "optimal", "time_limit", "feasible", "failed", "skipped", "gap_worst"]
    scope = overall_rows(summary)
    return scope.loc[scope["kind"] == "exact", cols].reset_index(drop=True)


def guarantee_violations(df: pd.DataFrame) -> pd.DataFrame:
    """Every run whose gain falls below its method's declared guarantee where it applies.

    A run violates the guarantee when R(alg) < ratio · R(ref) beyond tolerance. Against a
    proven optimum this is exact; against the best known gain it is still certain, since the
    optimum is at least that. Runs with a guarantee that failed (error, invalid) are listed
    too, with kind ``failed``.
    """
    if "guarantee_ratio" not in df or df.empty:
        return pd.DataFrame(columns=["instance", "family", "method", "kind", "guarantee", "gain_ratio", "detail"])
    applies = guarantee_applies(df)
    below = applies & claims.below(df, df["guarantee_ratio"])
    failed = applies & df["status"].isin(FAILED)
    rows = []
    for i in df.index[below | failed]:
        r = df.loc[i]
        src = r.get("guarantee_source")
        if bool(failed.loc[i]):
            kind, detail = "failed", f"status {r['status']}: {r.get('error')}"
        else:
            ref = "proven optimum" if bool(r["ref_proven"]) else "best known gain"
            kind = "below"
            detail = (
                f"gain {float(r['gain']):.6g} < {float(r['guarantee_ratio']):.4f} x {ref} {float(r['ref_gain']):.6g}"
            )
        rows.append(
            {
                "instance": r["instance"],
                "family": r["family"],
                "method": r["method"],
                "kind": kind,
                "guarantee": f"{float(r['guarantee_ratio']):.4f}" + (f" ({src})" if isinstance(src, str) else ""),
                "gain_ratio": r["gain_ratio"],
                "detail": detail,
            }
        )
    return pd.DataFrame(rows, columns=["instance", "family", "method", "kind", "guarantee", "gain_ratio", "detail"])


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Every failed run (error, invalid, infeasible) with its error text."""
    f = df[df["status"].isin(FAILED)]
    return f[["instance", "method", "status", "error"]].reset_index(drop=True)


def score(df: pd.DataFrame, refs: dict[tuple[str, str], Reference] | None = None) -> pd.DataFrame:
    """The table typed by the row schema, references attached and ratios added: the per-run
    table every report part reads (reference runs of a benchmarked method's name relabelled,
    :func:`label_references`)."""
    return label_references(add_ratios(attach_references(conform(df), refs)))


#: Suffix of the method name of reference runs whose method is also benchmarked under its name.
REFERENCE_SUFFIX = " (reference)"


def label_references(df: pd.DataFrame) -> pd.DataFrame:
    """Reference runs (role ``reference``) of a method that the suite also benchmarks get the
    method name ``<name> (reference)``: the two are different configurations (the reference
    with the reference's options, e.g. another formulation), never one aggregate."""
    if "role" not in df or df.empty:
        return df
    ref = df["role"].astype(str).eq("reference")
    both = set(df.loc[ref, "method"].astype(str)) & set(df.loc[~ref, "method"].astype(str))
    if not both:
        return df
    out = df.copy()
    rows = ref & out["method"].astype(str).isin(both)
    out.loc[rows, "method"] = out.loc[rows, "method"].astype(str) + REFERENCE_SUFFIX
    return out


def time_column(df: pd.DataFrame) -> str:
    """The method's own time when recorded (excludes child-process start-up), else wall time."""
    if "method_time" in df.columns and df["method_time"].notna().any():
        return "method_time"
    return "wall_time"
