"""``moebench compare A B``: two runs side by side on the instances and methods they share.

A and B are results folders or tables (before and after a change, two machines, two solver
versions). An instance is shared when both runs have it under the same name *and* content hash
(an instance regenerated with other data is not the same instance, and is listed as changed);
an instance B has under another name but with the same contents (one to one: the naming rules
changed between the runs) is shared too, under A's name, and counted as renamed. A method is
shared when both ran it on a shared instance. Each run is scored against its own references (a reference is a
property of the instance, so both runs' references agree where both are proven).

Per shared method, over the shared instances where both runs have a gain ratio (repetitions
averaged per instance first): the mean ratio of each run, the mean and worst difference B − A,
how often B is better, equal or worse, and the paired Wilcoxon signed-rank test
(:func:`scipy.stats.wilcoxon`, two-sided) of the ratios; the same for the method time (shifted
geometric means, shift 1 s, and their quotient B/A). The test needs differing pairs: with 5 or
fewer the smallest two-sided p-value the signed-rank test can give is 0.0625, so below
:data:`MIN_PAIRS` differing pairs no p-value is shown and the table says why; pairs whose ratios
are equal (within :data:`TIE`) are dropped from the ratio test (Wilcoxon's zero method).
"""

from __future__ import annotations

import html
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from moebench.errors import InputError
from moebench.report import latex
from moebench.report.build import load_results
from moebench.report.paper import fmt_time, fmt_value
from moebench.report.sections import Column
from moebench.report.tables import score, shifted_geomean, time_column
from moebench.status import SKIPPED

#: Fewest differing pairs for a p-value (with 5 the two-sided exact test cannot go below 0.0625).
MIN_PAIRS = 6
#: Ratio differences up to this are ties.
TIE = 1e-9
KEY = ["instance", "instance_hash", "method"]
COLUMNS = (
    "method pairs ratio_a ratio_b diff_mean diff_worst b_better equal b_worse ratio_p ratio_test "
    "time_a time_b time_quotient time_p time_test status_changed"
).split()


@dataclass(frozen=True)
class Comparison:
    """The result of comparing run A with run B.

    Attributes
    ----------
    a, b
        Where the runs were read from.
    methods
        One row per shared method (:data:`COLUMNS`).
    pairs
        One row per shared (instance, method): the per-instance ratios, times and statuses of A and B.
    shared_instances
        Instances in both runs (same name and content hash).
    only_a, only_b
        Instances in one run only (by name and hash).
    changed
        Instance names in both runs with different content hashes (not compared).
    methods_only_a, methods_only_b
        Methods in one run only.
    renamed
        Shared instances that B has under another name (same content hash, one to one): compared,
        under A's name.
    """

    a: str
    b: str
    methods: pd.DataFrame
    pairs: pd.DataFrame
    shared_instances: int
    only_a: int
    only_b: int
    changed: tuple[str, ...]
    methods_only_a: tuple[str, ...]
    methods_only_b: tuple[str, ...]
    renamed: int = 0


def _per_instance(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ratio and time per (instance, hash, method) over repetitions (times of runs that did
    not apply left out); the statuses seen."""
    # times of runs that did not apply (the assumption check alone) are not method times
    t = runs.assign(_t=runs[time_column(runs)].fillna(runs["wall_time"]).where(~runs["status"].isin(SKIPPED)))
    g = t.groupby(KEY, sort=True)
    return pd.DataFrame(
        {
            "ratio": g["gain_ratio"].mean(),
            "time": g["_t"].mean(),
            "status": g["status"].agg(lambda s: "/".join(sorted(set(map(str, s))))),
        }
    ).reset_index()


def wilcoxon_test(diff: np.ndarray, tie: float = 0.0) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank test of paired differences: (p-value or NaN, a word on it).

    Differences within ``tie`` of 0 are dropped first; with fewer than :data:`MIN_PAIRS` left
    there is no p-value.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(diff, dtype=float)
    d = d[np.isfinite(d) & (np.abs(d) > tie)]
    if d.size == 0:
        return math.nan, "all pairs equal"
    if d.size < MIN_PAIRS:
        return math.nan, f"n={d.size} differing pairs < {MIN_PAIRS}: too few for a test"
    res = wilcoxon(d, alternative="two-sided")
    return float(res.pvalue), f"n={d.size}"


def compare_runs(
    a: str | os.PathLike[str] | pd.DataFrame,
    b: str | os.PathLike[str] | pd.DataFrame,
) -> Comparison:
    """Compare run ``a`` with run ``b`` (folders, tables or DataFrames); see the module docstring.

    Raises
    ------
    InputError
        For an unreadable table, or two runs that share no instance and method.
    """
    scored = []
    for run in (a, b):
        df, _, _, refs = load_results(run)
        scored.append(score(df, refs))
    ra, rb = scored
    inst_a = set(zip(ra["instance"].astype(str), ra["instance_hash"].astype(str)))
    inst_b = set(zip(rb["instance"].astype(str), rb["instance_hash"].astype(str)))
    renamed = _renamed(inst_a, inst_b)
    if renamed:  # the same contents under another name (naming rules changed): compared under A's name
        rb = rb.assign(instance=[renamed.get((n, h), n) for n, h in zip(rb["instance"], rb["instance_hash"])])
        inst_b = {(renamed.get((n, h), n), h) for n, h in inst_b}
    shared = inst_a & inst_b
    changed = tuple(sorted({n for n, _ in inst_a - shared} & {n for n, _ in inst_b - shared}))
    pa, pb = _per_instance(ra), _per_instance(rb)
    pairs = pa.merge(pb, on=KEY, suffixes=("_a", "_b"))
    if pairs.empty:
        raise InputError(
            "the two runs share no (instance, method): "
            + (f"{len(changed)} instance name(s) have other contents" if changed else "no instance name and hash")
        )
    methods_a, methods_b = set(ra["method"].astype(str)), set(rb["method"].astype(str))
    rows = []
    for method, g in pairs.groupby("method", sort=True):
        both = g[g["ratio_a"].notna() & g["ratio_b"].notna()]
        d = (both["ratio_b"] - both["ratio_a"]).to_numpy(float)
        rp, rtest = wilcoxon_test(d, TIE)
        timed = g[g["time_a"].notna() & g["time_b"].notna()]
        tp, ttest = wilcoxon_test((timed["time_b"] - timed["time_a"]).to_numpy(float))
        ta, tb = shifted_geomean(timed["time_a"], 1.0), shifted_geomean(timed["time_b"], 1.0)
        rows.append(
            {
                "method": method,
                "pairs": len(both),
                "ratio_a": float(both["ratio_a"].mean()),
                "ratio_b": float(both["ratio_b"].mean()),
                "diff_mean": float(d.mean()) if d.size else math.nan,
                "diff_worst": float(d.min()) if d.size else math.nan,
                "b_better": int((d > TIE).sum()),
                "equal": int((np.abs(d) <= TIE).sum()),
                "b_worse": int((d < -TIE).sum()),
                "ratio_p": rp,
                "ratio_test": rtest,
                "time_a": ta,
                "time_b": tb,
                "time_quotient": tb / ta if ta > 0 else math.nan,
                "time_p": tp,
                "time_test": ttest,
                "status_changed": int((g["status_a"] != g["status_b"]).sum()),
            }
        )
    return Comparison(
        a=_name(a),
        b=_name(b),
        methods=pd.DataFrame(rows, columns=COLUMNS),
        pairs=pairs,
        shared_instances=len(shared),
        only_a=len(inst_a - inst_b),
        only_b=len(inst_b - inst_a),
        changed=changed,
        methods_only_a=tuple(sorted(methods_a - methods_b)),
        methods_only_b=tuple(sorted(methods_b - methods_a)),
        renamed=len(renamed),
    )


def _renamed(inst_a: set[tuple[str, str]], inst_b: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """B's (name, hash) -> A's name, for instances of B whose contents A has under one other name."""
    only_a, only_b = inst_a - inst_b, inst_b - inst_a
    names_a: dict[str, list[str]] = {}
    for n, h in only_a:
        names_a.setdefault(h, []).append(n)
    count_b = Counter(h for _, h in only_b)
    taken = {n for n, _ in inst_b}
    out = {}
    for n, h in only_b:
        cand = names_a.get(h, [])
        # one-to-one only, and never onto a name B uses for other contents
        if len(cand) == 1 and count_b[h] == 1 and cand[0] not in taken:
            out[(n, h)] = cand[0]
    return out


def _name(run: str | os.PathLike[str] | pd.DataFrame) -> str:
    return "table" if isinstance(run, pd.DataFrame) else str(run)


# ---- output ---------------------------------------------------------------------------------------
def fmt_p(p: float, test: str) -> str:
    """A p-value with 2 significant digits, or why there is none."""
    if math.isnan(p):
        return "–" if test.startswith("all") else "n<6"
    return "<0.001" if p < 0.001 else f"{p:.2g}"


def _signed(v: float) -> str:
    return "–" if math.isnan(v) else f"{round(v, 3) + 0.0:+.3f}"


#: The per-method table: (header, cell of a row of :attr:`Comparison.methods`).
COLUMNS_SHOWN: list[Column] = [
    ("Method", lambda r: str(r["method"])),
    ("Pairs", lambda r: str(int(r["pairs"]))),
    ("Ratio A", lambda r: fmt_value(r["ratio_a"], "ratio")),
    ("Ratio B", lambda r: fmt_value(r["ratio_b"], "ratio")),
    ("B − A mean", lambda r: _signed(r["diff_mean"])),
    ("B − A worst", lambda r: _signed(r["diff_worst"])),
    ("B better/equal/worse", lambda r: f"{r['b_better']}/{r['equal']}/{r['b_worse']}"),
    ("Ratio p", lambda r: fmt_p(r["ratio_p"], r["ratio_test"])),
    ("Time A [s]", lambda r: fmt_time(r["time_a"])),
    ("Time B [s]", lambda r: fmt_time(r["time_b"])),
    ("Time B/A", lambda r: "–" if math.isnan(r["time_quotient"]) else f"{r['time_quotient']:.2f}"),
    ("Time p", lambda r: fmt_p(r["time_p"], r["time_test"])),
    ("Status changed", lambda r: str(int(r["status_changed"]))),
]
HEADER = [h for h, _ in COLUMNS_SHOWN]


def cells(c: Comparison) -> list[list[str]]:
    """The per-method table, formatted (ratios 3 decimals, times 2 significant digits)."""
    return [[cell(r) for _, cell in COLUMNS_SHOWN] for _, r in c.methods.iterrows()]


def summary_lines(c: Comparison) -> list[str]:
    """What was compared, in sentences."""
    lines = [
        f"A: {c.a}",
        f"B: {c.b}",
        f"Shared instances (same content hash): {c.shared_instances}"
        + (f" ({c.renamed} of them named otherwise in B, shown under A's names)" if c.renamed else "")
        + f"; only in A: {c.only_a}; only in B: {c.only_b}.",
    ]
    if c.changed:
        lines.append(f"Same name, other contents (not compared): {', '.join(c.changed)}.")
    if c.methods_only_a or c.methods_only_b:
        lines.append(
            f"Methods only in A: {', '.join(c.methods_only_a) or 'none'}; only in B: {', '.join(c.methods_only_b) or 'none'}."
        )
    lines.append(NOTE)
    return lines


NOTE = (
    "Pairs: shared instances where both runs have a gain ratio (repetitions averaged per instance). "
    "Ratio: mean gain ratio R/R* of each run against its own references; B − A: mean and worst (lowest) "
    "paired difference; better/equal/worse: pairs where B's ratio is higher, equal (within 1e-9), lower. "
    "p: two-sided Wilcoxon signed-rank test over the differing pairs (scipy.stats.wilcoxon); n<6: fewer than "
    "6 differing pairs, too few for the test (its smallest p-value with 5 is 0.0625); –: all pairs equal. "
    "Time: shifted geometric mean (shift 1 s) of the method time; B/A their quotient. "
    "Status changed: pairs whose statuses differ."
)


def to_markdown(c: Comparison) -> str:
    """The comparison as Markdown."""
    from moebench.report.writers import markdown_table

    parts = ["# moebench compare", ""] + [f"- {line}" for line in summary_lines(c)] + [""]
    parts += [markdown_table(HEADER, cells(c)), ""]
    return "\n".join(parts)


def to_latex(c: Comparison, wide: str = "split") -> str:
    """The comparison as booktabs table floats."""
    grid = latex.Grid(
        caption="Run B against run A on their shared instances and methods. " + NOTE,
        label=latex.label_name("compare"),
        header=HEADER,
        rows=cells(c),
        tt=frozenset({0}),
    )
    return "% moebench compare: \\input{compare.tex} (needs \\usepackage{booktabs})\n" + latex.render(grid, wide)


def to_html(c: Comparison) -> str:
    """The comparison as one self-contained HTML page (inline CSS, no scripts)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in row) + "</tr>" for row in cells(c))
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(c))
    css = (
        "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}"
        "table{border-collapse:collapse;font-size:0.85rem}th,td{padding:0.2rem 0.6rem;border-bottom:1px solid #ddd}"
        "th{border-bottom:2px solid #444;background:#f6f6f6;text-align:left}td{font-variant-numeric:tabular-nums}"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n<title>moebench compare</title>\n"
        f"<style>{css}</style>\n</head>\n<body>\n<h1 id='compare'>moebench compare</h1>\n<ul>{items}</ul>\n"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n</body>\n</html>\n"
    )


def write_comparison(c: Comparison, out: Path, formats: Sequence[str], wide: str = "split") -> list[Path]:
    """``compare.md``, ``compare.csv`` (per method) and ``compare-pairs.csv``, ``compare.tex``, ``compare.html``."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for fmt, name, write in (
        ("md", "compare.md", lambda p: p.write_text(to_markdown(c), encoding="utf-8")),
        ("csv", "compare.csv", lambda p: c.methods.to_csv(p, index=False)),
        ("csv", "compare-pairs.csv", lambda p: c.pairs.to_csv(p, index=False)),
        ("latex", "compare.tex", lambda p: p.write_text(to_latex(c, wide), encoding="utf-8")),
        ("html", "compare.html", lambda p: p.write_text(to_html(c), encoding="utf-8")),
    ):
        if fmt in formats:
            write(out / name)
            files.append(out / name)
    return files
