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

from moebench.bench import claims
from moebench.bench.claims import attach_references, guarantee_applies
from moebench.bench.references import Reference
from moebench.schema.rows import PARAM_PREFIX, conform, param_values
from moebench.status import FAILED, SKIPPED, WITH_PLACEMENT

#: Absolute tolerance (relative to max(1, Lat(empty))) of ratio comparisons and the guarantee check.
RTOL = claims.RTOL


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
                "time_sgm": shifted_geomean(g[time_column(g)], 1.0),
            }
        )
    return pd.DataFrame(rows)


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


def sweep_parameters(df: pd.DataFrame) -> list[str]:
    """Numeric ``param_*`` columns that take more than one value within some family."""
    out = []
    for c in sorted(c for c in df.columns if c.startswith(PARAM_PREFIX)):
        vals = param_values(df, c)
        if vals.notna().all() and (df.assign(_v=vals).groupby("family")["_v"].nunique() > 1).any():
            out.append(c)
    return out


def score(df: pd.DataFrame, refs: dict[tuple[str, str], Reference] | None = None) -> pd.DataFrame:
    """The table typed by the row schema, references attached and ratios added: the per-run
    table every report part reads."""
    return add_ratios(attach_references(conform(df), refs))


def time_column(df: pd.DataFrame) -> str:
    """The method's own time when recorded (excludes child-process start-up), else wall time."""
    if "method_time" in df.columns and df["method_time"].notna().any():
        return "method_time"
    return "wall_time"
