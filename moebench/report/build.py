"""Building a report from a results table (and a reference file): ``moebench report``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from moebench.bench.artifacts import read_artifacts
from moebench.bench.references import read_references
from moebench.bench.store import read_table
from moebench.errors import InputError
from moebench.report import html, paper, sections, tables, writers
from moebench.report.plots import all_plots
from moebench.report.style import with_pdfs
from moebench.schema.rows import conform

FORMATS = ("csv", "latex", "md", "html")
#: Columns a results table must have for a report.
REQUIRED = (
    "instance",
    "instance_hash",
    "family",
    "method",
    "status",
    "gain",
    "latency",
    "empty_latency",
    "feasible",
    "wall_time",
)
_PROVENANCE = ("suite", "moebench_version", "git_commit", "machine", "python_version", "package_versions")


def parse_formats(spec: str) -> tuple[str, ...]:
    """``"csv,latex"`` -> ``("csv", "latex")``; ``markdown``/``tex`` are accepted aliases.

    Raises
    ------
    InputError
        For an unknown format.
    """
    alias = {"markdown": "md", "tex": "latex", "htm": "html"}
    out = []
    for f in (s.strip().lower() for s in spec.split(",") if s.strip()):
        f = alias.get(f, f)
        if f not in FORMATS:
            raise InputError(f"unknown format {f!r} (known: {', '.join(FORMATS)})", where="--format")
        out.append(f)
    if not out:
        raise InputError("no format given", where="--format")
    return tuple(dict.fromkeys(out))


def headline(runs: pd.DataFrame, summary: pd.DataFrame, violations: pd.DataFrame) -> dict[str, Any]:
    """Headline numbers (also the LaTeX macros): counts, proven references, best heuristic."""
    ref_rows = runs.drop_duplicates(["instance", "instance_hash"])
    out: dict[str, Any] = {
        "instances": int(ref_rows.shape[0]),
        "methods": int(runs["method"].nunique()),
        "runs": len(runs),
        "failed_runs": int(runs["status"].isin(tables.FAILED).sum()),
        "time_limit_runs": int((runs["status"] == "time-limit").sum()),
        "proven_optima": int(ref_rows["ref_proven"].sum()),
        "guarantee_violations": int((violations["kind"] == "below").sum()) if not violations.empty else 0,
    }
    scope = tables.overall_rows(summary)
    exact = tables.exact_status(summary)
    if not exact.empty and exact["gap_worst"].notna().any():
        # formatted here (1 decimal, a percentage) so that every writer and the macro print the same
        out["exact_worst_gap_pct"] = paper.fmt_value(100.0 * float(exact["gap_worst"].max()), "pct")
    heur = scope[scope["kind"] != "exact"].dropna(subset=["gain_mean"])
    everywhere = heur[tables.common_ground(heur)]
    heur = everywhere if not everywhere.empty else heur  # a method with ratios on every instance, if any
    if not heur.empty:
        best = heur.sort_values(["gain_mean", "gain_worst", "method"], ascending=[False, False, True]).iloc[0]
        out["best_heuristic"] = best["method"]
        out["best_heuristic_gain_gmean"] = float(best["gain_gmean"])
        out["best_heuristic_gain_worst"] = float(best["gain_worst"])
    return out


def load_results(
    results: str | os.PathLike[str] | pd.DataFrame, references: str | os.PathLike[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, Path | None, dict]:
    """Read a results table for a report: (method runs, stress rows, results folder, references).

    Raises
    ------
    InputError
        For a missing or unreadable table, one without rows or method runs, or one that is not
        a moebench results table (naming the missing columns).
    """
    if isinstance(results, pd.DataFrame):
        df = results
        base = None
    else:
        df = read_table(results)
        base = Path(results) if Path(results).is_dir() else Path(results).parent
    where = None if base is None else str(base)
    if df.empty:
        raise InputError("the results table has no rows", file=where)
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise InputError(f"not a moebench results table: missing column(s) {', '.join(missing)}", file=where)
    df = conform(df)
    stress = df[df["kind"] == "stress"].reset_index(drop=True)
    df = df[df["kind"] != "stress"].reset_index(drop=True)
    if df.empty:
        raise InputError("the results table has no method runs", file=where)
    ref_path = Path(references) if references is not None else (None if base is None else base / "references.solu")
    refs = read_references(ref_path) if ref_path is not None else {}
    return df, stress, base, refs


def write_report(
    results: str | os.PathLike[str] | pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    formats: tuple[str, ...] = FORMATS,
    references: str | os.PathLike[str] | None = None,
    title: str | None = None,
    options: paper.ReportOptions | None = None,
) -> list[Path]:
    """Write the report files.

    Parameters
    ----------
    results
        A results table (DataFrame) or where to read one (folder, parquet, CSV, JSONL).
    out_dir
        Output folder (created); figures go to ``out_dir/plots``.
    formats
        Any of ``csv``, ``latex``, ``md``, ``html``.
    references
        Reference file; default ``references.solu`` beside the results, if present. The
        exact runs in the table are merged in either way.
    title
        Report title (default: from the suite name).
    options
        Methods, families and columns to show, and how wide LaTeX tables are set; default
        ``report.toml`` beside the results (the suite's ``[report]`` table), if present.

    Returns
    -------
    list of Path
        Every file written.
    """
    df, stress, base, refs = load_results(results, references)
    if options is None:
        options = paper.read_options(base)
    runs = paper.select(tables.score(df, refs), options)
    summary = tables.summary_table(runs)
    violations = tables.guarantee_violations(runs)
    fails = tables.failures(runs)
    ref_table = (
        runs.drop_duplicates(["instance", "instance_hash"])[
            ["instance", "ref_gain", "ref_proven", "ref_bound", "ref_method"]
        ]
        .sort_values("instance")
        .reset_index(drop=True)
    )
    head = headline(runs, summary, violations)
    suite = str(df["suite"].iloc[0]) if "suite" in df else "results"
    title = title or f"moebench report: {suite}"
    prov = {k: df[k].dropna().iloc[0] for k in _PROVENANCE if k in df and df[k].notna().any()}
    if "finished_at" in df:
        prov["last_run_finished"] = str(df["finished_at"].dropna().max())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = sections.ReportContext(
        runs=runs, summary=summary, results_dir=base, out_dir=out, stress=stress, artifacts=read_artifacts(base)
    )
    extra = core_sections(runs, summary, options) + sections.collect(ctx)
    files = with_pdfs(f for sec in extra for f in sec.figures)
    files += writers.write_sections(out, extra, formats, options.latex_wide)
    plots = all_plots(runs, out / "plots") if "html" in formats or "md" in formats else []
    files += with_pdfs(plots)
    if "csv" in formats:
        files += writers.write_csv(out, runs, summary, violations)
    if "latex" in formats:
        grid = paper.paper_grid(summary, runs, options)
        files += writers.write_latex(out, summary, violations, head, grid, options.latex_wide)
    shown = writers.report_sections(summary, violations, fails, ref_table, extra)
    if "md" in formats:
        files.append(writers.write_markdown(out, title, head, shown, plots, prov))
    if "html" in formats:
        files.append(html.write_html(out, title, head, shown, plots, prov))
    _forget_stale(out, files)
    return files


def core_sections(runs: pd.DataFrame, summary: pd.DataFrame, options: paper.ReportOptions) -> list[sections.Section]:
    """The paper table (methods × families; its LaTeX is ``tables.tex``) and the status of the exact
    back ends, as sections shown first in Markdown and HTML."""
    header, rows, _, spans, data = paper.paper_table(summary, runs, options)
    flat = list(header)
    for a, b, text in spans:
        fam = text.split("\n")[0]
        for j in range(a, b + 1):
            flat[j] = f"{fam}: {header[j]}"
    refs = paper.reference_kinds(runs)
    note = (
        paper.paper_caption(options, summary)
        + " References: "
        + "; ".join(f"{f} {refs[f]}" for f in paper.paper_families(summary, options) if f in refs)
    )
    kinds = dict(paper.method_order(summary, options))
    flat.insert(1, "Kind")
    rows = [[r[0], kinds.get(r[0], ""), *r[1:]] for r in rows]
    out = [sections.Section("Methods × families", flat, rows, "paper", note=note, data=data, latex=False)]
    ex = tables.exact_status(summary)
    if not ex.empty:
        counts = zip(["Runs", "Optimal", "TL", "Feasible", "Failed", "N/A"], ex.columns[1:-1])
        columns = [
            ("Method", lambda r: str(r["method"])),
            *((h, lambda r, c=c: str(int(r[c]))) for h, c in counts),
            ("Worst gap %", lambda r: paper.fmt_value(100 * r["gap_worst"], "pct")),
        ]
        note = (
            "Runs of the exact methods by status (TL: stopped by the time limit); worst gap: the largest relative gap "
            "(bound − gain)/bound of any of their runs (0.0 for proven optima; a time-limit run keeps its incumbent "
            "and its gap)."
        )
        title = "Exact back ends: status and worst gap"
        out.append(sections.frame_section(title, ex, columns, "exact-status", note=note))
    return out


#: Every file a report writes is listed here, so that the next report into the same folder can
#: delete the files it no longer writes (a section that disappeared) and nothing else.
MANIFEST = "report-files.txt"


def _forget_stale(out: Path, files: list[Path]) -> None:
    """Delete files the previous report in ``out`` listed but this one did not write; list the new ones."""
    manifest = out / MANIFEST
    root = out.resolve()
    now = sorted({f.resolve().relative_to(root).as_posix() for f in files if f.resolve().is_relative_to(root)})
    if manifest.is_file():
        before = {ln.strip() for ln in manifest.read_text(encoding="utf-8").splitlines() if ln.strip()}
        for rel in sorted(before - set(now)):
            stale = out / rel
            # only plain files inside the report folder, as listed by moebench itself
            if ".." not in Path(rel).parts and stale.is_file():
                stale.unlink()
    manifest.write_text("".join(f"{r}\n" for r in now), encoding="utf-8")
