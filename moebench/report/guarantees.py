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
  reproduces it (the stress worst instance, or the run's instance that the runner wrote to
  ``violations/``; both listed in ``artifacts.json``, :mod:`moebench.bench.artifacts`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from moebench.bench.claims import (
    CLAIM_TOL,
    Claim,
    collect_claims,
    ratio_or_nan,
    run_violations,
    runs_where_claimed,
    stress_records,
    stress_where_claimed,
)
from moebench.report import tables
from moebench.report.sections import ReportContext, Section, frame_section, register_section
from moebench.report.writers import fmt
from moebench.schema.rows import decode_json
from moebench.status import Status

#: Columns of the unformatted claims, violations and stress-search tables.
CLAIM_COLUMNS = "method claim conditions source declared runs runs_worst stress_searches stress_evaluations".split()
CLAIM_COLUMNS += "stress_worst violations verdict".split()
VIOLATION_COLUMNS = "what method claim source instance gain_ratio detail instance_file".split()
STRESS_COLUMNS = "method family params seed budget evaluations restarts worst_ratio gain_method gain_optimum".split()
STRESS_COLUMNS += "claim instance_file status error".split()


def _count(v: Any) -> int | None:
    return None if v is None else int(v)


# ---- the sections ----------------------------------------------------------------------------
def claims_table(
    runs: pd.DataFrame, stress: list[dict[str, Any]], files: Mapping[tuple[str, str], str] | None = None
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
    files = files or {}
    claims = collect_claims(runs, stress)
    rows, viol = [], []
    for c in claims:
        where = runs_where_claimed(runs, c) & runs["gain_ratio"].notna() if not runs.empty else pd.Series(dtype=bool)
        n = int(where.sum()) if len(where) else 0
        worst = float(runs.loc[where, "gain_ratio"].min()) if n else math.nan
        st = stress_where_claimed(stress, c)
        s_worst = min((ratio_or_nan(r["worst_ratio"]) for r in st), default=math.nan)
        s_evals = int(sum(int(r.get("evaluations") or 0) for r in st))
        first = len(viol)
        if n:
            for i in runs.index[run_violations(runs, c)]:
                r = runs.loc[i]
                path = files.get((str(r["instance"]), str(r["instance_hash"])), "")
                ref = "proven optimum" if bool(r["ref_proven"]) else "best known gain"
                detail = f"gain {float(r['gain']):.6g} < {c.ratio:.4f} x {ref} {float(r['ref_gain']):.6g}"
                viol.append(_violation(c, "run", r["instance"], float(r["gain_ratio"]), detail, path))
        for rec in st:
            ratio = ratio_or_nan(rec["worst_ratio"])
            if ratio < c.ratio - CLAIM_TOL:
                detail = (
                    f"gain {float(rec['gain_method']):.6g} vs optimum {float(rec['gain_optimum']):.6g} "
                    f"({rec.get('reference')}); search {rec.get('stress_name')}-s{_count(rec.get('seed'))}, "
                    f"{_count(rec.get('evaluations'))} evaluations"
                )
                path = str(rec.get("instance_file") or "")
                viol.append(_violation(c, "stress", rec.get("instance"), ratio, detail, path))
        bad = [(v["gain_ratio"], v["instance_file"] or str(v["instance"])) for v in viol[first:]]
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
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS), pd.DataFrame(viol, columns=VIOLATION_COLUMNS)


def _violation(c: Claim, what: str, instance: Any, ratio: float, detail: str, path: str) -> dict[str, Any]:
    """A row of the violations table: a run or stress result of claim ``c`` below it."""
    return {
        "what": what,
        "method": c.method,
        "claim": c.ratio,
        "source": c.source,
        "instance": instance,
        "gain_ratio": ratio,
        "detail": detail,
        "instance_file": path,
    }


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


def stress_table(stress: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per stress search (unformatted)."""
    rows = [
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
        for r in stress
    ]
    return pd.DataFrame(rows, columns=STRESS_COLUMNS)


def guarantee_report_sections(
    runs: pd.DataFrame, stress: list[dict[str, Any]], files: Mapping[tuple[str, str], str] | None = None
) -> list[Section]:
    """The three sections (empty list when there is neither a claim nor a stress search)."""
    claims, viol = claims_table(runs, stress, files)
    if claims.empty and not stress:
        return []
    out: list[Section] = []
    if not claims.empty:
        columns = [
            ("Method", lambda r: r["method"]),
            ("Claim", lambda r: fmt(float(r["claim"]), 3)),
            ("Conditions", lambda r: r["conditions"]),
            ("Source", lambda r: r["source"] + ("" if r["declared"] else " (checked, not declared)")),
            ("Worst ratio, runs", lambda r: f"{fmt(r['runs_worst'], 3)} (n={r['runs']})"),
            (
                "Worst ratio, stress",
                lambda r: (
                    f"{fmt(r['stress_worst'], 3)} ({r['stress_searches']} searches, {r['stress_evaluations']} evals)"
                ),
            ),
            ("Verdict", lambda r: r["verdict"]),
        ]
        note = (
            "Each method's declared guarantee, and claims a suite checks without the method declaring them, "
            "against the worst gain ratio R(method)/R(opt) over the runs whose instances satisfy the claim's "
            "conditions and over the adversarial stress searches. Conditions that name model properties "
            "(K = 1, single server, ...) are checked on every instance; other text is asserted by the suite. "
            "A verdict is VIOLATED as soon as one run or stress instance falls below the claim."
            + "".join(" " + t for t in suite_claim_verdicts(claims))
        )
        out.append(frame_section("Guarantee claims", claims, columns, "guarantee-claims", note=note))
    if stress:
        columns = [
            ("Method", lambda r: r["method"]),
            ("Family", lambda r: r["family"]),
            ("Params", lambda r: r["params"] or "defaults"),
            ("Seed", lambda r: str(r["seed"])),
            ("Budget (s)", lambda r: fmt(r["budget"], 0) if isinstance(r["budget"], float) else fmt(r["budget"])),
            ("Evaluations", lambda r: fmt(r["evaluations"])),
            ("Restarts", lambda r: fmt(r["restarts"])),
            (
                "Worst ratio",
                lambda r: fmt(r["worst_ratio"], 3) if r["status"] == Status.FEASIBLE.value else f"error: {r['error']}",
            ),
            ("Gain / optimum", lambda r: f"{fmt(r['gain_method'], 4)} / {fmt(r['gain_optimum'], 4)}"),
            (
                "Claim",
                lambda r: fmt(float(r["claim"]), 3) if r["claim"] is not None and pd.notna(r["claim"]) else "none",
            ),
            ("Worst instance", lambda r: r["instance_file"] or "–"),
        ]
        note = (
            "Adversarial searches (moebench stress): random restarts plus hill climbing on perturbed sizes, "
            "capacities, latencies and activation probabilities, keeping the instance with the lowest gain "
            "ratio against the exact optimum. The worst instance of each search is an instance file "
            "(paths relative to the results folder) carrying its ratio in meta.stress."
        )
        out.append(frame_section("Stress searches", stress_table(stress), columns, "stress-searches", note=note))
    # runs of methods with an applicable declared guarantee that failed (no placement to check)
    failed = tables.guarantee_violations(runs).query("kind == 'failed'")
    vrows = [
        [
            r["what"],
            r["method"],
            f"{fmt(float(r['claim']), 3)} ({r['source']})" if r["source"] else fmt(float(r["claim"]), 3),
            str(r["instance"]),
            fmt(float(r["gain_ratio"]), 3),
            r["detail"],
            r["instance_file"] or "–",
        ]
        for _, r in viol.iterrows()
    ]
    vrows += [
        ["failed run", r["method"], str(r["guarantee"]), str(r["instance"]), "–", str(r["detail"]), "–"]
        for _, r in failed.iterrows()
    ]
    out.append(
        Section(
            "Claim violations",
            ["What", "Method", "Claim", "Instance", "Gain ratio", "Detail", "Instance file"],
            vrows,
            "claim-violations",
            note=(
                "Every run and every stress result below a claim whose conditions hold, with an instance file that "
                "reproduces it (paths relative to the results folder): the stress search's worst instance, or the "
                "run's instance, written to violations/ by the runner."
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
    return guarantee_report_sections(ctx.runs, stress, ctx.artifacts)
