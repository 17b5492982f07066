"""Compare two results folders (or two report folders) number by number, times aside.

    python benchmarks/compare_reports.py BEFORE AFTER

For every CSV file both report folders hold (``summary.csv``, ``ratios.csv``, section CSVs),
and for the two results tables when both folders have one, every cell is compared: numbers
must agree to 1e-12 relative, text exactly. Columns that measure time or the machine
(``*time*``, ``*_at``, ``elapsed``, ``*sgm*``, versions, host) are left out, and so are the
placements of exact methods and randomized ones (equal gains, possibly other optimal
placements). Prints every difference and the wall and CPU time it took; exit status 1 when
anything differs.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from pathlib import Path

import pandas as pd

#: Columns that legitimately differ between two runs of the same suite.
VOLATILE = re.compile(
    r"time|_at$|elapsed|sgm|^host$|machine|version|git_commit|argv|^suite$|evaluations|restarts|history|^info$"
)
#: Columns of results tables compared (besides the task id that keys the rows).
RESULT_COLUMNS = ("instance", "instance_hash", "method", "seed", "status", "latency", "gain", "feasible", "error")


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b or abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    if pd.isna(a) and pd.isna(b):  # type: ignore[arg-type]
        return True
    return a == b or str(a) == str(b)


def compare_frames(what: str, a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Differences between two tables with the same rows (in order), volatile columns aside."""
    out = []
    cols_a = [c for c in a.columns if not VOLATILE.search(c)]
    cols_b = [c for c in b.columns if not VOLATILE.search(c)]
    if cols_a != cols_b:
        out.append(f"{what}: columns differ: only before {sorted(set(cols_a) - set(cols_b))}, "
                   f"only after {sorted(set(cols_b) - set(cols_a))}")  # fmt: skip
    if len(a) != len(b):
        return [*out, f"{what}: {len(a)} rows before, {len(b)} after"]
    for col in [c for c in cols_a if c in cols_b]:
        for i, (x, y) in enumerate(zip(a[col].tolist(), b[col].tolist())):
            if not _same(x, y):
                out.append(f"{what}: row {i} column {col}: {x!r} != {y!r}")
    return out


def compare_results(a: Path, b: Path) -> list[str]:
    """Differences between two results tables, row by task id."""
    ta, tb = pd.read_parquet(a), pd.read_parquet(b)
    if "kind" in tb.columns:
        tb = tb[tb["kind"].fillna("method") == "method"]
    ta, tb = ta.set_index("task_id").sort_index(), tb.set_index("task_id").sort_index()
    out = []
    if list(ta.index) != list(tb.index):
        out.append(f"results: task ids differ ({len(ta)} before, {len(tb)} after)")
        common = ta.index.intersection(tb.index)
        ta, tb = ta.loc[common], tb.loc[common]
    cols = [c for c in RESULT_COLUMNS if c in ta.columns and c in tb.columns]
    out += compare_frames("results", ta[cols].reset_index(), tb[cols].reset_index())
    fixed = (ta["method_kind"] != "exact") & ta["deterministic"].astype(bool)
    for tid in ta.index[fixed]:
        if ta.at[tid, "placement"] != tb.at[tid, "placement"]:
            out.append(f"results: {tid} ({ta.at[tid, 'method']}): placements differ")
    return out


def compare(before: Path, after: Path) -> list[str]:
    """Every difference between two results folders (their report/ subfolders) or report folders."""
    out = []
    if (before / "results.parquet").exists() and (after / "results.parquet").exists():
        out += compare_results(before / "results.parquet", after / "results.parquet")
    rep_a = before / "report" if (before / "report").is_dir() else before
    rep_b = after / "report" if (after / "report").is_dir() else after
    names = sorted({p.name for p in rep_a.glob("*.csv")} | {p.name for p in rep_b.glob("*.csv")})
    for name in names:
        fa, fb = rep_a / name, rep_b / name
        if not (fa.exists() and fb.exists()):
            out.append(f"{name}: only in {'before' if fa.exists() else 'after'}")
            continue
        out += compare_frames(name, pd.read_csv(fa), pd.read_csv(fb))
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: print the differences and the time taken."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    args = ap.parse_args(argv)
    t0, c0 = time.perf_counter(), time.process_time()
    diffs = compare(args.before, args.after)
    for d in diffs:
        print(d)
    print(
        f"{len(diffs)} differences ({time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU)",
        file=sys.stderr,
    )
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
