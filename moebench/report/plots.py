"""Report figures (matplotlib, Agg backend): ratio profile, time vs size, parameter sweeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moebench.report.tables import sweep_parameters
from moebench.schema.rows import param_values

#: At most this many methods per figure (the ones with the most runs), to keep legends legible.
MAX_METHODS = 14


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _methods(df: pd.DataFrame) -> list[str]:
    counts = df["method"].value_counts()
    return sorted(counts.index[:MAX_METHODS])


def _style(i: int) -> dict:
    return {"linestyle": ("-", "--", ":", "-.")[i // 10 % 4], "color": f"C{i % 10}"}


def ratio_profile(df: pd.DataFrame, path: Path) -> Path | None:
    """Share of runs with gain ratio >= t, per method (SPEC section 5)."""
    d = df[df["gain_ratio"].notna()]
    if d.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    t = np.linspace(0, 1, 201)
    for i, m in enumerate(_methods(d)):
        r = np.sort(d.loc[d["method"] == m, "gain_ratio"].to_numpy(float))
        share = 1.0 - np.searchsorted(r, t - 1e-12, side="left") / len(r)
        ax.step(t, share, where="post", label=m, **_style(i))
    ax.set_xlabel("gain ratio threshold t")
    ax.set_ylabel("share of runs with R(alg)/R(ref) >= t")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    ax.set_title("Ratio profile")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def time_vs_size(df: pd.DataFrame, path: Path) -> Path | None:
    """Method time (else wall time) against the number of placement variables N·G, per method (log-log)."""
    if "binaries" not in df:
        return None
    from moebench.report.tables import time_column

    col = time_column(df)
    d = df[df[col].notna()]
    if d.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, m in enumerate(_methods(d)):
        g = d[d["method"] == m].groupby("binaries")[col].median()
        # a log axis cannot show 0 s: clip at 0.1 ms
        ax.plot(g.index, np.maximum(g.to_numpy(float), 1e-4), marker="o", markersize=3, label=m, **_style(i))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("placement variables N·G")
    ax.set_ylabel(f"median {col.replace('_', ' ')} [s]")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Time vs size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sweeps(df: pd.DataFrame, folder: Path, limit: int = 6) -> list[Path]:
    """Mean latency ratio against every swept family parameter, per method and family."""
    out: list[Path] = []
    d = df[df["latency_ratio"].notna()]
    if d.empty:
        return out
    plt = _plt()
    for col in sweep_parameters(d):
        for fam, g in d.groupby("family"):
            vals = param_values(g, col)
            if vals.nunique() < 2 or len(out) >= limit:
                continue
            fig, ax = plt.subplots(figsize=(7, 4.2))
            g = g.assign(_x=vals)
            for i, m in enumerate(_methods(g)):
                s = g[g["method"] == m].groupby("_x")["latency_ratio"].mean()
                ax.plot(s.index, s.to_numpy(float), marker="o", markersize=3, label=m, **_style(i))
            name = col.removeprefix("param_")
            ax.set_xlabel(name)
            ax.set_ylabel("mean latency ratio Lat(alg)/Lat(ref)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
            ax.set_title(f"{fam}: latency vs {name}")
            fig.tight_layout()
            p = folder / f"sweep-{fam}-{name}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            out.append(p)
    return out


def all_plots(df: pd.DataFrame, folder: Path) -> list[Path]:
    """Write every figure into ``folder``; returns the PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    out = [ratio_profile(df, folder / "ratio-profile.png"), time_vs_size(df, folder / "time-vs-size.png")]
    return [p for p in out if p is not None] + sweeps(df, folder)
