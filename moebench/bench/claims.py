"""Claims on methods' gain ratios, and the runs and searches that fall below them.

A *claim* is a lower bound on R(method) / R(opt): a method's declared
:class:`~moebench.methods.Guarantee` (its conditions are checked on every instance), or a
``claim`` of a suite's ``[[stress]]`` entry, for claims a method does not declare itself. Its
conditions are checked where they name conditions of :data:`moebench.status.CONDITIONS`; the
rest is asserted by the suite. A run is below a claim when its gain is below ``ratio`` x the
reference gain (the proven optimum, or the best known gain: then the violation is still
certain). The runner uses this to write the instance files a report may cite
(:mod:`moebench.bench.artifacts`); the reports use it to list violations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from moebench.bench.references import Reference, reconcile
from moebench.schema.rows import column
from moebench.status import WITH_PLACEMENT, Status, check_conditions, checkable, conditions_hold, split_conditions

#: Absolute tolerance (relative to max(1, Lat(empty))) of gain comparisons against a reference.
RTOL = 1e-9
#: Ratios below a claim by more than this count as violations (stress searches).
CLAIM_TOL = 1e-9


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
    if rec.rejected:  # a claim refuted by another placement is a failure the report lists
        at = out.index[sorted(rec.rejected)]
        out["error"] = out["error"].astype(object) if "error" in out else None
        out.loc[at, "status"] = "error"
        out.loc[at, "error"] = [rec.rejected[i].row_error for i in sorted(rec.rejected)]
    refs_of = [merged.get(k) for k in keys]
    for col, field in (("ref_gain", "gain"), ("ref_latency", "latency"), ("ref_bound", "bound")):
        # None (no reference, or no such value) becomes NaN
        out[col] = pd.Series([None if r is None else getattr(r, field) for r in refs_of], index=out.index, dtype=float)
    out["ref_proven"] = pd.Series([bool(r is not None and r.proven) for r in refs_of], index=out.index, dtype=bool)
    out["ref_method"] = [None if r is None else r.method for r in refs_of]
    return out


def guarantee_applies(df: pd.DataFrame) -> pd.Series:
    """Whether each row's declared guarantee applies to its instance.

    The conditions (``guarantee_conditions``) are evaluated on the instance facts every row
    carries (K, N, L, equal_sizes), with the same definitions the runner used on the instance.
    """
    has = column(df, "guarantee_ratio").notna()
    conds = column(df, "guarantee_conditions").fillna("")  # no conditions: applies always
    applies = pd.Series(False, index=df.index)
    for text in conds[has].unique():
        applies |= has & (conds == text) & conditions_hold(split_conditions(text), df)
    return applies


def below(df: pd.DataFrame, ratio: pd.Series | float) -> pd.Series:
    """Runs with a feasible placement and a reference whose gain is below ``ratio`` x the
    reference gain beyond tolerance.

    Against a proven optimum this is exact; against the best known gain it is still certain,
    since the optimum is at least that.
    """
    ok = df["status"].isin(WITH_PLACEMENT) & df["feasible"] & df["ref_gain"].notna()
    tol = RTOL * np.maximum(1.0, df["empty_latency"].fillna(0.0))
    return ok & (df["gain"] < ratio * df["ref_gain"] - tol)


@dataclass(frozen=True)
class Claim:
    """A claimed lower bound on a method's gain ratio.

    Attributes
    ----------
    method : str
        The method.
    ratio : float
        The claimed ratio.
    source : str
        Where the claim comes from.
    conditions : str
        When it is claimed to hold (``;``-separated; names of CONDITIONS are checked).
    declared : bool
        True for the method's own declared guarantee, False for a suite's claim.
    """

    method: str
    ratio: float
    source: str
    conditions: str
    declared: bool

    def checked(self) -> list[str]:
        """The conditions that are checked on instances."""
        return checkable(self.conditions)


def stress_records(stress: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The stress rows of a results table as records (missing values as None), in table order."""
    if stress is None or stress.empty:
        return []
    return stress.astype(object).where(stress.notna(), None).to_dict("records")


def ratio_or_nan(v: Any) -> float:
    """A record's ratio as float (NaN when missing)."""
    return math.nan if v is None else float(v)


def collect_claims(runs: pd.DataFrame, stress: list[dict[str, Any]]) -> list[Claim]:
    """Every claim of the report: declared guarantees (runs and stress searches), then suite claims."""
    declared: dict[str, Claim] = {}
    if "guarantee_ratio" in runs and not runs.empty:
        has = runs[runs["guarantee_ratio"].notna()]
        for method, g in has.groupby("method", sort=True):
            declared[str(method)] = _declared(str(method), g.iloc[0])
    for rec in stress:
        if rec.get("guarantee_ratio") is not None and rec["method"] not in declared:
            declared[rec["method"]] = _declared(rec["method"], rec)
    extra: dict[tuple[Any, ...], Claim] = {}
    for rec in stress:
        if rec.get("claim") is not None:
            c = Claim(
                rec["method"],
                float(rec["claim"]),
                str(rec.get("claim_source") or ""),
                str(rec.get("claim_conditions") or ""),
                False,
            )
            extra.setdefault((c.method, c.ratio, c.source, c.conditions), c)
    return [declared[m] for m in sorted(declared)] + list(extra.values())


def _declared(method: str, row: Any) -> Claim:
    """The declared guarantee of a run's row or a stress record, as a claim."""
    src = row.get("guarantee_source")
    conditions = str(row.get("guarantee_conditions") or "").replace(";", "; ")
    return Claim(method, float(row["guarantee_ratio"]), src if isinstance(src, str) else "", conditions, True)


def runs_where_claimed(runs: pd.DataFrame, claim: Claim) -> pd.Series:
    """Rows of ``claim.method`` whose instance satisfies the claim's checked conditions."""
    if runs.empty:
        return pd.Series(False, index=runs.index)
    mine = runs["method"].astype(str) == claim.method
    if claim.declared and "guarantee_ratio" in runs:
        return mine & guarantee_applies(runs)
    return mine & conditions_hold(claim.checked(), runs)


def run_violations(runs: pd.DataFrame, claim: Claim) -> pd.Series:
    """Rows where the claim holds by its conditions and R(alg) < ratio x R(ref) beyond tolerance."""
    return runs_where_claimed(runs, claim) & below(runs, claim.ratio)


def stress_where_claimed(stress: list[dict[str, Any]], claim: Claim) -> list[dict[str, Any]]:
    """Successful searches of ``claim.method`` whose worst instance satisfies the claim's conditions."""
    out = []
    for rec in stress:
        if rec.get("method") != claim.method or rec.get("status") != Status.FEASIBLE.value:
            continue
        if math.isnan(ratio_or_nan(rec.get("worst_ratio"))):
            continue
        if rec.get("guarantee_applies") is True if claim.declared else not check_conditions(claim.checked(), rec):
            out.append(rec)
    return out


def cited_runs(runs: pd.DataFrame, stress: list[dict[str, Any]]) -> pd.Series:
    """Runs below any claim of the table (their instances are what a report cites)."""
    out = pd.Series(False, index=runs.index)
    for claim in collect_claims(runs, stress):
        out |= run_violations(runs, claim)
    return out
