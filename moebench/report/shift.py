"""Workload-shift report sections (issue 16): a placement scored on its own tokens, on held-out
tokens and on other tasks, and what the tokens it serves pay (tail latency).

Read from the ``token_sets`` column of the runs (:mod:`moebench.bench.holdout`, fields
:data:`moebench.schema.rows.TOKEN_SET_FIELDS`), so the sections are a function of the results
table alone. Definitions:

- *train*, *test*, *other tasks*: the expected latency (ms per token, the evaluator's) of the
  placement on the instance (its own task's train tokens), on its holdout twin (the held-out
  sequences of the same task) and on its transfer twins (the other tasks' tokens, same split
  part, layers, servers, capacities and latency model).
- *kept*: the share of a task's achievable gain a placement keeps, R(X on B) / R*(B), where
  R*(B) is B's **proven** optimal gain (an instance of the same content hash in the table with a
  proven reference); on the placement's own task it is its gain ratio against the proven
  optimum. A pair without a proven optimum of B has no share (counted in *pairs proven*).
  When B has nothing to gain (R*(B) within tolerance of 0) the share is 1.
- *tail*: per-token latency percentiles (numpy's linear interpolation) of the replayed tokens:
  every sequence of the scored token set's split part of its task
  (:class:`moebench.replay.Replayer`); means over the instances (and over the other tasks).
  The CDF figure averages the stored quantile functions (Vincent averaging: the curve at
  quantile level q is the mean of the q-quantiles).

Groups: one per value of the ``capacity`` family parameter (else of ``capacity_fraction``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from moebench.bench.claims import RTOL
from moebench.report import style
from moebench.report.sections import ReportContext, Section, frame_section, register_section
from moebench.report.style import MethodStyle
from moebench.schema.rows import CDF_POINTS, PARAM_PREFIX, param_values, token_set_frame
from moebench.status import WITH_PLACEMENT

#: Token-set kinds as shown, in display order.
KINDS = {"instance": "train", "holdout": "test", "transfer": "other tasks"}
_TITLES = {"instance": "train tokens", "holdout": "test tokens", "transfer": "tokens of the other tasks"}


def _capacity(runs: pd.DataFrame) -> pd.Series:
    col = PARAM_PREFIX + "capacity"
    if col in runs.columns and param_values(runs, col).notna().all():
        return param_values(runs, col)
    return runs["capacity_fraction"].astype(float).round(6)


def shift_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The scored token sets of the runs with a feasible placement, with references attached.

    Columns: the run's ``capacity``, ``method``, ``instance``, ``own_task`` and the
    :data:`~moebench.schema.rows.TOKEN_SET_FIELDS`, plus ``ref_gain`` / ``ref_latency`` (the
    scored instance's proven optimum, by content hash; NaN where none is proven) and ``kept``.
    """
    if runs.empty or "token_sets" not in runs.columns:
        return pd.DataFrame()
    ok = runs[runs["status"].isin(WITH_PLACEMENT) & runs["feasible"]].copy()
    ok["capacity"] = _capacity(ok)
    ts = token_set_frame(ok, ["capacity", "method", "instance"])
    if ts.empty:
        return ts
    own = ts[ts["kind"] == "instance"].set_index("run")["task"]
    ts["own_task"] = ts["run"].map(own)
    # proven optima by content hash: any run of the table on an instance with that content
    proven = runs[runs["ref_proven"].astype(bool) & runs["ref_gain"].notna()]
    by_hash = proven.drop_duplicates("instance_hash").set_index("instance_hash")
    ts["ref_gain"] = ts["instance_hash"].map(by_hash["ref_gain"]).astype(float)
    ts["ref_latency"] = ts["instance_hash"].map(by_hash["ref_latency"]).astype(float)
    tol = RTOL * np.maximum(1.0, ts["empty_latency"].astype(float))
    nothing = ts["ref_gain"] <= tol
    ts["kept"] = np.where(nothing, 1.0, ts["gain"] / ts["ref_gain"].where(~nothing))
    ts.loc[ts["ref_gain"].isna(), "kept"] = math.nan
    return ts


def latency_table(ts: pd.DataFrame) -> pd.DataFrame:
    """Per (capacity, method): mean latency on train, test and other-task tokens, and the share kept."""
    rows = []
    for (cap, method), g in ts.groupby(["capacity", "method"], sort=True):
        tr, te, ot = (g[g["kind"] == k] for k in ("instance", "holdout", "transfer"))
        proven = ot["kept"].notna()
        rows.append(
            {
                "capacity": cap,
                "method": method,
                "instances": int(tr["run"].nunique()),
                "train_latency": float(tr["latency"].mean()),
                "test_latency": float(te["latency"].mean()) if not te.empty else math.nan,
                "other_latency": float(ot["latency"].mean()) if not ot.empty else math.nan,
                "other_optimum_latency": float(ot["ref_latency"].mean()) if proven.all() and len(ot) else math.nan,
                "own_kept": float(tr["kept"].mean()),
                "other_kept_mean": float(ot["kept"].mean()) if proven.any() else math.nan,
                "other_kept_worst": float(ot["kept"].min()) if proven.any() else math.nan,
                "pairs_proven": int(proven.sum()),
                "pairs": len(ot),
            }
        )
    return pd.DataFrame(rows)


def transfer_matrix(ts: pd.DataFrame) -> pd.DataFrame:
    """Per (capacity, method, task optimized on): the share kept on each scored task."""
    d = ts[ts["kind"].isin(("instance", "transfer"))]
    if d.empty:
        return pd.DataFrame()
    m = d.pivot_table(
        index=["capacity", "method", "own_task"], columns="task", values="kept", aggfunc="mean", dropna=False
    )
    tasks = sorted(d["task"].unique())
    return m.reindex(columns=tasks).reset_index().rename(columns={"own_task": "optimized_on"})


def tail_table(ts: pd.DataFrame) -> pd.DataFrame:
    """Per (capacity, method, token set kind): replayed tokens and per-token latency statistics."""
    d = ts[ts["replay_tokens"].notna()]
    rows = [
        {
            "capacity": cap,
            "method": method,
            "tokens": KINDS.get(str(kind), str(kind)),
            "replayed": float(g["replay_tokens"].astype(float).mean()),
            "mean": float(g["replay_mean"].mean()),
            "p50": float(g["p50"].mean()),
            "p95": float(g["p95"].mean()),
            "p99": float(g["p99"].mean()),
            "max": float(g["replay_max"].mean()),
            "empty_mean": float(g["replay_empty_mean"].mean()),
        }
        for (cap, method, kind), g in d.groupby(["capacity", "method", "kind"], sort=True)
    ]
    out = pd.DataFrame(rows)
    if not out.empty:
        out["_k"] = out["tokens"].map({v: i for i, v in enumerate(KINDS.values())})
        out = out.sort_values(["capacity", "method", "_k"]).drop(columns="_k").reset_index(drop=True)
    return out


# ---- the CDF figure ----------------------------------------------------------------------------------
def cdf_figure(
    ts: pd.DataFrame, cap: float, path: Path, styles: Mapping[str, MethodStyle] | None = None
) -> Path | None:
    """Per-token latency CDF per method at one capacity: panels train, test and other-task tokens.

    Drawn in the report's figure style (``styles``: the whole report's, :func:`style.method_styles`);
    writes ``path`` (PNG) and the same figure as PDF beside it; returns the PNG.
    """
    d = ts[(ts["capacity"] == cap) & ts["quantiles"].notna()]
    if d.empty:
        return None
    styles = styles if styles is not None else style.method_styles(d)
    kinds = [k for k in KINDS if (d["kind"] == k).any()]
    levels = np.linspace(0.0, 1.0, CDF_POINTS)
    with style.figure_context() as plt:
        fig, axes = plt.subplots(
            1,
            len(kinds),
            figsize=(style.PANEL[0] * (1 if len(kinds) == 1 else 0.8 * len(kinds)), style.PANEL[1]),
            squeeze=False,
            sharey=True,
        )
        for ax, kind in zip(axes[0], kinds):
            g = d[d["kind"] == kind]
            methods = style.ordered(g["method"].astype(str), styles)
            for i, method in enumerate(methods):
                q = np.array([np.asarray(v, float) for v in g.loc[g["method"].astype(str) == method, "quantiles"]])
                # equal curves stay apart by their markers, staggered along the line
                every = (i * 10 // len(methods), 10)
                ax.step(q.mean(axis=0), levels, where="post", label=method, **styles[method].line(markevery=every))
            empty = float(g["replay_empty_mean"].mean())
            ax.axvline(empty, color="black", linewidth=0.8, linestyle=":", label="nothing cached")
            ax.set_title(_TITLES[kind], fontsize=8.5)
            ax.set_xlabel("per-token latency (ms)")
        axes[0][0].set_ylabel("share of tokens with latency ≤ x")
        style.suptitle(fig, style.title(None, f"per-token latency CDF (capacity {cap:g})"))
        style.legend_outside(fig, list(axes[0]), styles)
        return style.save(fig, path)


# ---- sections -----------------------------------------------------------------------------------------
def _f(v: float, spec: str = ".2f") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


_LATENCY_NOTE = (
    "Mean expected latency (ms per token) of each method's placement on the tokens it was optimized on "
    "(train), on the held-out sequences of the same task (test) and on the other tasks' tokens (same layers, "
    "servers, capacities and latency model). Kept: the share of a task's achievable gain the placement keeps, "
    "R(X) / R* against that task's proven optimum (own task: the gain ratio; other tasks: the transferred "
    "placement). Other opt.: what the other tasks' own optima achieve (shown only when all are proven)."
)
_MATRIX_NOTE = (
    "Share of the scored task's proven optimal gain kept by the placement optimized on the row's task "
    "(the diagonal: the placement's own gain ratio). Empty: no proven optimum for that task."
)
_TAIL_NOTE = (
    "Per-token latency (ms) of the real token paths replayed through each placement: every sequence of the "
    "scored split part (train tokens: the train sequences of the own task; test: the held-out sequences; other "
    "tasks: their train sequences). Percentiles by numpy's linear interpolation, then averaged over instances "
    "(and other tasks). Empty: the mean with nothing cached. A token waits for its slowest expert at each "
    "layer, so a token pays the cloud latency at a layer unless all of its K experts are cached there."
)


@register_section(order=30)
def shift_sections(ctx: ReportContext) -> list[Section]:
    """Latency under workload shift, the transfer matrix and tail latency (runs with ``token_sets``)."""
    ts = shift_frame(ctx.runs)
    if ts.empty:
        return []
    out: list[Section] = []
    lat = latency_table(ts)
    columns = [
        ("capacity", lambda r: _f(r["capacity"], "g")),
        ("method", lambda r: r["method"]),
        ("instances", lambda r: str(r["instances"])),
        ("train", lambda r: _f(r["train_latency"])),
        ("test", lambda r: _f(r["test_latency"])),
        ("other tasks", lambda r: _f(r["other_latency"])),
        ("other opt.", lambda r: _f(r["other_optimum_latency"])),
        ("kept own", lambda r: _f(r["own_kept"], ".3f")),
        ("kept other (mean)", lambda r: _f(r["other_kept_mean"], ".3f")),
        ("kept other (worst)", lambda r: _f(r["other_kept_worst"], ".3f")),
        ("pairs proven", lambda r: f"{r['pairs_proven']}/{r['pairs']}"),
    ]
    title = "Workload shift: latency on train, test and other-task tokens"
    out.append(frame_section(title, lat, columns, "shift-latency", note=_LATENCY_NOTE))
    mat = transfer_matrix(ts)
    if not mat.empty:
        tasks = [c for c in mat.columns if c not in ("capacity", "method", "optimized_on")]
        columns = [
            ("capacity", lambda r: _f(r["capacity"], "g")),
            ("method", lambda r: r["method"]),
            ("optimized on", lambda r: r["optimized_on"]),
            *((t, lambda r, t=t: _f(r[t], ".3f")) for t in tasks),
        ]
        title = "Workload shift: share of each task's optimal gain kept"
        out.append(frame_section(title, mat, columns, "shift-transfer", note=_MATRIX_NOTE, latex=False))
    tail = tail_table(ts)
    if not tail.empty:
        styles = style.method_styles(ctx.runs)
        names = {
            cap: f"shift-cdf-capacity-{_f(float(cap), 'g').replace('.', '_')}.png" for cap in tail["capacity"].unique()
        }
        figs = [p for cap in sorted(names) if (p := cdf_figure(ts, cap, ctx.out_dir / "plots" / names[cap], styles))]
        columns = [
            ("capacity", lambda r: _f(r["capacity"], "g")),
            ("method", lambda r: r["method"]),
            ("tokens", lambda r: r["tokens"]),
            ("replayed", lambda r: f"{r['replayed']:.0f}"),
            *((c, lambda r, c=c: _f(r[c])) for c in ("mean", "p50", "p95", "p99", "max")),
            ("empty", lambda r: _f(r["empty_mean"])),
        ]
        title = "Tail latency per token (replayed token paths)"
        out.append(frame_section(title, tail, columns, "shift-tail", note=_TAIL_NOTE, figures=figs))
    return out
