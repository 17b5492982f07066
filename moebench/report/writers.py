"""Report writers: CSV, LaTeX (booktabs tables and headline macros) and Markdown (HTML: :mod:`moebench.report.html`).

All writers take the scored per-run table and the aggregates of
:mod:`moebench.report.tables`; none computes an objective.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from moebench.report.sections import Section

#: Summary columns shown in every format, with their headers.
SUMMARY_COLUMNS = [
    ("family", "Family"),
    ("method", "Method"),
    ("runs", "Runs"),
    ("failed", "Failed"),
    ("skipped", "N/A"),
    ("gain_mean", "Gain mean"),
    ("gain_gmean", "Gain gmean"),
    ("gain_worst", "Gain worst"),
    ("lat_mean", "Lat. mean"),
    ("lat_gmean", "Lat. gmean"),
    ("lat_worst", "Lat. worst"),
    ("bound_worst", "Bound worst"),
    ("time_sgm", "Time SGM [s]"),
]


def fmt(v: Any, digits: int = 3) -> str:
    """A table cell: fixed decimals for floats, '–' for missing values."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _cells(summary: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, r in summary.iterrows():
        rows.append([fmt(r[c], 4 if c == "time_sgm" else 3) for c, _ in SUMMARY_COLUMNS])
    return rows


# ---- CSV ---------------------------------------------------------------------------------
def write_csv(folder: Path, runs: pd.DataFrame, summary: pd.DataFrame, violations: pd.DataFrame) -> list[Path]:
    """``summary.csv``, ``violations.csv`` and ``ratios.csv`` (one row per run with its ratios)."""
    out = []
    cols = [
        c
        for c in (
            "task_id instance family method role repetition seed status latency gain empty_latency ref_gain "
            "ref_latency ref_proven ref_bound gain_ratio latency_ratio bound_ratio wall_time error"
        ).split()
        if c in runs.columns
    ]
    for name, df in (("summary", summary), ("violations", violations), ("ratios", runs[cols])):
        p = folder / f"{name}.csv"
        df.to_csv(p, index=False)
        out.append(p)
    return out


# ---- LaTeX -------------------------------------------------------------------------------
_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
}
_DIGITS = "Zero One Two Three Four Five Six Seven Eight Nine".split()


def tex_escape(s: str) -> str:
    """Escape LaTeX special characters."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(s))


def macro_name(*parts: str) -> str:
    """A LaTeX macro name (letters only) from free text: ``greedy-enum[2]`` -> ``GreedyEnumTwo``."""
    out = []
    for part in parts:
        for tok in re.findall(r"[A-Za-z]+|[0-9]", part):
            out.append(_DIGITS[int(tok)] if tok.isdigit() else tok[0].upper() + tok[1:])
    return "mb" + "".join(out)


def latex_summary(summary: pd.DataFrame) -> str:
    """The family × method summary as a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
    lines = [
        "% moebench summary table: \\input{tables.tex} (needs \\usepackage{booktabs})",
        "\\begin{tabular}{llrrrrrrrrrrr}",
        "\\toprule",
        " & & & & & \\multicolumn{3}{c}{Gain ratio $R/R^*$} & \\multicolumn{3}{c}{Latency ratio} & & \\\\",
        "\\cmidrule(lr){6-8}\\cmidrule(lr){9-11}",
        "Family & Method & Runs & Failed & N/A & mean & gmean & worst & mean & gmean & worst & "
        "$R/\\mathrm{UB}$ worst & Time SGM [s] \\\\",
        "\\midrule",
    ]
    prev = None
    for cells in _cells(summary):
        fam = cells[0]
        if prev is not None and fam != prev:
            lines.append("\\midrule")
        shown = [tex_escape(fam) if fam != prev else "", *(tex_escape(c) for c in cells[1:])]
        lines.append(" & ".join(shown) + " \\\\")
        prev = fam
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def latex_violations(violations: pd.DataFrame) -> str:
    """Guarantee violations as a booktabs ``tabular`` (one line saying none when empty)."""
    lines = [
        "\\begin{tabular}{lllll}",
        "\\toprule",
        "Instance & Method & Kind & Guarantee & Gain ratio \\\\",
        "\\midrule",
    ]
    if violations.empty:
        lines.append("\\multicolumn{5}{c}{no violations} \\\\")
    for _, r in violations.iterrows():
        cells = [r["instance"], r["method"], r["kind"], r["guarantee"], fmt(r["gain_ratio"], 4)]
        lines.append(" & ".join(tex_escape(str(c)) for c in cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def latex_macros(headline: dict[str, Any], summary: pd.DataFrame) -> str:
    """``\\newcommand`` macros for headline numbers and per-method ratios (family ``all``
    when there are several families)."""
    lines = ["% moebench headline numbers: \\input{macros.tex}"]
    for key, v in headline.items():
        lines.append(f"\\newcommand{{\\{macro_name(key)}}}{{{tex_escape(fmt(v))}}}")
    fams = set(summary["family"]) if not summary.empty else set()
    scope = summary[summary["family"] == "all"] if "all" in fams else summary
    seen: set[str] = set()
    for _, r in scope.iterrows():
        for col, label in (("gain_gmean", "GainGmean"), ("gain_worst", "GainWorst"), ("lat_gmean", "LatGmean")):
            name = macro_name(label, str(r["method"]))
            if name in seen:  # two method names that differ only in punctuation
                continue
            seen.add(name)
            lines.append(f"\\newcommand{{\\{name}}}{{{tex_escape(fmt(r[col]))}}}")
    return "\n".join(lines) + "\n"


def write_latex(folder: Path, summary: pd.DataFrame, violations: pd.DataFrame, headline: dict[str, Any]) -> list[Path]:
    """``tables.tex`` (summary), ``violations.tex`` and ``macros.tex``."""
    out = []
    for name, text in (
        ("tables.tex", latex_summary(summary)),
        ("violations.tex", latex_violations(violations)),
        ("macros.tex", latex_macros(headline, summary)),
    ):
        p = folder / name
        p.write_text(text, encoding="utf-8")
        out.append(p)
    return out


def latex_section(section: Section) -> str:
    """One extra section as a booktabs ``tabular`` (text columns left, numeric right)."""

    def numeric(j: int) -> bool:
        cells = [str(r[j]) for r in section.rows]
        return bool(cells) and all(_is_number(c) for c in cells)

    spec = "".join("r" if numeric(j) else "l" for j in range(len(section.header)))
    lines = [
        f"% moebench section: {tex_escape(section.title)} (needs \\usepackage{{booktabs}})",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(tex_escape(h) for h in section.header) + " \\\\",
        "\\midrule",
    ]
    if not section.rows:
        lines.append(f"\\multicolumn{{{len(section.header)}}}{{c}}{{{tex_escape(section.empty)}}} \\\\")
    lines += [" & ".join(tex_escape(str(c)) for c in r) + " \\\\" for r in section.rows]
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_sections(folder: Path, sections: Sequence[Section], formats: Sequence[str]) -> list[Path]:
    """``<slug>.csv`` and ``<slug>.tex`` of every extra section, as the formats ask."""
    out = []
    for sec in sections:
        if "csv" in formats:
            p = folder / f"{sec.slug}.csv"
            sec.table().to_csv(p, index=False)
            out.append(p)
        if "latex" in formats and sec.latex:
            p = folder / f"{sec.slug}.tex"
            p.write_text(latex_section(sec), encoding="utf-8")
            out.append(p)
    return out


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell == "–"
    return True


# ---- Markdown ----------------------------------------------------------------------------
def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def clean(c: str) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(clean(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(clean(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _sections(
    summary: pd.DataFrame,
    violations: pd.DataFrame,
    fails: pd.DataFrame,
    refs: pd.DataFrame,
    extra: Sequence[Section] = (),
) -> list[Section]:
    """Every table section in display order: the summary, the extra sections, then the core rest."""
    core = [
        Section(
            "Summary per family × method", [h for _, h in SUMMARY_COLUMNS], _cells(summary), "summary", empty="no runs"
        ),
        Section(
            "Guarantee violations",
            ["Instance", "Family", "Method", "Kind", "Guarantee", "Gain ratio", "Detail"],
            [[fmt(v, 4) for v in r] for r in violations.itertuples(index=False)],
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
    return [core[0], *extra, *core[1:]]


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
    summary: pd.DataFrame,
    violations: pd.DataFrame,
    fails: pd.DataFrame,
    refs: pd.DataFrame,
    plots: Sequence[Path],
    provenance: dict[str, Any],
    extra: Sequence[Section] = (),
) -> Path:
    """``report.md``: headline, tables (the core ones, then the extra sections) and the figures."""
    parts = [f"# {title}", "", NOTES, ""]
    parts += [f"- {k.replace('_', ' ')}: {fmt(v)}" for k, v in headline.items()] + [""]
    for sec in _sections(summary, violations, fails, refs, extra):
        parts += [f"## {sec.title}", ""] + ([sec.note, ""] if sec.note else [])
        parts += [_md_table(sec.header, sec.rows) if sec.rows else sec.empty, ""]
        parts += [f"![{p.stem}](plots/{p.name})" for p in sec.figures] + ([""] if sec.figures else [])
    if plots:
        parts += ["## Figures", ""]
        parts += [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    parts += ["## Provenance", ""] + [f"- {k}: {v}" for k, v in provenance.items()] + [""]
    p = folder / "report.md"
    p.write_text("\n".join(parts), encoding="utf-8")
    return p
