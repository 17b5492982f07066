"""Will the sweeps report's DeepSeek points be proven? Runs its exact references on exactly them.

Usage::

    python benchmarks/certify_sweeps.py                          # every reference entry of the suite
    python benchmarks/certify_sweeps.py --only exact-sets        # one reference method
    python benchmarks/certify_sweeps.py --match '*capacity*'     # a subset of the points

Reads ``reports/sweeps/suite.toml`` (or ``--suite``), materializes its instances whose name matches
``*deepseek*`` (the trace points: 21 of them), and runs every ``[[references]]`` entry that applies
to each point with the entry's own time limit and the suite's grace, each in an isolated child as
``moebench run`` does (so a run killed at its limit keeps only what it streamed). Per point it
prints each method's status, wall and CPU time, gain and bound, and the combination the report
makes: the best gain of all references against the smallest bound, ``proven`` when some method
proved optimality or the two meet within 1e-9 relative. The last lines count the points proven
and the worst remaining gap (the issue-13 goal: >= 95% proven, every other gap <= 0.1%).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=str(ROOT / "reports" / "sweeps" / "suite.toml"))
    ap.add_argument("--match", default="*deepseek*", help="instance-name glob (default: the trace points)")
    ap.add_argument("--only", default="", help="comma-separated reference names to run (default: all entries)")
    ap.add_argument("--in-process", action="store_true", help="run in this process (no kill at limit + grace)")
    args = ap.parse_args()

    from moebench.bench.suite import load_suite
    from moebench.harness import run_method

    suite = load_suite(args.suite)
    only = {s for s in args.only.split(",") if s}
    insts = [i for i in suite.instances() if fnmatch.fnmatchcase(i.name, args.match)]
    refs = [r for r in suite.references if not only or r.name in only]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"suite {args.suite}: {len(insts)} points, references {[(r.name, r.time_limit) for r in refs]}")
    print(f"cores: {os.cpu_count()}; load average at start (1, 5, 15 min): {load}\n")
    print("| point | method | status | wall s | cpu s | gain | bound |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    t_all, c_all = time.perf_counter(), _cpu()
    for inst in insts:
        gains, bounds, proven = [], [], False
        for ref in refs:
            if not ref.applies_to(inst.name):
                continue
            t0, c0 = time.perf_counter(), _cpu()
            rec = run_method(
                inst,
                ref.name,
                time_limit=ref.time_limit,
                options=dict(ref.options),
                isolate=not args.in_process,
                grace=suite.grace,
                memory_limit_mb=suite.memory_limit_mb,
            )
            wall = time.perf_counter() - t0
            # the method's own CPU time (the child's, as the harness measures it); else this process's
            cpu = rec.method_cpu_time if rec.method_cpu_time is not None else _cpu() - c0
            g = "-" if rec.gain is None else f"{rec.gain:.6f}"
            b = "-" if rec.bound is None else f"{rec.bound:.6f}"
            print(f"| {inst.name} | {ref.name} | {rec.status} | {wall:.1f} | {cpu:.1f} | {g} | {b} |", flush=True)
            if rec.gain is not None:
                gains.append(rec.gain)
            if rec.bound is not None:
                bounds.append(rec.bound)
            proven = proven or rec.status == "optimal"
        best = max(gains, default=None)
        ub = min(bounds, default=None)
        if best is not None and ub is not None:
            gap = max(0.0, ub - best) / max(abs(ub), 1e-12)
            proven = proven or gap <= 1e-9
        else:
            gap = float("inf")
        summary.append((inst.name, proven, gap, best, ub))
    print("\n| point | proven | gap | best gain | best bound |")
    print("|---|---|---|---|---|")
    for name, pr, gap, best, ub in summary:
        print(f"| {name} | {'yes' if pr else 'no'} | {gap:.3%} | {best} | {ub} |")
    n_proven = sum(1 for s in summary if s[1])
    open_gaps = [s[2] for s in summary if not s[1]]
    print(
        f"\nproven {n_proven} of {len(summary)} ({n_proven / max(1, len(summary)):.0%}); worst open gap "
        f"{max(open_gaps, default=0.0):.3%}; wall {time.perf_counter() - t_all:.0f} s, cpu {_cpu() - c_all:.0f} s; "
        f"load average at end: {', '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
