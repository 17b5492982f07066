"""Time and memory of the console script on hostile input files (issue 15's acceptance table).

Usage: python benchmarks/input_limits.py [--command show|solve|evaluate]

Builds each case of ``tests/hostile_inputs.py`` (gzip bomb, huge counts, /dev/zero, FIFO, deep
nesting, huge integers, booleans, duplicate keys, ...), runs the installed ``moebench`` on it in a
child under a 3 GB address-space cap, and prints per case: exit code, stderr lines, wall and CPU
time of the child and its maximum resident memory (``wait4``), plus the baseline of a valid file.
Wall time includes Python start-up and imports (~0.25 s CPU); quote CPU beside wall on a loaded
machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hostile_inputs import CASES, GOOD, build, fresh_folder, run_measured


def _args(command: str, path: Path) -> list[str]:
    if command == "show":
        return ["instances", "show", str(path)]
    if command == "solve":
        return ["solve", str(path), "--method", "popularity"]
    return ["evaluate", str(GOOD), str(path)]  # the hostile file as the placement


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--command", choices=("show", "solve", "evaluate"), default="show")
    args = ap.parse_args()
    folder = fresh_folder()
    try:
        print(
            f"moebench {args.command} on hostile files; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        print("| case | exit | stderr lines | wall s | CPU s | max RSS MB |\n|---|---|---|---|---|---|")
        rows = [("valid file (baseline)", GOOD)] if args.command != "evaluate" else []
        rows += [(case, build(case, folder)) for case in CASES]
        for case, path in rows:
            o = run_measured(_args(args.command, path))
            lines = len(o.stderr.splitlines())
            tb = " TRACEBACK" if "Traceback" in o.stderr else ""
            print(f"| {case} | {o.returncode} | {lines}{tb} | {o.wall:.2f} | {o.cpu:.2f} | {o.max_rss_mb:.0f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
