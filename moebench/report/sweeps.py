"""Report sections of the ``sweeps`` report (issue 8): headline table and latency sweeps.

Sections (each absent when its data is):

``sweeps-headline``
    Per family × method: mean expected latency per token, latency reduction against ``none``
    (whose latency is the empty latency), the gain ratio to the reference and the holdout (test)
    latency reduction.
``sweeps-regimes``
    The same per family × regime (:mod:`moebench.regime`) × method.
``sweeps-figures``
    One figure per sweep: expected latency (and test latency where instances have a holdout
    twin) against the swept parameter, one line per method plus the reference.

Definitions (per run with a feasible placement):

- reduction = 100 · (Lat(∅) − Lat(X)) / Lat(∅) %, averaged over the runs of a group;
- ratio to the reference: R(X)/R* where the optimum R* is proven (``gain_ratio``), else R(X)/UB
  with UB the best certified bound (``bound_ratio``, a lower bound on the true ratio), else the
  ratio to the best known gain (an upper bound on it); column ``reference`` says which;
- holdout reduction: the same on the holdout twin, 100 · (Lat'(∅) − Lat'(X)) / Lat'(∅).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from moebench.report import style
from moebench.report.paper import fmt_value
from moebench.report.sections import Column, ReportContext, Section, frame_section, register_section
from moebench.report.style import MethodStyle, fixed_parameters, method_styles
from moebench.report.tables import reduction_pct
from moebench.schema.rows import PARAM_PREFIX, column, param_values
from moebench.status import WITH_PLACEMENT


def scored_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs with a feasible placement, with ``reduction``, ``ref_ratio``, ``ref_kind`` and ``holdout_reduction``.

    Parameters
    ----------
    runs
        The scored per-run table (:func:`moebench.report.tables.score`).

    Returns
    -------
    DataFrame
        The usable rows with the added columns (see the module docstring).
    """
    d = runs[runs["status"].isin(WITH_PLACEMENT) & column(runs, "feasible")].copy()
    d["reduction"] = reduction_pct(d)
    proven = d["ref_proven"]
    gr, br = d["gain_ratio"], d["bound_ratio"]
    d["ref_ratio"] = np.where(proven & gr.notna(), gr, np.where(br.notna(), br, gr))
    d["ref_kind"] = np.where(
        proven & gr.notna(), "optimum", np.where(br.notna(), "bound", np.where(gr.notna(), "best known", ""))
    )
    d["holdout_reduction"] = reduction_pct(d, "holdout_latency", "holdout_empty_latency")
    d["regime"] = column(d, "regime").fillna("unknown").astype(str)
    return d


def _kind(kinds: pd.Series) -> str:
    """'optimum', 'bound', 'best known', or e.g. 'optimum 3 / bound 2' for a mix."""
    c = kinds[kinds != ""].value_counts()
    if c.empty:
        return "-"
    if len(c) == 1:
        return str(c.index[0])
    return " / ".join(f"{k} {int(n)}" for k, n in c.items())


def _method_order(d: pd.DataFrame) -> list[str]:
    """Methods in suite order (first appearance), benchmarked methods before the references."""
    ref = d["role"].astype(str).eq("reference") if "role" in d else pd.Series(False, index=d.index)
    return list(dict.fromkeys([*d.loc[~ref, "method"].astype(str), *d.loc[ref, "method"].astype(str)]))


def headline_table(runs: pd.DataFrame, by: tuple[str, ...] = ("family",)) -> pd.DataFrame:
    """The headline aggregates per ``by`` × method (see the module docstring).

    Columns: the ``by`` columns, method, runs, instances (distinct instances of the row),
    group_instances (distinct instances of its ``by`` group: where the two differ the row is
    not on common ground with its neighbours), latency (mean ms/token), empty_latency (mean),
    reduction_pct (mean), ref_reduction_pct (the reference's reduction on the row's own
    instances: what the row's reduction compares with), ratio_mean, ratio_worst, reference,
    holdout_runs, holdout_latency (mean), holdout_reduction_pct (mean; NaN without holdout).
    Rows on every instance of their group come first, the others after them.
    """
    d = scored_runs(runs)
    cols = [*by, "method", "runs", "instances", "group_instances", "latency", "empty_latency", "reduction_pct"]
    cols += ["ref_reduction_pct", "ratio_mean", "ratio_worst"]
    cols += ["reference", "holdout_runs", "holdout_latency", "holdout_reduction_pct"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    order = {m: i for i, m in enumerate(_method_order(runs))}
    # the reference's reduction per instance: the optimum (or best known gain) against no caching
    ref_red = 100.0 * d["ref_gain"] / d["empty_latency"].where(d["empty_latency"] > 0)
    d = d.assign(
        _ref_red=ref_red, _key=d["instance"].astype(str) + "\0" + column(d, "instance_hash").fillna("").astype(str)
    )
    group_n = d.groupby(list(by))["_key"].nunique()
    rows = []
    for key, g in d.groupby([*by, "method"], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        hl = column(g, "holdout_latency")
        per_inst = g.drop_duplicates("_key")
        gkey = key[: len(by)] if len(by) > 1 else key[0]
        rows.append(
            {
                **dict(zip([*by, "method"], key)),
                "runs": len(g),
                "instances": int(g["_key"].nunique()),
                "group_instances": int(group_n.loc[gkey]),
                "latency": float(g["latency"].mean()),
                "empty_latency": float(g["empty_latency"].mean()),
                "reduction_pct": float(g["reduction"].mean()),
                "ref_reduction_pct": float(per_inst["_ref_red"].mean()),
                "ratio_mean": float(g["ref_ratio"].mean()),
                "ratio_worst": float(g["ref_ratio"].min()),
                "reference": _kind(g["ref_kind"]),
                "holdout_runs": int(hl.notna().sum()),
                "holdout_latency": float(hl.mean()),
                "holdout_reduction_pct": float(g["holdout_reduction"].mean()),
            }
        )
    out = pd.DataFrame(rows, columns=cols)
    out["_o"] = out["method"].map(order)
    out["_partial"] = out["instances"] < out["group_instances"]
    out = out.sort_values([*by, "_partial", "_o"], kind="stable").drop(columns=["_o", "_partial"])
    return out.reset_index(drop=True)


def _columns(by: tuple[str, ...]) -> list[Column]:
    """The columns of a headline table grouped by ``by``."""
    return [
        *((b, lambda r, b=b: str(r[b])) for b in by),
        ("method", lambda r: str(r["method"])),
        ("instances", lambda r: _of(int(r["instances"]), int(r["group_instances"]))),
        ("latency ms", lambda r: fmt_value(r["latency"], "ms")),
        ("reduction %", lambda r: fmt_value(r["reduction_pct"], "pct")),
        ("ref. reduction %", lambda r: fmt_value(r["ref_reduction_pct"], "pct")),
        ("ratio mean", lambda r: fmt_value(r["ratio_mean"], "ratio")),
        ("ratio worst", lambda r: fmt_value(r["ratio_worst"], "ratio")),
        ("reference", lambda r: str(r["reference"])),
        ("test reduction %", _test_reduction),
    ]


def _of(n: int, of: int) -> str:
    return str(n) if n == of else f"{n}/{of}"


def _test_reduction(r: pd.Series) -> str:
    test = fmt_value(r["holdout_reduction_pct"], "pct")
    if r["holdout_runs"] and r["holdout_runs"] < r["runs"]:
        test += f" (n={int(r['holdout_runs'])})"
    return test


_NOTE = (
    "Instances: distinct instances of the row; a/b marks a method that ran on a of the group's b instances only "
    "(it does not apply to, or failed on, the others): such rows come last, and their reduction is to be read "
    "against the reference's reduction on the same instances (ref. reduction), not against the rows above. "
    "Latency: mean expected MoE latency per token (ms). Reduction: mean of 100·(Lat(∅) − Lat)/Lat(∅) over "
    "the runs, i.e. against `none`. Ref. reduction: the same for the reference (the optimum, or the best known "
    "gain) on the row's instances. Ratio: gain R/R* against the proven optimum, or R/UB against the best "
    "certified bound where no optimum is proven (a lower bound on the true ratio), or against the best known "
    "gain; *reference* says which. Test reduction: the same on the holdout (test-token) twin of each instance, "
    "for the placement optimized on the train tokens."
)


def sweep_groups(d: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The sweeps of a table: (family, parameter column, rows), where the parameter takes
    at least two numeric values while every other ``param_*`` column is fixed."""
    params = sorted(c for c in d.columns if c.startswith(PARAM_PREFIX))
    out = []
    for fam, g in d.groupby("family", sort=True):
        for col in params:
            x = param_values(g, col)
            if x.notna().sum() == 0:
                continue
            others = [c for c in params if c != col and g[c].notna().any()]
            # map(str), not astype(str): pandas 3 keeps a missing value as NaN through astype(str)
            key = g[others].map(str).agg("|".join, axis=1) if others else pd.Series("", index=g.index)
            for _, sub in g.assign(_x=x).groupby(key, sort=True):
                if sub["_x"].nunique() >= 2 and sub["_x"].notna().all():
                    out.append((str(fam), col, sub))
    return out


def sweep_data(d: pd.DataFrame) -> pd.DataFrame:
    """Long table of every sweep: family, parameter, value, method, mean latency, test latency, reference.

    ``d`` is the scored per-run table, or its usable rows from :func:`scored_runs`.
    """
    if "ref_kind" not in d:
        d = scored_runs(d)
    rows = []
    for i, (fam, col, g) in enumerate(sweep_groups(d)):
        for (x, m), s in g.groupby(["_x", "method"], sort=True):
            rows.append(
                {
                    "sweep": i,
                    "family": fam,
                    "parameter": col.removeprefix("param_"),
                    "value": float(x),
                    "method": m,
                    "runs": len(s),
                    "latency": float(s["latency"].mean()),
                    "holdout_latency": float(column(s, "holdout_latency").mean()),
                    "reference_latency_bound": float((s["empty_latency"] - s["ref_bound"]).mean()),
                    "reference": _kind(s["ref_kind"]),
                }
            )
    return pd.DataFrame(rows)


def sweep_figure(
    fam: str,
    col: str,
    g: pd.DataFrame,
    path: Path,
    *,
    styles: Mapping[str, MethodStyle] | None = None,
    fixed: Mapping[str, object] | None = None,
) -> Path:
    """Expected latency (and holdout latency, when present) against ``col``, per method, plus the reference.

    Top row: mean latency over the seeds (bars: 95% bootstrap interval where a point has three
    or more runs). The reference is Lat(∅) − UB (a certified lower bound on the optimal latency;
    the optimum itself where it is proven: filled markers). Bottom row: the same runs as a ratio,
    Lat/(Lat(∅) − UB) for the train tokens and Lat'/(best Lat' of the methods shown) for the test
    tokens, so that curves that coincide at the scale of the top row come apart. Markers of
    different methods are offset by a few points sideways where they would hide each other.
    """
    styles = styles if styles is not None else style.method_styles(g)
    has_test = column(g, "holdout_latency").notna().any()
    g = g.assign(
        _ref=g["empty_latency"] - g["ref_bound"],
        _test=column(g, "holdout_latency"),
    )
    g = g.assign(_ratio=g["latency"] / g["_ref"].where(g["_ref"] > 0))
    if has_test:
        best = g.groupby([c for c in ("instance", "instance_hash") if c in g])["_test"].transform("min")
        g = g.assign(_test_ratio=g["_test"] / best.where(best > 0))
    panels = [("latency", "_ratio", "train tokens", "Lat ÷ reference\n(none not drawn)")]
    if has_test:
        panels.append(("_test", "_test_ratio", "test tokens (holdout twin)", "Lat′ ÷ best method"))
    methods = style.ordered(g["method"].astype(str), styles)
    xs = sorted(g["_x"].unique())
    name = col.removeprefix("param_")
    step = min(2.0, 160.0 / max(len(xs), 2) / max(len(methods), 1))
    with style.figure_context() as plt:
        fig, axes = plt.subplots(
            2,
            len(panels),
            figsize=(style.PANEL[0] * (1 if len(panels) == 1 else 0.9 * len(panels)), 5.2),
            sharex=True,
            squeeze=False,
            gridspec_kw={"height_ratios": [2.2, 1.0]},
        )
        ref_handles = []
        for j, (ycol, rcol, label, rlabel) in enumerate(panels):
            top, bottom = axes[0][j], axes[1][j]
            if ycol == "latency":
                r = g.groupby("_x").agg(lb=("_ref", "mean"), proven=("ref_proven", "all")).dropna()
                if not r.empty:
                    (h,) = top.plot(r.index, r["lb"], label="reference (optimum ●, bound ○)", **style.REFERENCE)
                    for shown, face in ((r["proven"], "black"), (~r["proven"], "white")):
                        top.plot(
                            r.index[shown], r.loc[shown, "lb"], "o", mfc=face, color="black", markersize=8, zorder=1.6
                        )
                    bottom.axhline(1.0, **style.REFERENCE)
                    ref_handles = [h]
            for i, m in enumerate(methods):
                sub = g[g["method"].astype(str) == m]
                # `none` (Lat(∅) over the reference) would squeeze every other ratio to a line
                for ax, c in ((top, ycol), (bottom, rcol)) if m != "none" else ((top, ycol),):
                    style.mean_ci_dodged(ax, sub, c, i, len(methods), step, styles[m], label=m, zorder=3)
            top.set_title(label, fontsize=8.5)
            top.set_ylabel("expected latency per token (ms)" if j == 0 else "")
            bottom.set_ylabel(rlabel)
            bottom.set_xlabel(name)
            style.integer_ticks(bottom, xs)
            bottom.margins(x=0.08)
        style.suptitle(fig, style.title(fam, "expected latency", name, fixed))
        style.legend_outside(fig, list(axes.flat), styles, extra=ref_handles)
        return style.save(fig, path)


def has_baseline(runs: pd.DataFrame) -> bool:
    """Whether the runs include ``none``: the sweeps sections (reductions, latency sweeps) need it."""
    return not runs.empty and "none" in set(runs["method"].astype(str))


@register_section(order=20)
def sweeps_sections(ctx: ReportContext) -> list[Section]:
    """Headline, per-regime and sweep-figure sections.

    Shown whenever the runs include the ``none`` baseline (the reduction is measured against it)
    or instances have holdout twins (the test-token reduction is shown nowhere else per family).
    """
    runs = ctx.runs
    if not (has_baseline(runs) or column(runs, "holdout_latency").notna().any()):
        return []
    out: list[Section] = []
    t = headline_table(runs, ("family",))
    if not t.empty:
        title = "Headline: latency reduction and ratio to the reference"
        out.append(frame_section(title, t, _columns(("family",)), "sweeps-headline", note=_NOTE))
    t = headline_table(runs, ("family", "regime"))
    if not t.empty and t["regime"].nunique() > 1:
        note = "As the headline, per regime of SPEC section 6 (capacity; fallback; K: see moebench.regime)."
        out.append(
            frame_section("By regime", t, _columns(("family", "regime")), "sweeps-regimes", note=note, latex=False)
        )
    d = scored_runs(runs)
    groups = sweep_groups(d)
    if groups:
        folder = ctx.out_dir / "plots"  # style.save creates it
        figs, rows = [], []
        styles = method_styles(runs)
        for i, (fam, col, g) in enumerate(groups):
            name = col.removeprefix("param_")
            fixed = fixed_parameters(d[d["family"] == fam], col, g)
            path = folder / f"sweep-latency-{i:02d}-{style.slug(fam)}-{style.slug(name)}.png"
            p = sweep_figure(fam, col, g, path, styles=styles, fixed=fixed)
            figs.append(p)
            vals = sorted(g["_x"].unique())
            rows.append(
                [
                    fam,
                    name,
                    ", ".join(f"{v:g}" for v in vals),
                    str(g["instance"].nunique()),
                    "; ".join(sorted(g["regime"].unique())),
                    p.name,
                ]
            )
        out.append(
            Section(
                "Sweeps: expected latency vs parameter",
                ["family", "parameter", "values", "instances", "regimes", "figure"],
                rows,
                "sweeps-figures",
                note="Mean over seeds (bars: 95% bootstrap interval where a point has 3 or more runs); the grey "
                "line is the reference (proven optimum, filled dots, or the latency bound Lat(∅) − UB, hollow "
                "dots). Lower panels: the same as a ratio to the reference, where equal curves come apart. "
                "Right panels: the train-optimized placements on the test tokens. Markers of different methods "
                "are set a few points apart sideways. The CSV holds every point.",
                data=sweep_data(d),
                figures=figs,
                latex=False,
            )
        )
    return out
