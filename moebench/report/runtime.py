"""Runtime report sections: where each exact back end stops proving optimality, and time vs size.

The *proving frontier* of an exact method on a family is read off the runs: instances are
ordered by size (placement variables N·G, then activation sets M), and the frontier is the
largest instance the method proved optimal and the smallest one it did not (time limit, error,
not applicable) within its time limit. Sizes between the two were not tried. A method that
proved every size it was given has no "first not proven" entry: its frontier lies beyond the
largest size tried, and the table says so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from moebench.report.sections import ReportContext, Section, frame_section, register_section
from moebench.report.tables import time_column
from moebench.report.writers import fmt
from moebench.schema.rows import column
from moebench.status import SKIPPED

#: Family parameters that name an instance's size (shown as "layers x tokens" etc.).
_SIZE_PARAMS = (("param_layers", "L"), ("param_experts", "E"), ("param_tokens", "T"), ("param_servers", "N"))


def size_label(row: pd.Series) -> str:
    """A short size label: ``L8 T200 N5 (1448 sets, 2560 vars)`` from the family parameters and counts."""
    parts = [f"{tag}{int(float(row[col]))}" for col, tag in _SIZE_PARAMS if pd.notna(row.get(col))]
    counts = [f"{int(row['M'])} sets"] if pd.notna(row.get("M")) else []
    counts.append(f"{int(row['binaries'])} vars")
    return f"{' '.join(parts)} ({', '.join(counts)})".strip()


def frontier(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (family, exact method): largest size proven optimal and smallest size not proven.

    Parameters
    ----------
    runs
        The scored per-run table; rows of methods whose ``method_kind`` is ``exact``.

    Returns
    -------
    pandas.DataFrame
        Columns family, method, time_limit, tried, proven, largest_proven, largest_proven_time,
        first_unproven, first_unproven_status, first_unproven_gap (relative gain gap at the stop,
        (bound − gain)/bound, NaN without a bound).
    """
    cols = "family method time_limit tried proven largest_proven largest_proven_time largest_proven_cpu".split()
    cols += "first_unproven first_unproven_status first_unproven_gap".split()
    ex = runs[(column(runs, "method_kind") == "exact") & (runs["status"] != "not-applicable")].copy()
    if ex.empty:
        return pd.DataFrame(columns=cols)
    tcol = time_column(ex)
    ex["_time"] = ex[tcol]
    ex["_cpu"] = column(ex, "method_cpu_time")
    rows = []
    for (fam, method), g in ex.groupby(["family", "method"], sort=True):
        g = g.sort_values([c for c in ("binaries", "M", "instance") if c in g])
        proven = g[g["status"] == "optimal"]
        unproven = g[g["status"] != "optimal"]
        last = proven.iloc[-1] if not proven.empty else None
        first = unproven.iloc[0] if not unproven.empty else None
        gap = math.nan
        if first is not None:
            b, gain = float(first.get("bound", math.nan)), float(first.get("gain", math.nan))
            if np.isfinite(b) and np.isfinite(gain) and b > 0:
                gap = max(0.0, (b - gain) / b)
        rows.append(
            {
                "family": fam,
                "method": method,
                "time_limit": float(column(g, "time_limit").max()),
                "tried": len(g),
                "proven": len(proven),
                "largest_proven": size_label(last) if last is not None else None,
                "largest_proven_time": float(last["_time"]) if last is not None else math.nan,
                "largest_proven_cpu": float(last["_cpu"]) if last is not None else math.nan,
                "first_unproven": size_label(first) if first is not None else None,
                "first_unproven_status": str(first["status"]) if first is not None else None,
                "first_unproven_gap": gap,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def ladder_families(runs: pd.DataFrame) -> list[str]:
    """Families whose instances form a size ladder: two or more instances, each of its own size,
    differing only in size parameters (layers, experts, tokens, servers).

    A parameter sweep (capacity, K, latencies) is not a ladder; time-by-size
    tables and proving frontiers are shown for ladders only.
    """
    if "binaries" not in runs or runs.empty:
        return []
    inst = runs.drop_duplicates("instance")
    size_params = {c for c, _ in _SIZE_PARAMS}
    out = []
    for fam, g in inst.groupby("family", sort=True):
        keys = g[[c for c in ("binaries", "M") if c in g]].astype(float)
        # every other family parameter fixed: only the size changes along a ladder
        others = [c for c in g.columns if c.startswith("param_") and c not in size_params]
        fixed = all(g[c].astype(str).nunique() <= 1 for c in others)
        if len(g) >= 2 and fixed and not keys.duplicated().any():
            out.append(str(fam))
    return out


@register_section(order=30)
def frontier_section(ctx: ReportContext) -> list[Section]:
    """The proving-frontier table, for size ladders on which an exact method ran two or more sizes."""
    fr = frontier(ctx.runs)
    fr = fr[(fr["tried"] >= 2) & fr["family"].isin(ladder_families(ctx.runs))]
    if fr.empty:
        return []
    columns = [
        ("Family", lambda r: r["family"]),
        ("Method", lambda r: r["method"]),
        ("Limit [s]", lambda r: fmt(r["time_limit"], 0)),
        ("Proven", lambda r: f"{r['proven']}/{r['tried']}"),
        ("Largest proven", lambda r: _or(r["largest_proven"], "none")),
        ("Its time [s]", lambda r: fmt(r["largest_proven_time"], 1)),
        ("Its CPU [s]", lambda r: fmt(r["largest_proven_cpu"], 1)),
        ("First not proven", lambda r: _or(r["first_unproven"], "none: proved every size tried")),
        ("Status there", lambda r: _or(r["first_unproven_status"], "–")),
        (
            "Gap there",
            lambda r: "–" if math.isnan(r["first_unproven_gap"]) else f"{100 * r['first_unproven_gap']:.2f}%",
        ),
    ]
    note = (
        "Where each exact method stops proving optimality within its time limit: instances ordered by "
        "size (placement variables N·G, then activation sets); 'largest proven' is the largest size it "
        "proved optimal, 'first not proven' the smallest it did not, with the relative gain gap "
        "(bound − gain)/bound it had reached. Sizes in between were not tried."
    )
    return [frame_section("Proving frontier of the exact methods", fr, columns, "frontier", note=note)]


def _or(v: object, missing: str) -> str:
    return v if isinstance(v, str) else missing


#: Short status marks in the time table.
_MARK = {"time-limit": " TL", "error": " err", "invalid": " inv", "infeasible": " inf"}


def time_table(runs: pd.DataFrame, family: str) -> tuple[list[str], list[list[str]], pd.DataFrame]:
    """Method time per size for one family: one row per method, one column per instance size.

    Cells are the method's wall time in seconds (CPU time in the CSV data), marked ``TL`` when
    the time limit stopped it, ``n/a`` when not applicable; ``–`` where it was not run.
    """
    d = runs[runs["family"] == family].copy()
    tcol = time_column(d)
    # the method's own time, else the wall time (runs killed at the limit have no method time)
    d["_t"] = d[tcol].fillna(d["wall_time"])
    sizes = d.drop_duplicates("instance").sort_values([c for c in ("binaries", "M", "instance") if c in d])
    labels = {r["instance"]: size_label(r) for _, r in sizes.iterrows()}
    order = list(labels)
    header = ["Method"] + [labels[i] for i in order]
    rows = []
    for method, g in d.groupby("method", sort=True):
        by = g.drop_duplicates("instance").set_index("instance")
        cells = [str(method)]
        for inst in order:
            if inst not in by.index:
                cells.append("–")
                continue
            r = by.loc[inst]
            if r["status"] in SKIPPED:
                cells.append("n/a")
                continue
            cells.append(f"{fmt(float(r['_t']), 2)}{_MARK.get(str(r['status']), '')}")
        rows.append(cells)
    keep = [
        c for c in ("method", "instance", "binaries", "M", "status", tcol, "method_cpu_time", "wall_time") if c in d
    ]
    data = (
        d[keep]
        .assign(size=d["instance"].map(labels))
        .sort_values(["method", "binaries"] if "binaries" in d else ["method"])
    )
    return header, rows, data


@register_section(order=31)
def time_sections(ctx: ReportContext) -> list[Section]:
    """ "Method time by size" tables, one per family that has two or more instance sizes."""
    out = []
    for fam in ladder_families(ctx.runs):
        header, rows, data = time_table(ctx.runs, fam)
        slug = "time-" + "".join(ch if ch.isalnum() else "-" for ch in str(fam).lower()).strip("-")
        note = (
            "Wall time of the solve call in seconds (the CSV also has CPU time); TL = stopped by the time "
            "limit (the time shown is when it stopped), n/a = not applicable, – = not run at this size."
        )
        out.append(Section(f"Method time by size: {fam}", header, rows, slug, note=note, data=data))
    return out
