"""``moebench report RESULTS`` and ``moebench compare A B``: argument handling of the report commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_selection_arguments(p: argparse.ArgumentParser) -> None:
    """``--methods``, ``--families``, ``--columns`` and ``--latex-wide`` (report options that override
    the results folder's ``report.toml``, i.e. the suite's ``[report]`` table)."""
    from typing import get_args

    from moebench.report.latex import WIDE_MODES
    from moebench.schema.config import ReportColumn

    p.add_argument("--methods", default=None, help="comma-separated methods to show (default: all)")
    p.add_argument("--families", default=None, help="comma-separated families to show (default: all)")
    p.add_argument(
        "--columns",
        default=None,
        help="comma-separated quantities of the paper table (tables.tex), per family except time: "
        + ", ".join(get_args(ReportColumn))
        + " (default gain_mean,gain_worst,time; test_reduction is added where holdout twins exist)",
    )
    p.add_argument(
        "--latex-wide",
        choices=WIDE_MODES,
        default=None,
        help="LaTeX tables wider than the line: split into several floats (default), or scale them with "
        "\\resizebox (needs \\usepackage{graphicx})",
    )


def report_command(args: argparse.Namespace) -> int:
    """Write the report for ``args.results`` into ``args.out`` (default ``<results>/report``).

    Returns
    -------
    int
        0 on success (bad input raises :class:`~moebench.errors.InputError`: exit 2).
    """
    from moebench.report.build import parse_formats, write_report
    from moebench.report.paper import check_columns, parse_list, read_options

    formats = parse_formats(args.format)
    res = Path(args.results)
    base = res if res.is_dir() else res.parent
    out = Path(args.out) if args.out else base / "report"
    columns = parse_list(getattr(args, "columns", None), "--columns")
    options = read_options(base).merged(
        methods=parse_list(getattr(args, "methods", None), "--methods"),
        families=parse_list(getattr(args, "families", None), "--families"),
        columns=None if columns is None else check_columns(columns),
        latex_wide=getattr(args, "latex_wide", None),
    )
    files = write_report(res, out, formats=formats, references=getattr(args, "references", None), options=options)
    print(f"moebench: wrote {len(files)} report files into {out}", file=sys.stderr)
    return 0


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    """The ``compare`` sub-command."""
    from moebench.report.latex import WIDE_MODES

    c = sub.add_parser(
        "compare",
        help="two runs side by side on their shared instances and methods: ratio and time differences, "
        "paired Wilcoxon tests",
    )
    c.add_argument("a", metavar="A", help="results folder or table of the first run")
    c.add_argument("b", metavar="B", help="results folder or table of the second run")
    c.add_argument(
        "--out", default=None, help="write compare.{md,csv,tex,html} here (default: print Markdown to stdout)"
    )
    c.add_argument("--format", default="csv,latex,md,html", help="with --out: comma-separated csv, latex, md, html")
    c.add_argument("--latex-wide", choices=WIDE_MODES, default="split", help="as for moebench report")
    c.set_defaults(func=compare_command)


def compare_command(args: argparse.Namespace) -> int:
    """Compare run ``args.a`` with run ``args.b``; Markdown to stdout, or the files into ``args.out``.

    Returns
    -------
    int
        0 on success (bad input raises :class:`~moebench.errors.InputError`: exit 2).
    """
    from moebench.report.build import parse_formats
    from moebench.report.compare import compare_runs, to_markdown, write_comparison

    formats = parse_formats(args.format)
    comparison = compare_runs(args.a, args.b)
    if args.out is None:
        sys.stdout.write(to_markdown(comparison))
        return 0
    files = write_comparison(comparison, Path(args.out), formats, args.latex_wide)
    print(f"moebench: wrote {len(files)} comparison files into {args.out}", file=sys.stderr)
    return 0
