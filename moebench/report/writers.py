"""Report writers: CSV, LaTeX (booktabs tables and headline macros) and Markdown (HTML: :mod:`moebench.report.html`).

All writers take the scored per-run table and the aggregates of
:mod:`moebench.report.tables`; none computes an objective.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from moebench.report import latex
from moebench.report.latex import macro_name, tex_escape
from moebench.report.paper import fmt_value, gmean_undefined, kind_groups
from moebench.report.sections import Section
from moebench.report.tables import kind_rank, overall_rows

#: Summary columns shown in every format: (summary field, header, number kind, shorter LaTeX header: the
#: spans above it say ratio or status).
SUMMARY_COLUMNS = [
    ("family", "Family", "text", "Family"),
    ("method", "Method", "text", "Method"),
    ("instances", "Instances", "count", "Inst."),
    ("runs", "Runs", "count", "Runs"),
    ("optimal", "Optimal", "count", "Opt."),
    ("time_limit", "Time limit", "count", "TL"),
    ("feasible", "Feasible", "count", "Feas."),
    ("failed", "Failed", "count", "Fail."),
    ("skipped", "N/A", "count", "N/A"),
    ("gap_worst", "Worst gap %", "pct", "gap %"),
    ("time_sgm", "Time SGM [s]", "time", "time [s]"),
    ("gain_mean", "Gain mean", "ratio", "mean"),
    ("gain_gmean", "Gain gmean", "ratio", "gmean"),
    ("gain_worst", "Gain worst", "ratio", "worst"),
    ("lat_mean", "Lat. mean", "ratio", "mean"),
    ("lat_gmean", "Lat. gmean", "ratio", "gmean"),
    ("lat_worst", "Lat. worst", "ratio", "worst"),
    ("bound_worst", "Bound worst", "ratio", "R/UB worst"),
    ("reduction_pct", "Reduction %", "pct", "red. %"),
    ("holdout_reduction_pct", "Test reduction %", "pct", "test red. %"),
]


def fmt(v: Any, digits: int = 3) -> str:
    """A table cell: fixed decimals for floats, '–' for missing values."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def summary_cell(r: pd.Series, col: str, kind: str) -> str:
    """One summary cell in the report's number style (:mod:`moebench.report.paper`).

    The instance count reads ``covered/of the family`` where a row does not cover its family
    (common ground); a geometric mean undefined because of a zero ratio reads ``n/a``.
    """
    if col == "instances":
        n, f = int(r["instances"]), int(r["family_instances"])
        return str(n) if n == f else f"{n}/{f}"
    if gmean_undefined(r, col):
        return "n/a"
    v = r[col]
    if col == "gap_worst" and pd.notna(v):
        v = 100.0 * float(v)
    return str(v) if kind == "text" else fmt_value(v, kind)


def summary_columns(summary: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """The summary columns worth showing: holdout and bound columns only where they have values."""
    skip = {c for c in ("holdout_reduction_pct", "bound_worst", "gap_worst") if summary[c].isna().all()}
    return [c for c in SUMMARY_COLUMNS if c[0] not in skip]


# ---- CSV ---------------------------------------------------------------------------------
def write_csv(folder: Path, runs: pd.DataFrame, summary: pd.DataFrame, violations: pd.DataFrame) -> list[Path]:
    """``summary.csv``, ``violations.csv`` and ``ratios.csv`` (one row per run with its ratios)."""
    cols = [
        c
        for c in (
            "task_id instance family method role repetition seed status latency gain empty_latency ref_gain "
            "ref_latency ref_proven ref_bound gain_ratio latency_ratio bound_ratio wall_time error"
        ).split()
        if c in runs.columns
    ]
    frames = {"summary": summary, "violations": violations, "ratios": runs[cols]}
    for name, df in frames.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    return [folder / f"{name}.csv" for name in frames]


# ---- LaTeX -------------------------------------------------------------------------------


def summary_grids(summary: pd.DataFrame) -> list[latex.Grid]:
    """The full summary as LaTeX grids: one per family (and ``all``), split by column groups to fit."""
    cols = [c for c in summary_columns(summary) if c[0] != "family"]
    header = [tex for *_, tex in cols]
    idx = {c[0]: i for i, c in enumerate(cols)}
    spans = []
    for first, last, text in (
        ("optimal", "skipped", "Status counts"),
        ("gain_mean", "gain_worst", "Gain ratio R/R*"),
        ("lat_mean", "lat_worst", "Latency ratio"),
    ):
        if first in idx and last in idx:
            spans.append((idx[first], idx[last], text))
    out = []
    for fam, g in summary.groupby("family", sort=False):
        g = g.assign(_k=g["kind"].map(kind_rank)).sort_values(["_k", "method"], kind="stable")
        rows = [[summary_cell(r, c, k) for c, _, k, _ in cols] for _, r in g.iterrows()]
        n = int(g["family_instances"].iloc[0])
        out.append(
            latex.Grid(
                caption=f"Summary, family {fam} ({n} instances). Runs by status (Opt. optimal, TL time limit, "
                "Feas. feasible, Fail. failed, N/A not applicable), ratios to the reference, worst relative gap "
                "(bound - gain)/bound of a run with a bound, method time (shifted geometric mean, shift 1 s). "
                "Inst. a/b: the aggregates cover a of the family's b instances; gmean n/a: a ratio is 0.",
                label=latex.label_name(f"summary-{fam}"),
                header=header,
                rows=rows,
                tt=frozenset({0}),
                key=2,
                groups=kind_groups(list(g["kind"])),
                supergroups=spans,
                size="footnotesize",
                colsep=4.0,
            )
        )
    return out


def latex_violations(violations: pd.DataFrame, wide: str = "split") -> str:
    """Guarantee violations as a booktabs table float (one line saying none when empty)."""
    rows = [
        [str(r["instance"]), str(r["method"]), str(r["kind"]), str(r["guarantee"]), fmt_value(r["gain_ratio"], "ratio")]
        for _, r in violations.iterrows()
    ]
    grid = latex.Grid(
        caption="Guarantee violations: runs below their method's declared guarantee where it applies"
        + ("." if rows else " (none)."),
        label=latex.label_name("violations"),
        header=["Instance", "Method", "Kind", "Guarantee", "Gain ratio"],
        rows=rows,
        tt=frozenset({1}),
    )
    return "% moebench guarantee violations: \\input{violations.tex} (needs \\usepackage{booktabs})\n" + latex.render(
        grid, wide
    )


def latex_macros(headline: dict[str, Any], summary: pd.DataFrame) -> str:
    """``\\newcommand`` macros for headline numbers and per-method ratios (family ``all``
    when there are several families)."""
    lines = ["% moebench headline numbers: \\input{macros.tex}"]
    for key, v in headline.items():
        lines.append(f"\\newcommand{{\\{macro_name(key)}}}{{{tex_escape(fmt(v, 1 if key.endswith('_pct') else 3))}}}")
    scope = overall_rows(summary)
    seen: set[str] = set()
    for _, r in scope.iterrows():
        for col, label in (("gain_gmean", "GainGmean"), ("gain_worst", "GainWorst"), ("lat_gmean", "LatGmean")):
            name = macro_name(label, str(r["method"]))
            if name in seen:  # two method names that differ only in punctuation
                continue
            seen.add(name)
            text = "n/a" if gmean_undefined(r, col) else fmt(r[col])
            lines.append(f"\\newcommand{{\\{name}}}{{{tex_escape(text)}}}")
    return "\n".join(lines) + "\n"


_PREAMBLE = (
    "% moebench {what}: \\input{{{name}}} in a document with \\usepackage{{booktabs}}{extra}\n"
    "% (table floats with caption and label; see docs/reports.md)\n"
)


def write_latex(
    folder: Path,
    summary: pd.DataFrame,
    violations: pd.DataFrame,
    headline: dict[str, Any],
    paper: latex.Grid,
    wide: str = "split",
) -> list[Path]:
    """``tables.tex`` (the compact paper table), ``summary.tex`` (the full summary, one table
    per family), ``violations.tex`` and ``macros.tex``."""
    extra = " and \\usepackage{graphicx}" if wide == "resize" else ""
    texts = {
        "tables.tex": _PREAMBLE.format(what="paper table", name="tables.tex", extra=extra) + latex.render(paper, wide),
        "macros.tex": latex_macros(headline, summary),
        "violations.tex": latex_violations(violations, wide),
        "summary.tex": _PREAMBLE.format(what="summary per family", name="summary.tex", extra=extra)
        + "\n".join(latex.render(g, wide) for g in summary_grids(summary)),
    }
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in texts]


#: Headers of the leading columns that name a row (repeated when a table is split by columns).
KEYS = ("family", "method", "regime", "instance", "what")


def latex_section(section: Section, wide: str = "split") -> str:
    """One extra section as booktabs table floats (text columns left, numeric right; columns
    named Method in ``\\texttt``)."""
    head = f"% moebench section: {tex_escape(section.title)} (needs \\usepackage{{booktabs}})\n"
    tt = frozenset(j for j, h in enumerate(section.header) if str(h).lower() == "method")
    grid = latex.Grid(
        caption=section.title,
        label=latex.label_name(section.slug),
        header=list(section.header),
        rows=[[str(c) for c in r] for r in section.rows],
        tt=tt,
    )
    # the leading names (family, method, ...) repeat in every part of a split table
    key = 0
    while key < min(2, len(section.header) - 1) and not grid.numeric(key) and str(section.header[key]).lower() in KEYS:
        key += 1
    grid.key = max(1, key)
    if not section.rows:
        grid.rows = [[section.empty] + [""] * (len(section.header) - 1)]
    return head + latex.render(grid, wide)


def write_sections(
    folder: Path, sections: Sequence[Section], formats: Sequence[str], wide: str = "split"
) -> list[Path]:
    """``<slug>.csv`` and ``<slug>.tex`` of every extra section, as the formats ask."""
    out = []
    for sec in sections:
        if "csv" in formats:
            out.append(folder / f"{sec.slug}.csv")
            sec.table().to_csv(out[-1], index=False)
        if "latex" in formats and sec.latex:
            out.append(folder / f"{sec.slug}.tex")
            out[-1].write_text(latex_section(sec, wide), encoding="utf-8")
    return out


# ---- Markdown ----------------------------------------------------------------------------
def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def clean(c: str) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(clean(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


#: Sections shown before the summary (the paper table and the exact back ends' status).
LEADING = ("paper", "exact-status")


def report_sections(
    summary: pd.DataFrame,
    violations: pd.DataFrame,
    fails: pd.DataFrame,
    refs: pd.DataFrame,
    extra: Sequence[Section] = (),
) -> list[Section]:
    """Every table section of the Markdown and HTML pages in display order: the leading extra
    sections, the summary, the other extra sections, then the core rest."""
    cols = summary_columns(summary)
    core = [
        Section(
            "Summary per family × method",
            [c[1] for c in cols],
            [[summary_cell(r, c, k) for c, _, k, _ in cols] for _, r in summary.iterrows()],
            "summary",
            note=SUMMARY_NOTE,
            empty="no runs",
        ),
        Section(
            "Guarantee violations",
            ["Instance", "Family", "Method", "Kind", "Guarantee", "Gain ratio", "Detail"],
            [[fmt(v, 3) for v in r] for r in violations.itertuples(index=False)],
            "violations",
            empty="No violations: every run of a method with a declared guarantee met it where it applies.",
        ),
        Section(
            "Failed runs",
            ["Instance", "Method", "Status", "Error"],
            [[fmt(v) for v in r] for r in fails.itertuples(index=False)],
            "failures",
            empty="No failed runs.",
        ),
        Section(
            "References",
            ["Instance", "Reference gain", "Proven", "Upper bound", "From"],
            [[fmt(v, 6) for v in r] for r in refs.itertuples(index=False)],
            "references",
            empty="No references (no exact runs).",
        ),
    ]
    first = [s for s in extra if s.slug in LEADING]
    return [*first, core[0], *(s for s in extra if s.slug not in LEADING), *core[1:]]


SUMMARY_NOTE = (
    "Instances a/b: the row's aggregates cover a of the family's b instances (the method does not apply to, or "
    "failed on, the others): compare it with its neighbours on those a only. Gain gmean n/a: some run has ratio 0. "
    "Worst gap: the largest relative gap (bound − gain)/bound of a run that reports a bound (the exact back ends)."
)

NOTES = (
    "Gain ratio = R(alg)/R(ref) with R(ref) the proven optimum (or the best exact incumbent); "
    "latency ratio = Lat(alg)/Lat(ref); R/UB = gain over the best proven bound where no optimum is proven. "
    "Ratios cover runs with a placement; failed runs are counted in Failed and listed below. "
    "Time SGM = shifted geometric mean of the method time (the solve call, without process start-up), shift 1 s."
)


def write_markdown(
    folder: Path,
    title: str,
    headline: dict[str, Any],
    sections: Sequence[Section],
    plots: Sequence[Path],
    provenance: dict[str, Any],
) -> Path:
    """``report.md``: headline, tables (the sections of :func:`report_sections`) and the figures."""
    parts = [f"# {title}", "", NOTES, ""]
    parts += [f"- {k.replace('_', ' ')}: {fmt(v)}" for k, v in headline.items()] + [""]
    for sec in sections:
        parts += [f"## {sec.title}", ""] + ([sec.note, ""] if sec.note else [])
        parts += [markdown_table(sec.header, sec.rows) if sec.rows else sec.empty, ""]
        parts += [f"![{p.stem}](plots/{p.name})" for p in sec.figures] + ([""] if sec.figures else [])
    if plots:
        parts += ["## Figures", ""]
        parts += [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    parts += ["## Provenance", ""] + [f"- {k}: {v}" for k, v in provenance.items()] + [""]
    p = folder / "report.md"
    p.write_text("\n".join(parts), encoding="utf-8")
    return p
