"""Report figures: ratio profile, performance profile, mean ± bootstrap CI, time vs size, ratio sweeps.

Every figure uses the one style of :mod:`moebench.report.style` and is written as PNG and PDF.
Definitions:

- *ratio profile*: for each method, the share of its runs with gain ratio R/R* >= t (runs
  that failed count as ratio 0: below every threshold); a method that does not apply
  everywhere is drawn over its own runs and its legend entry says how many;
- *performance profile* (Dolan and Moré, 2002) of method time: on each instance the time
  ratio of a method to the fastest method of its panel, infinite where it did not solve the
  instance (exact panel: proven optimum; other panel: a feasible placement); the curve is the
  share of instances with ratio <= tau. Each panel covers the instances on which every one of
  its methods was run; a method that was not run or not applicable somewhere is left out
  of the panel and named under it. ``none`` is left out (it computes nothing);
- *mean ± CI*: the mean gain ratio per method and family with its 95% bootstrap interval
  (:mod:`moebench.report.confidence`) over the runs (instances, seeds, repetitions).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from moebench.report import style
from moebench.report.confidence import mean_ci
from moebench.report.style import MethodStyle
from moebench.report.sweeps import has_baseline, sweep_groups
from moebench.report.tables import time_column
from moebench.status import FAILED, SKIPPED

#: Times below this are treated as equal to it in the performance profile (timer and scheduling
#: noise dominates below ~10 µs; without a floor a 2 µs run would make every ratio huge).
TIME_FLOOR = 1e-5
#: At most this many parameter sweeps get a ratio figure.
MAX_SWEEPS = 12


def ratio_profile(runs: pd.DataFrame, path: Path, styles: Mapping[str, MethodStyle]) -> Path | None:
    """Share of a method's runs with gain ratio >= t, one curve per method (SPEC section 5).

    Failed runs count as ratio 0; runs without a reference are left out.
    """
    d = runs[~runs["status"].isin(SKIPPED)]
    d = d[d["ref_gain"].notna() & (d["gain_ratio"].notna() | d["status"].isin(FAILED))]
    if d.empty:
        return None
    r_all = d["gain_ratio"].fillna(0.0).clip(lower=0.0)
    methods = style.ordered(d["method"].astype(str), styles)
    counts = d["method"].astype(str).value_counts()
    full = int(counts.max())
    # the axis starts at the worst ratio of a non-baseline method (baselines may sit at 0 and
    # would squeeze the interesting part against t = 1); 0 when there is no such method
    lo = float(np.floor(profile_start(d, r_all, styles) * 20.0) / 20.0)
    t = np.linspace(lo, 1.0, 1001)
    with style.figure_context() as plt:
        fig, ax = plt.subplots(figsize=style.PANEL)
        for i, m in enumerate(methods):
            share = share_at_least(r_all[d["method"].astype(str) == m].to_numpy(float), t)
            n = int(counts[m])
            label = m if n == full else f"{m} (n={n})"
            # equal curves stay apart by their markers, staggered along the line
            every = (i * 100 // len(methods), 100)
            ax.plot(t, share, label=label, gid=m, **styles[m].line(markevery=every))
        ax.set_xlabel("gain ratio threshold t")
        ax.set_ylabel("share of runs with R/R* ≥ t")
        ax.set_xlim(lo, 1.0)
        ax.set_ylim(-0.03, 1.05)
        ax.set_title(style.title("all families", f"gain-ratio profile ({full} runs per method)"))
        style.legend_outside(fig, [ax], styles)
        style.note_below(
            ax, "Failed runs count as 0. Curves that coincide show their markers side by side.", -0.2, fontsize=7
        )
        return style.save(fig, path)


def profile_start(d: pd.DataFrame, ratios: pd.Series, styles: Mapping[str, MethodStyle]) -> float:
    """The worst gain ratio of any method that is not a baseline (0 when there is none)."""
    kinds = d["method"].astype(str).map(lambda m: styles[m].kind if m in styles else "baseline")
    r = ratios[kinds != "baseline"]
    return float(min(max(r.min(), 0.0), 0.95)) if not r.empty else 0.0


def share_at_least(ratios: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Share of ``ratios`` that are >= each threshold in ``t`` (ratios within 1e-12 below count)."""
    r = np.sort(np.asarray(ratios, dtype=float))
    return 1.0 - np.searchsorted(r, np.asarray(t, dtype=float) - 1e-12, side="left") / len(r)


def performance_profile(runs: pd.DataFrame, path: Path, styles: Mapping[str, MethodStyle]) -> Path | None:
    """Dolan-Moré performance profiles of method time: exact methods (time to a proven optimum)
    and the others (time to a feasible placement), each over the instances all its methods ran on."""
    d = runs[runs["method"].astype(str) != "none"].copy()
    if d.empty:
        return None
    tcol = time_column(d)
    d["_t"] = np.maximum(d[tcol].fillna(d["wall_time"]).astype(float), TIME_FLOOR)
    d["_key"] = d["instance"].astype(str) + "|" + d["instance_hash"].astype(str)
    d["method"] = d["method"].astype(str)
    exact = d["method"].map(lambda m: styles[m].kind == "exact" if m in styles else False)
    panels = []
    for name, sub, solved_status in (
        ("exact methods: time to a proven optimum", d[exact], {"optimal"}),
        ("other methods: time to a feasible placement", d[~exact], {"optimal", "feasible"}),
    ):
        prof = time_ratios(sub, solved_status)
        if prof is not None:
            panels.append((name, *prof))
    if not panels:
        return None
    with style.figure_context() as plt:
        fig, axes = plt.subplots(1, len(panels), figsize=(style.PANEL[0] * len(panels) * 0.85, style.PANEL[1]))
        axes = np.atleast_1d(axes)
        for ax, (name, ratios, left_out, n_inst) in zip(axes, panels):
            tmax = max([2.0, *(float(v[np.isfinite(v)].max()) * 1.5 for v in ratios.values() if np.isfinite(v).any())])
            methods = style.ordered(ratios, styles)
            for m in methods:
                v = np.sort(ratios[m])
                # one point per distinct ratio: rho(tau) = share of instances with ratio <= tau
                jumps = np.unique(v[np.isfinite(v) & (v > 1.0)])
                rho = np.searchsorted(v, jumps, side="right") / v.size
                x = np.concatenate([[1.0], jumps, [tmax]])
                y = np.concatenate([[np.mean(v <= 1.0)], rho, [np.isfinite(v).mean()]])
                every = max(1, (len(x) - 1) // 12)  # at most about a dozen markers per curve
                ax.step(x, y, where="post", label=m, **styles[m].line(markevery=slice(0, -1, every)))
            ax.set_xscale("log", base=2)
            ax.set_xlim(1.0, tmax)
            ax.set_ylim(-0.03, 1.05)
            ax.set_xlabel("τ (time ÷ fastest time on the instance)")
            ax.set_title(f"{name}\n({n_inst} instances)", fontsize=8.5)
            if left_out:
                style.note_below(
                    ax, "not on every instance, left out: " + ", ".join(left_out), -0.25, fontsize=6.5, wrap=True
                )
        axes[0].set_ylabel("share of instances with ratio ≤ τ")
        style.suptitle(fig, style.title("all families", "performance profile of method time"), y=1.06)
        style.legend_outside(fig, list(axes), styles)
        return style.save(fig, path)


def time_ratios(d: pd.DataFrame, solved_status: set[str]) -> tuple[dict[str, np.ndarray], list[str], int] | None:
    """The performance-profile ratios of one panel (see the module docstring).

    Parameters
    ----------
    d
        Runs with columns ``_key`` (instance), ``method``, ``status``, ``feasible`` and ``_t``
        (time, already floored).
    solved_status
        The statuses that count as solved.

    Returns
    -------
    tuple or None
        (method -> ratio per instance, inf where unsolved; methods left out because they did
        not run on every instance; number of instances), or None with fewer than two methods.
    """
    keys = set(d["_key"])
    ran = {m: set(g.loc[~g["status"].isin(SKIPPED), "_key"]) for m, g in d.groupby("method", sort=True)}
    keep = sorted(m for m, k in ran.items() if k == keys)
    left_out = sorted(set(ran) - set(keep))
    if len(keep) < 2:
        return None
    d = d[d["method"].isin(keep)]
    solved = d["status"].isin(solved_status) & d["feasible"].fillna(False).astype(bool)
    t = d.assign(_s=np.where(solved, d["_t"], np.inf)).groupby(["_key", "method"])["_s"].median().unstack()
    best = t.min(axis=1)
    ratios = t.div(best.where(np.isfinite(best)), axis=0).fillna(np.inf)
    return {m: ratios[m].to_numpy(float) for m in keep}, left_out, len(t)


def ratio_ci(runs: pd.DataFrame, path: Path, styles: Mapping[str, MethodStyle]) -> Path | None:
    """Mean gain ratio per method and family with its 95% bootstrap interval over the runs."""
    d = runs[runs["gain_ratio"].notna()]
    if d.empty:
        return None
    fams = sorted(d["family"].astype(str).unique())
    if len(fams) > 1:  # pooled, as the summary's family "all"
        d = pd.concat([d, d.assign(family="all families")], ignore_index=True)
        fams.append("all families")
    methods = style.ordered(d["method"].astype(str), styles)
    with style.figure_context() as plt:
        height = 0.8 + 0.2 * len(methods)
        fig, axes = plt.subplots(1, len(fams), figsize=(2.5 * len(fams) + 1.6, height), sharey=True, squeeze=False)
        y = {m: len(methods) - 1 - i for i, m in enumerate(methods)}
        for ax, fam in zip(axes[0], fams):
            g = d[d["family"].astype(str) == fam]
            full = int(g["method"].value_counts().max())
            for m in methods:
                v = g.loc[g["method"].astype(str) == m, "gain_ratio"]
                if v.empty:
                    continue
                ci = mean_ci(v.to_numpy(float))
                s = styles[m]
                if ci.has_interval:
                    ax.hlines(y[m], ci.low, ci.high, color=s.color, linewidth=1.6)
                ax.plot([ci.mean], [y[m]], marker=s.marker, color=s.color, markerfacecolor="white", linestyle="none")
                if ci.n != full:
                    ax.annotate(
                        f"n={ci.n}",
                        (1.01, y[m]),
                        xycoords=("axes fraction", "data"),
                        fontsize=6,
                        ha="left",
                        va="center",
                        color="#444444",
                        annotation_clip=False,
                    )
            ax.set_title(f"{fam} ({full} runs per method)", fontsize=8.5)
            ax.set_xlabel("mean gain ratio R/R*")
            ax.set_xlim(min(0.0, ax.get_xlim()[0]), 1.04)
            ax.grid(axis="y", alpha=0.0)
        axes[0][0].set_yticks([y[m] for m in methods], methods)
        for lab in axes[0][0].get_yticklabels():
            lab.set_color(styles[lab.get_text()].color)
        style.suptitle(
            fig, style.title(None, "mean gain ratio per family with 95% bootstrap interval (bars; none below 3 runs)")
        )
        return style.save(fig, path)


def time_vs_size(runs: pd.DataFrame, path: Path, styles: Mapping[str, MethodStyle]) -> Path | None:
    """Median method time against the placement variables N·G, per method (log-log), one panel
    per family with two or more sizes; black crosses mark medians of runs stopped by the time limit."""
    if "binaries" not in runs:
        return None
    col = time_column(runs)
    d = runs[~runs["status"].isin(SKIPPED)].copy()
    # a run killed at its limit has no method time: its wall time is when it stopped
    d["_t"] = d[col].fillna(d["wall_time"]).astype(float)
    d = d[d["_t"].notna() & d["binaries"].notna()]
    fams = [str(f) for f, g in d.groupby("family", sort=True) if g["binaries"].nunique() >= 2]
    if not fams:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, NullFormatter

    with style.figure_context() as plt:
        fig, axes = plt.subplots(
            1, len(fams), figsize=(style.PANEL[0] * (1 if len(fams) == 1 else 0.8 * len(fams)), style.PANEL[1])
        )
        axes = np.atleast_1d(axes)
        stopped = False
        for ax, fam in zip(axes, fams):
            g = d[d["family"].astype(str) == fam]
            for m in style.ordered(g["method"].astype(str), styles):
                s = g[g["method"].astype(str) == m].groupby("binaries")
                med = s["_t"].median()
                # a log axis cannot show 0 s: clip at the profile's time floor
                y = np.maximum(med.to_numpy(float), TIME_FLOOR)
                ax.plot(med.index, y, label=m, **styles[m].line())
                tl = s["status"].agg(lambda st: (st == "time-limit").mean() >= 0.5).to_numpy(bool)
                if tl.any():
                    stopped = True
                    ax.plot(med.index[tl], y[tl], "x", color="black", markersize=6, zorder=4)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("placement variables N·G")
            ax.set_title(f"{fam} ({g['instance'].nunique()} instances)", fontsize=8.5)
        axes[0].set_ylabel(f"median {col.replace('_', ' ')} [s]")
        style.suptitle(fig, style.title(None, "median method time vs size N·G, per family"), y=1.04)
        extra = [Line2D([], [], marker="x", color="black", linestyle="none", label="stopped by the time limit")]
        style.legend_outside(fig, list(axes), styles, extra=extra if stopped else ())
        return style.save(fig, path)


def ratio_sweeps(runs: pd.DataFrame, folder: Path, styles: Mapping[str, MethodStyle]) -> list[Path]:
    """Mean gain ratio against every swept family parameter (other parameters fixed), per method,
    with the 95% bootstrap interval where a point has three or more runs (seeds, repetitions)."""
    d = runs[runs["gain_ratio"].notna()]
    out: list[Path] = []
    if d.empty:
        return out
    for k, (fam, col, g) in enumerate(sweep_groups(d)[:MAX_SWEEPS]):
        name = col.removeprefix("param_")
        fixed = style.fixed_parameters(d[d["family"] == fam], col, g)
        with style.figure_context() as plt:
            fig, ax = plt.subplots(figsize=style.PANEL)
            methods = style.ordered(g["method"].astype(str), styles)
            xs = sorted(g["_x"].unique())
            step = min(2.0, 160.0 / max(len(xs), 2) / max(len(methods), 1))
            for i, m in enumerate(methods):
                style.mean_ci_dodged(ax, g[g["method"] == m], "gain_ratio", i, len(methods), step, styles[m], label=m)
            style.integer_ticks(ax, xs)
            ax.margins(x=0.08)
            ax.set_xlabel(name)
            ax.set_ylabel("mean gain ratio R/R*")
            ax.set_title(style.title(fam, "mean gain ratio", name, fixed))
            style.legend_outside(fig, [ax], styles)
            out.append(
                style.save(fig, folder / f"ratio-sweep-{k:02d}-{style.slug(fam, '.')}-{style.slug(name, '.')}.png")
            )
    return out


def all_plots(runs: pd.DataFrame, folder: Path) -> list[Path]:
    """Write every figure into ``folder``; returns the PNG files (each has a PDF twin).

    Parameter sweeps get a gain-ratio figure here only when the sweeps section does not draw
    its latency figures (which have a ratio panel) for the same sweeps.
    """
    folder.mkdir(parents=True, exist_ok=True)
    styles = style.method_styles(runs)
    out = [
        ratio_profile(runs, folder / "ratio-profile.png", styles),
        performance_profile(runs, folder / "performance-profile.png", styles),
        ratio_ci(runs, folder / "gain-ratio-ci.png", styles),
        time_vs_size(runs, folder / "time-vs-size.png", styles),
    ]
    pngs = [p for p in out if p is not None]
    if not has_baseline(runs):
        pngs += ratio_sweeps(runs, folder, styles)
    return pngs
