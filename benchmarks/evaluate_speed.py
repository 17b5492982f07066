"""Evaluator speed on a DeepSeek-scale instance: 26 layers x 64 experts, Top-6, 8,000 sets per layer.

Usage: python benchmarks/evaluate_speed.py [--repeat 30] [--sets 8000]

Prints the median and best wall time, and the median CPU time, of one full ``evaluate``
(latency, per-layer breakdown, gain and feasibility), of ``latency`` alone, and of the bound the
evaluator is measured against: one gather of the effective latencies into the set ids stored as
(K, M), a maximum over K and a dot with the probabilities. All three run interleaved on the same
placements, so machine load affects them alike; the last column is the ratio to the bound
(target: within 1.5x). BLAS is limited to one thread, as in the benchmark workers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from moebench.evaluate import effective_latency, evaluate, latency
from moebench.families import generate


def _bound(inst, x: np.ndarray) -> float:
    tau = effective_latency(inst, x)
    return float(inst.probs @ tau[inst.sets_by_position].max(axis=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--sets", type=int, default=8000, help="distinct activation sets per layer")
    args = ap.parse_args()
    t0 = time.perf_counter()
    # uniform Top-6 of 64 over many tokens: nearly every token's set is distinct
    inst = generate("uniform", {"K": 6, "layers": 26, "experts": 64, "servers": 5, "tokens": args.sets}, seed=0)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    xs = [rng.random((inst.N, inst.G)) < 0.15 for _ in range(args.repeat)]
    ops = {"evaluate (full)": evaluate, "latency only": latency, "bound: gather+max+dot": _bound}
    wall: dict[str, list[float]] = {k: [] for k in ops}
    cpu: dict[str, list[float]] = {k: [] for k in ops}
    with threadpool_limits(1):
        for f in ops.values():
            f(inst, xs[0])  # warm the derived caches (base latencies, index arrays)
        for x in xs:
            for name, f in ops.items():
                c, t = time.process_time(), time.perf_counter()
                f(inst, x)
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
    print(
        f"instance: {inst.L} layers x {int(inst.n_experts[0])} experts, K={inst.K}, {inst.N} servers, "
        f"{inst.M} activation sets ({inst.M / inst.L:.0f} per layer); generated in {build:.2f} s; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    ref = min(wall["bound: gather+max+dot"])
    print(f"{'operation':<26}{'median ms':>11}{'best ms':>9}{'CPU ms':>8}{'best / bound':>14}")
    for name in ops:
        ts = wall[name]
        print(
            f"{name:<26}{1e3 * statistics.median(ts):>11.2f}{1e3 * min(ts):>9.2f}"
            f"{1e3 * statistics.median(cpu[name]):>8.2f}{min(ts) / ref:>14.2f}"
        )


if __name__ == "__main__":
    main()
