"""Wall time of every approximation algorithm and baseline as the instance grows; prints tables.

Usage::

    python benchmarks/algorithms_scaling.py            # sweeps + the three speed goals
    python benchmarks/algorithms_scaling.py --goals    # only the speed goals of issue 4
    python benchmarks/algorithms_scaling.py --sweep    # only the sweeps
    python benchmarks/algorithms_scaling.py --dp-limit 90   # seconds allowed to the slow dp run

The sweeps vary one dimension at a time around a base instance (zipf, 8 layers x 32 experts,
K = 2, 3 servers, 1000 tokens per layer): layers, experts, servers, K and tokens (the number of
activation sets grows with the tokens). Every run goes through ``harness.run_method`` (the
evaluator recomputes the objective); the table shows wall seconds, CPU seconds of this process
(the machine is shared, so wall time is noisy) and the gain. ``greedy-enum[q]`` reports
not-applicable when its seed count exceeds ``max_seeds``; K = 1 methods report not-applicable
at K >= 2.

Speed goals (issue 4):
1. ``sgd-levels[dp]`` on 26 layers x 64 experts, K = 6, 5 servers, 2000 tokens per layer (~2000
   activation sets per layer), families zipf, uniform and clustered: goal < 2 s.
2. ``greedy-ratio`` on 48 layers x 128 experts, 10 servers, K = 1: goal < 2 s.
3. ``sgd-levels[maxconv,eps=0.1]`` on a clustered 26 x 64, K = 6 instance with unequal expert
   sizes (inter_jitter 0.3), against ``sgd-levels[dp,res=...]`` at a resolution fine enough that
   dp takes over a minute (run in a child process killed at ``--dp-limit`` seconds): goal < 1 s.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time

from moebench.families import generate
from moebench.harness import run_method
from moebench.methods import get_method, method_names

BASE = {"K": 2, "layers": 8, "experts": 32, "servers": 3, "tokens": 1000}
SWEEPS = {
    "layers": [4, 16, 48],
    "experts": [16, 64, 128],
    "servers": [2, 5, 10],
    "K": [1, 4, 6],
    "tokens": [250, 4000, 16000],
}
EXTRA = ["sgd-levels[dp]+ls", "greedy-ratio+single+ls"]


def timed(inst, name: str, **kw) -> tuple[float, float, object]:
    """Run one method; return (wall s, CPU s, record)."""
    c0, t0 = time.process_time(), time.perf_counter()
    rec = run_method(inst, name, **kw)
    return time.perf_counter() - t0, time.process_time() - c0, rec


def heuristics() -> list[str]:
    """Every registered non-exact method example, plus a few modifier combinations."""
    return [n for n in method_names() if get_method(n).info.kind != "exact"] + EXTRA


def sweep() -> None:
    """One table per swept dimension."""
    names = heuristics()
    for dim, values in SWEEPS.items():
        rows = []
        for v in [BASE[dim], *values]:
            params = {**BASE, dim: v}
            inst = generate("zipf", params, seed=0)
            cells = []
            for name in names:
                wall, _, rec = timed(inst, name)
                cells.append(f"{wall:7.3f}" if rec.status in ("feasible", "optimal") else f"{rec.status[:7]:>7}")
            rows.append((f"{dim}={v} (M={inst.M})", cells))
        print(f"\n## wall seconds as {dim} grows (zipf, base {BASE})")
        width = max(len(r[0]) for r in rows)
        for i, name in enumerate(names):
            if i == 0:
                print(" " * 34 + " ".join(f"{r[0]:>{width}}" for r in rows))
            print(f"{name:34s}" + " ".join(f"{r[1][i]:>{width}}" for r in rows))
        sys.stdout.flush()


def _dp_child(params: dict, name: str, out: mp.Queue) -> None:
    inst = generate("clustered", params, seed=0)
    wall, cpu, rec = timed(inst, name)
    out.put((wall, cpu, rec.status, rec.gain))


def goals(dp_limit: float) -> None:
    """The three speed goals of issue 4."""
    print("\n## speed goals (wall s / CPU s of this process; the machine is shared)")
    deepseek = {"K": 6, "layers": 26, "experts": 64, "servers": 5, "tokens": 2000}
    for fam in ("zipf", "uniform", "clustered"):
        inst = generate(fam, deepseek, seed=0)
        for name in ("sgd-levels[dp]", "sgd-levels[maxconv,eps=0.1]", "whole-layer", "greedy-marginal"):
            wall, cpu, rec = timed(inst, name)
            print(
                f"1. {fam:9s} 26x64 K=6 N=5 M={inst.M:6d} {name:28s} wall {wall:6.3f} s  cpu {cpu:6.3f} s"
                f"  gain {rec.gain:9.3f}  ({rec.status})"
            )
    k1 = {"K": 1, "layers": 48, "experts": 128, "servers": 10, "tokens": 4000}
    # second variant: unequal sizes and per-server compute speeds (latency depends on the expert)
    hetero = {**k1, "inter_jitter": 0.3, "compute": (50, 80, 100, 150, 200, 100, 60, 120, 90, 300)}
    for label, params in (("equal", k1), ("hetero", hetero)):
        big = generate("zipf", params, seed=0)
        for name in ("greedy-ratio", "greedy-ratio+single", "greedy-marginal", "popularity"):
            wall, cpu, rec = timed(big, name)
            print(
                f"2. zipf 48x128 K=1 N=10 {label:6s} {name:22s} wall {wall:6.3f} s  cpu {cpu:6.3f} s"
                f"  gain {rec.gain:9.3f}"
            )
    params = {**deepseek, "inter_jitter": 0.3}
    inst = generate("clustered", params, seed=0)
    for name in ("sgd-levels[maxconv,eps=0.1]", "sgd-levels[maxconv,eps=0.3]", "sgd-levels[dp]"):
        wall, cpu, rec = timed(inst, name)
        print(
            f"3. clustered 26x64 K=6 jitter 0.3 {name:28s} wall {wall:6.3f} s  cpu {cpu:6.3f} s  gain {rec.gain:9.3f}"
            f"  unit {rec.info.get('unit_mb', float('nan')):.4g} MB"
        )
    res = 0.0004
    name = f"sgd-levels[dp,res={res}]"
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_dp_child, args=(params, name, q))
    t0 = time.perf_counter()
    proc.start()
    proc.join(dp_limit)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        print(
            f"3. clustered 26x64 K=6 jitter 0.3 {name:28s} killed after {time.perf_counter() - t0:.0f} s (> {dp_limit:.0f} s)"
        )
    else:
        wall, cpu, status, g = q.get()
        print(
            f"3. clustered 26x64 K=6 jitter 0.3 {name:28s} wall {wall:6.3f} s  cpu {cpu:6.3f} s  gain {g:9.3f} ({status})"
        )


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--goals", action="store_true", help="only the speed goals")
    ap.add_argument("--sweep", action="store_true", help="only the sweeps")
    ap.add_argument("--dp-limit", type=float, default=90.0, help="seconds before the slow dp run is killed")
    args = ap.parse_args()
    if not args.goals:
        sweep()
    if not args.sweep:
        goals(args.dp_limit)


if __name__ == "__main__":
    main()
