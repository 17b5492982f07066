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
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from moebench.bench.references import Reference, reconcile

#: Statuses whose rows carry a placement (and get ratios).
WITH_PLACEMENT = ("optimal", "feasible", "time-limit")
FAILED = ("error", "invalid", "infeasible")
SKIPPED = ("not-applicable", "unavailable")
#: Absolute tolerance (relative to max(1, Lat(empty))) of ratio comparisons and the guarantee check.
RTOL = 1e-9

#: How the report evaluates the guarantee conditions of moebench.methods.CONDITIONS from table columns.
CONDITION_COLUMNS = {
    "K = 1": lambda df: df["K"] == 1,
    "single server": lambda df: df["N"] == 1,
    "equal expert sizes": lambda df: df["equal_sizes"].astype(str).str.lower() == "true",
    "single layer": lambda df: df["L"] == 1,
}


def shifted_geomean(values: Any, shift: float = 1.0) -> float:
    """Shifted geometric mean ``exp(mean(log(v + shift))) - shift`` (NaN for no values)."""
    v = np.asarray(pd.Series(values).dropna(), dtype=float)
    if v.size == 0:
        return math.nan
    return float(np.exp(np.mean(np.log(np.maximum(v, 0.0) + shift))) - shift)


def geomean(values: Any) -> float:
    """Geometric mean (0 when any value is 0; NaN for no values)."""
    v = np.asarray(pd.Series(values).dropna(), dtype=float)
    if v.size == 0:
        return math.nan
    if np.any(v <= 0):
        return 0.0
    return float(np.exp(np.mean(np.log(v))))


def _bool(col: pd.Series) -> pd.Series:
    return col.astype(str).str.lower().isin(("true", "1", "1.0"))


def attach_references(df: pd.DataFrame, refs: dict[tuple[str, str], Reference] | None = None) -> pd.DataFrame:
    """Add ``ref_gain``, ``ref_latency``, ``ref_proven``, ``ref_bound`` and ``ref_method``.

    ``refs`` (from a reference file) are merged with the exact runs of the table itself, so a
    table is self-sufficient when it contains its reference runs; a row whose bound or optimum
    another placement refutes becomes an ``error`` row (``refuted: ...``).
    """
    rec = reconcile(dict(refs or {}), df.to_dict("records"))
    merged = rec.refs
    keys = list(zip(df["instance"].astype(str), df["instance_hash"].astype(str)))
    out = df.copy()
    if rec.rejected:  # a claim refuted by another placement is a failure the report lists (issue 12)
        at = out.index[sorted(rec.rejected)]
        out["error"] = out["error"].astype(object) if "error" in out else None
        out.loc[at, "status"] = "error"
        out.loc[at, "error"] = [f"refuted: {rec.rejected[i].message}" for i in sorted(rec.rejected)]
    out["ref_gain"] = [merged[k].gain if k in merged else None for k in keys]
    out["ref_latency"] = [merged[k].latency if k in merged else None for k in keys]
    out["ref_proven"] = [bool(merged[k].proven) if k in merged else False for k in keys]
    out["ref_bound"] = [merged[k].bound if k in merged else None for k in keys]
    out["ref_method"] = [merged[k].method if k in merged else None for k in keys]
    for c in ("ref_gain", "ref_latency", "ref_bound"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``gain_ratio``, ``latency_ratio`` and ``bound_ratio`` (see the module docstring)."""
    out = df.copy()
    ok = out["status"].isin(WITH_PLACEMENT) & _bool(out["feasible"])
    gain = pd.to_numeric(out["gain"], errors="coerce")
    lat = pd.to_numeric(out["latency"], errors="coerce")
    empty = pd.to_numeric(out["empty_latency"], errors="coerce")
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


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per family × method aggregates (plus family ``all``), from a table with ratios.

    Columns: runs, ok, failed, skipped, gain ratio (mean, gmean, worst), latency ratio
    (mean, gmean, worst), bound ratio (mean, worst; no proven optimum only), time (shifted
    geometric mean, s).
    """
    rows = []
    groups = [(fam, m, g) for (fam, m), g in df.groupby(["family", "method"], sort=True)]
    if df["family"].nunique() > 1:
        groups += [("all", m, g) for m, g in df.groupby("method", sort=True)]
    for fam, method, g in groups:
        rows.append(
            {
                "family": fam,
                "method": method,
                "runs": len(g),
                "ok": int(g["status"].isin(WITH_PLACEMENT).sum()),
                "failed": int(g["status"].isin(FAILED).sum()),
                "skipped": int(g["status"].isin(SKIPPED).sum()),
                "gain_mean": float(g["gain_ratio"].mean()),
                "gain_gmean": geomean(g["gain_ratio"]),
                "gain_worst": float(g["gain_ratio"].min()),
                "lat_mean": float(g["latency_ratio"].mean()),
                "lat_gmean": geomean(g["latency_ratio"]),
                "lat_worst": float(g["latency_ratio"].max()),
                "bound_mean": float(g["bound_ratio"].mean()),
                "bound_worst": float(g["bound_ratio"].min()),
                "time_sgm": shifted_geomean(pd.to_numeric(g[time_column(g)], errors="coerce"), 1.0),
            }
        )
    return pd.DataFrame(rows)


def guarantee_applies(df: pd.DataFrame) -> pd.Series:
    """Whether each row's declared guarantee applies to its instance.

    Uses the ``guarantee_applies`` column the runner computed from the instance; where it is
    missing, evaluates ``guarantee_conditions`` on the K, N, L and equal_sizes columns.
    """
    has = df["guarantee_ratio"].notna() if "guarantee_ratio" in df else pd.Series(False, index=df.index)
    if "guarantee_applies" in df:
        known = df["guarantee_applies"].notna()
        applies = _bool(df["guarantee_applies"]).where(known)
    else:
        applies = pd.Series(np.nan, index=df.index, dtype=object)
    conds = df["guarantee_conditions"] if "guarantee_conditions" in df else pd.Series("", index=df.index)
    for i in df.index[has & applies.isna()]:
        names = [c for c in str(conds.get(i) or "").split(";") if c and c != "nan"]
        row = df.loc[[i]]
        applies.loc[i] = all(bool(CONDITION_COLUMNS[c](row).iloc[0]) for c in names if c in CONDITION_COLUMNS)
    return has & applies.fillna(False).astype(bool)


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
    empty = pd.to_numeric(df["empty_latency"], errors="coerce").fillna(0.0)
    tol = RTOL * np.maximum(1.0, empty)
    ratio = pd.to_numeric(df["guarantee_ratio"], errors="coerce")
    gain = pd.to_numeric(df["gain"], errors="coerce")
    below = applies & df["gain_ratio"].notna() & (gain < ratio * df["ref_gain"] - tol)
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


def sweep_parameters(df: pd.DataFrame) -> list[str]:
    """Numeric ``param_*`` columns that take more than one value within some family."""
    out = []
    for c in sorted(c for c in df.columns if c.startswith("param_")):
        vals = pd.to_numeric(df[c], errors="coerce")
        if vals.notna().all() and (df.assign(_v=vals).groupby("family")["_v"].nunique() > 1).any():
            out.append(c)
    return out


def score(df: pd.DataFrame, refs: dict[tuple[str, str], Reference] | None = None) -> pd.DataFrame:
    """References attached and ratios added: the per-run table every report part reads."""
    return add_ratios(attach_references(df, refs))


def time_column(df: pd.DataFrame) -> str:
    """The method's own time when recorded (excludes child-process start-up), else wall time."""
    if "method_time" in df.columns and pd.to_numeric(df["method_time"], errors="coerce").notna().any():
        return "method_time"
    return "wall_time"
