"""Report sections of the ``guarantees`` report: claims checked against runs and stress searches.

Three sections, shown when the results table holds stress searches (rows of kind ``stress``,
from the ``[[stress]]`` entries of a suite; see :mod:`moebench.bench.stress_tasks`):

- *Guarantee claims*: one row per (method, claim). A claim is either a method's declared
  :class:`~moebench.methods.Guarantee` (its conditions are checked on every instance) or a
  ``claim`` of a ``[[stress]]`` entry, for claims a method does not declare itself (the paper's
  (1 − 1/e) for the K = 1 greedy with one knapsack per server). A claim's free-text conditions
  are checked where they name conditions of :data:`moebench.methods.CONDITIONS`; the rest is
  asserted by the suite. For each claim: the worst gain ratio over the suite's runs where the
  conditions hold (against the proven optimum or, failing that, the best known gain — a run
  below ``claim x best known gain`` is a certain violation), the worst ratio the stress searches
  found where they hold, and the verdict.
- *Stress searches*: one row per search (entry x seed).
- *Claim violations*: every run or stress result below a claim, with an instance file that
  reproduces it (the stress worst instance; the committed library file of a file instance; a
  generated instance regenerated from the suite and written to ``<results>/violations/``).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moebench.bench.stress_tasks import CLAIM_TOL
from moebench.report import tables
from moebench.report.sections import ReportContext, Section, register_section
from moebench.report.writers import fmt
from moebench.schema.rows import decode_json
from moebench.status import Status, check_conditions, checkable, conditions_hold


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


def stress_records(stress: pd.DataFrame) -> list[dict[str, Any]]:
    """The stress rows of a results table as records (missing values as None), in table order."""
    if stress is None or stress.empty:
        return []
    return stress.astype(object).where(stress.notna(), None).to_dict("records")


def ratio_or_nan(v: Any) -> float:
    """A record's ratio as float (NaN when missing)."""
    return math.nan if v is None else float(v)


def _count(v: Any) -> int | None:
    return None if v is None else int(v)


def _slug(rec: dict[str, Any]) -> str:
    return f"{rec.get('stress_name')}-s{_count(rec.get('seed'))}"


def collect_claims(runs: pd.DataFrame, stress: list[dict[str, Any]]) -> list[Claim]:
    """Every claim of the report: declared guarantees (runs and stress searches), then suite claims."""
    declared: dict[str, Claim] = {}
    if "guarantee_ratio" in runs and not runs.empty:
        has = runs[runs["guarantee_ratio"].notna()]
        for method, g in has.groupby("method", sort=True):
            r = g.iloc[0]
            src = r.get("guarantee_source")
            declared[str(method)] = Claim(
                str(method),
                float(r["guarantee_ratio"]),
                src if isinstance(src, str) else "",
                str(r.get("guarantee_conditions") or "").replace(";", "; "),
                True,
            )
    for rec in stress:
        if rec.get("guarantee_ratio") is not None and rec["method"] not in declared:
            declared[rec["method"]] = Claim(
                rec["method"],
                float(rec["guarantee_ratio"]),
                str(rec.get("guarantee_source") or ""),
                str(rec.get("guarantee_conditions") or "").replace(";", "; "),
                True,
            )
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


def runs_where_claimed(runs: pd.DataFrame, claim: Claim) -> pd.Series:
    """Rows of ``claim.method`` whose instance satisfies the claim's checked conditions."""
    if runs.empty:
        return pd.Series(False, index=runs.index)
    mine = runs["method"].astype(str) == claim.method
    if claim.declared and "guarantee_ratio" in runs:
        return mine & tables.guarantee_applies(runs)
    return mine & conditions_hold(claim.checked(), runs)


def run_violations(runs: pd.DataFrame, claim: Claim) -> pd.Series:
    """Rows where the claim holds by its conditions and R(alg) < ratio x R(ref) beyond tolerance."""
    return runs_where_claimed(runs, claim) & tables.below_ratio(runs, claim.ratio)


def stress_where_claimed(stress: list[dict[str, Any]], claim: Claim) -> list[dict[str, Any]]:
    """Successful searches of ``claim.method`` whose worst instance satisfies the claim's conditions."""
    out = []
    for rec in stress:
        if rec.get("method") != claim.method or rec.get("status") != Status.FEASIBLE.value:
            continue
        if math.isnan(ratio_or_nan(rec.get("worst_ratio"))):
            continue
        if claim.declared:
            if rec.get("guarantee_applies") is not True:
                continue
        else:
            if check_conditions(claim.checked(), rec):
                continue
        out.append(rec)
    return out


# ---- instance files of violating runs ----------------------------------------------------------
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class InstanceFinder:
    """Finds (or writes) an instance file reproducing a run's instance, checked by content hash.

    File instances of the suite are cited where they are (committed library files); generated
    ones are regenerated from the suite (or, failing that, from the row's family, ``param_*``
    columns and seed) and written to ``<results>/violations/<name>.json.gz``.
    """

    def __init__(self, results_dir: Path | None) -> None:
        self.base = results_dir
        self._index: dict[tuple[str, str], Any] | None = None

    def _suite_index(self) -> dict[tuple[str, str], Any]:
        if self._index is not None:
            return self._index
        self._index = {}
        if self.base is None:
            return self._index
        from moebench.bench.suite import load_suite, materialize
        from moebench.instance_file import load_instance

        candidates = []
        try:
            run = json.loads((self.base / "run.json").read_text())
            candidates.append(Path(run["suite"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        candidates.append(self.base / "suite.toml")
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return self._index
        try:
            suite = load_suite(path)
            for src in suite.sources:
                if src.files:
                    for pattern in src.files:
                        full = pattern if os.path.isabs(pattern) else str(path.parent / pattern)
                        import glob

                        for f in sorted(glob.glob(full)) if glob.has_magic(full) else [full]:
                            inst = load_instance(f)
                            self._index[(inst.name, inst.content_hash)] = Path(f)
                else:
                    for inst in materialize(src, path):
                        self._index[(inst.name, inst.content_hash)] = inst
        except Exception:  # a report must not fail because the suite changed since the run
            pass
        return self._index

    def _regenerate(self, row: pd.Series) -> Any:
        from moebench.families import generate
        from moebench.instance import replace_arrays

        params = {c[len("param_") :]: row[c] for c in row.index if c.startswith("param_") and pd.notna(row[c])}
        params = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in params.items()}
        try:
            inst = generate(str(row["family"]), params, seed=int(row["instance_seed"]))
        except Exception:
            return None
        return replace_arrays(inst, name=str(row["instance"]))

    def file_for(self, row: pd.Series) -> str:
        """Path (relative to the results folder) of a file holding the row's instance, or ''."""
        if self.base is None:
            return ""
        from moebench.instance_file import load_instance, save_instance

        name, h = str(row["instance"]), str(row["instance_hash"])
        target = self.base / "violations" / f"{_safe(name)}.json.gz"
        if target.exists():
            try:
                if load_instance(target).content_hash == h:
                    return os.path.relpath(target, self.base)
            except Exception:
                pass
        found = self._suite_index().get((name, h))
        if isinstance(found, Path):
            return os.path.relpath(found, self.base)
        if found is None:
            found = self._regenerate(row)
            if found is None or found.content_hash != h:
                return ""
        save_instance(found, target)
        return os.path.relpath(target, self.base)


# ---- the sections ----------------------------------------------------------------------------
def claims_table(
    runs: pd.DataFrame, stress: list[dict[str, Any]], finder: InstanceFinder | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims table and the violations table (both unformatted).

    Returns
    -------
    claims : DataFrame
        method, claim, conditions, source, declared, runs, runs_worst, stress_searches,
        stress_evaluations, stress_worst, violations, verdict.
    violations : DataFrame
        what (run / stress), method, claim, source, instance, gain_ratio, detail, instance_file.
    """
    finder = finder or InstanceFinder(None)
    claims = collect_claims(runs, stress)
    rows, viol = [], []
    files: dict[tuple[str, str], str] = {}

    def run_file(r: pd.Series) -> str:
        key = (str(r["instance"]), str(r["instance_hash"]))
        if key not in files:
            files[key] = finder.file_for(r)
        return files[key]

    for c in claims:
        where = runs_where_claimed(runs, c) & runs["gain_ratio"].notna() if not runs.empty else pd.Series(dtype=bool)
        n = int(where.sum()) if len(where) else 0
        worst = float(runs.loc[where, "gain_ratio"].min()) if n else math.nan
        st = stress_where_claimed(stress, c)
        s_worst = min((ratio_or_nan(r["worst_ratio"]) for r in st), default=math.nan)
        s_evals = int(sum(int(r.get("evaluations") or 0) for r in st))
        bad: list[tuple[float, str]] = []
        if n:
            below = run_violations(runs, c)
            for i in runs.index[below]:
                r = runs.loc[i]
                path = run_file(r)
                ref = "proven optimum" if bool(r["ref_proven"]) else "best known gain"
                bad.append((float(r["gain_ratio"]), path or str(r["instance"])))
                viol.append(
                    {
                        "what": "run",
                        "method": c.method,
                        "claim": c.ratio,
                        "source": c.source,
                        "instance": r["instance"],
                        "gain_ratio": float(r["gain_ratio"]),
                        "detail": f"gain {float(r['gain']):.6g} < {c.ratio:.4f} x {ref} {float(r['ref_gain']):.6g}",
                        "instance_file": path,
                    }
                )
        for rec in st:
            ratio = ratio_or_nan(rec["worst_ratio"])
            if ratio < c.ratio - CLAIM_TOL:
                path = str(rec.get("instance_file") or "")
                bad.append((ratio, path or str(rec.get("instance"))))
                viol.append(
                    {
                        "what": "stress",
                        "method": c.method,
                        "claim": c.ratio,
                        "source": c.source,
                        "instance": rec.get("instance"),
                        "gain_ratio": ratio,
                        "detail": (
                            f"gain {float(rec['gain_method']):.6g} vs optimum {float(rec['gain_optimum']):.6g} "
                            f"({rec.get('reference')}); search {_slug(rec)}, {_count(rec.get('evaluations'))} evaluations"
                        ),
                        "instance_file": path,
                    }
                )
        if bad:
            r_min, where_min = min(bad)
            verdict = f"VIOLATED: ratio {r_min:.4f} on {where_min}" + (
                f" ({len(bad)} violations)" if len(bad) > 1 else ""
            )
        elif n or s_evals:
            verdict = f"holds on {n} runs and {s_evals} stress evaluations"
        else:
            verdict = "untested: no run or stress search where the conditions hold"
        rows.append(
            {
                "method": c.method,
                "claim": c.ratio,
                "conditions": c.conditions or "always",
                "source": c.source,
                "declared": c.declared,
                "runs": n,
                "runs_worst": worst,
                "stress_searches": len(st),
                "stress_evaluations": s_evals,
                "stress_worst": s_worst,
                "violations": len(bad),
                "verdict": verdict,
            }
        )
    claims_df = pd.DataFrame(
        rows,
        columns=[
            "method",
            "claim",
            "conditions",
            "source",
            "declared",
            "runs",
            "runs_worst",
            "stress_searches",
            "stress_evaluations",
            "stress_worst",
            "violations",
            "verdict",
        ],
    )
    viol_df = pd.DataFrame(
        viol, columns=["what", "method", "claim", "source", "instance", "gain_ratio", "detail", "instance_file"]
    )
    return claims_df, viol_df


def suite_claim_verdicts(claims: pd.DataFrame) -> list[str]:
    """One plain sentence per suite claim (not declared by the methods), over all its methods."""
    out = []
    mine = claims[~claims["declared"].astype(bool)]
    for (ratio, source, conds), g in mine.groupby(["claim", "source", "conditions"], sort=False):
        bad = [f"{r['method']} ({r['verdict'][len('VIOLATED: ') :]})" for _, r in g.iterrows() if r["violations"]]
        good = [
            f"{r['method']} (worst {fmt(float(np.nanmin([r['runs_worst'], r['stress_worst']])), 4)})"
            for _, r in g.iterrows()
            if not r["violations"] and (r["runs"] or r["stress_evaluations"])
        ]
        text = f"Claim {fmt(float(ratio), 4)} of {source} ({conds}): "
        text += f"VIOLATED by {', '.join(bad)}" if bad else "not violated by any method checked"
        if good:
            text += f"; not violated by {', '.join(good)}"
        out.append(text + ".")
    return out


def failed_guaranteed_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs of methods with an applicable declared guarantee that failed (no placement to check)."""
    v = tables.guarantee_violations(runs)
    return v[v["kind"] == "failed"].reset_index(drop=True) if not v.empty else v


def stress_table(stress: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per stress search (unformatted)."""
    rows = []
    for r in stress:
        rows.append(
            {
                "method": r.get("method"),
                "family": r.get("family"),
                "params": ", ".join(f"{k}={v}" for k, v in sorted((decode_json(r.get("stress_params")) or {}).items())),
                "seed": _count(r.get("seed")),
                "budget": r.get("budget"),
                "evaluations": _count(r.get("evaluations")),
                "restarts": _count(r.get("restarts")),
                "worst_ratio": ratio_or_nan(r.get("worst_ratio")),
                "gain_method": ratio_or_nan(r.get("gain_method")),
                "gain_optimum": ratio_or_nan(r.get("gain_optimum")),
                "claim": r.get("claim") if r.get("claim") is not None else r.get("guarantee_ratio"),
                "instance_file": r.get("instance_file") or "",
                "status": r.get("status"),
                "error": r.get("error") or "",
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "method",
            "family",
            "params",
            "seed",
            "budget",
            "evaluations",
            "restarts",
            "worst_ratio",
            "gain_method",
            "gain_optimum",
            "claim",
            "instance_file",
            "status",
            "error",
        ],
    )


def guarantee_report_sections(
    runs: pd.DataFrame, stress: list[dict[str, Any]], results_dir: Path | None = None
) -> list[Section]:
    """The three sections (empty list when there is neither a claim nor a stress search)."""
    finder = InstanceFinder(results_dir)
    claims, viol = claims_table(runs, stress, finder)
    if claims.empty and not stress:
        return []
    out: list[Section] = []
    if not claims.empty:
        crow = [
            [
                r["method"],
                fmt(float(r["claim"]), 4),
                r["conditions"],
                r["source"] + ("" if r["declared"] else " (checked, not declared)"),
                f"{fmt(r['runs_worst'], 4)} (n={r['runs']})",
                f"{fmt(r['stress_worst'], 4)} ({r['stress_searches']} searches, {r['stress_evaluations']} evals)",
                r["verdict"],
            ]
            for _, r in claims.iterrows()
        ]
        out.append(
            Section(
                "Guarantee claims",
                ["Method", "Claim", "Conditions", "Source", "Worst ratio, runs", "Worst ratio, stress", "Verdict"],
                crow,
                "guarantee-claims",
                note=(
                    "Each method's declared guarantee, and claims a suite checks without the method declaring them, "
                    "against the worst gain ratio R(method)/R(opt) over the runs whose instances satisfy the claim's "
                    "conditions and over the adversarial stress searches. Conditions that name model properties "
                    "(K = 1, single server, ...) are checked on every instance; other text is asserted by the suite. "
                    "A verdict is VIOLATED as soon as one run or stress instance falls below the claim."
                    + "".join(" " + t for t in suite_claim_verdicts(claims))
                ),
                data=claims,
            )
        )
    if stress:
        st = stress_table(stress)
        srow = [
            [
                r["method"],
                r["family"],
                r["params"] or "defaults",
                str(r["seed"]),
                fmt(r["budget"], 0) if isinstance(r["budget"], float) else fmt(r["budget"]),
                fmt(r["evaluations"]),
                fmt(r["restarts"]),
                fmt(r["worst_ratio"], 4) if r["status"] == Status.FEASIBLE.value else f"error: {r['error']}",
                f"{fmt(r['gain_method'], 4)} / {fmt(r['gain_optimum'], 4)}",
                fmt(float(r["claim"]), 4) if r["claim"] is not None and pd.notna(r["claim"]) else "none",
                r["instance_file"] or "–",
            ]
            for _, r in st.iterrows()
        ]
        out.append(
            Section(
                "Stress searches",
                [
                    "Method",
                    "Family",
                    "Params",
                    "Seed",
                    "Budget (s)",
                    "Evaluations",
                    "Restarts",
                    "Worst ratio",
                    "Gain / optimum",
                    "Claim",
                    "Worst instance",
                ],
                srow,
                "stress-searches",
                note=(
                    "Adversarial searches (moebench stress): random restarts plus hill climbing on perturbed sizes, "
                    "capacities, latencies and activation probabilities, keeping the instance with the lowest gain "
                    "ratio against the exact optimum. The worst instance of each search is an instance file "
                    "(paths relative to the results folder) carrying its ratio in meta.stress."
                ),
                data=st,
            )
        )
    failed = failed_guaranteed_runs(runs) if not runs.empty else pd.DataFrame()
    vrows = [
        [
            r["what"],
            r["method"],
            f"{fmt(float(r['claim']), 4)} ({r['source']})" if r["source"] else fmt(float(r["claim"]), 4),
            str(r["instance"]),
            fmt(float(r["gain_ratio"]), 4),
            r["detail"],
            r["instance_file"] or "–",
        ]
        for _, r in viol.iterrows()
    ]
    for _, r in failed.iterrows():
        vrows.append(
            [
                "failed run",
                r["method"],
                str(r["guarantee"]),
                str(r["instance"]),
                "–",
                str(r["detail"]),
                "–",
            ]
        )
    out.append(
        Section(
            "Claim violations",
            ["What", "Method", "Claim", "Instance", "Gain ratio", "Detail", "Instance file"],
            vrows,
            "claim-violations",
            note=(
                "Every run and every stress result below a claim whose conditions hold, with an instance file that "
                "reproduces it (paths relative to the results folder): the committed library file, the stress "
                "search's worst instance, or a generated instance written to violations/."
            ),
            empty="None: no run and no stress search fell below a claim whose conditions hold.",
            data=viol,
        )
    )
    return out


@register_section(order=20)
def guarantee_sections(ctx: ReportContext) -> list[Section]:
    """Provider: the claims, stress and violations sections, for results with stress searches only
    (other reports keep the core guarantee check alone)."""
    stress = stress_records(ctx.stress)
    if not stress:
        return []
    return guarantee_report_sections(ctx.runs, stress, ctx.results_dir)
