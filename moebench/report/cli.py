"""``moebench report RESULTS``: tables, guarantee checks and figures from a results table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def report_command(args: argparse.Namespace) -> int:
    """Write the report for ``args.results`` into ``args.out`` (default ``<results>/report``).

    Returns
    -------
    int
        0 on success (bad input raises :class:`~moebench.errors.InputError`: exit 2).
    """
    from moebench.report.build import parse_formats, write_report

    formats = parse_formats(args.format)
    res = Path(args.results)
    out = Path(args.out) if args.out else (res if res.is_dir() else res.parent) / "report"
    files = write_report(res, out, formats=formats, references=getattr(args, "references", None))
    print(f"moebench: wrote {len(files)} report files into {out}", file=sys.stderr)
    return 0
