"""Evaluator speed on a DeepSeek-scale instance: 26 layers x 64 experts, Top-6, 8,000 sets per layer.

Usage: python benchmarks/evaluate_speed.py [--repeat 30]

Prints the median and best wall time of one full ``evaluate`` (latency, per-layer breakdown,
gain and feasibility) and of ``latency`` alone, for random placements.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from moebench.evaluate import evaluate, latency
from moebench.families import generate


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
    evaluate(inst, xs[0])  # warm the derived caches (base latencies, index arrays)
    full, lat = [], []
    for x in xs:
        t = time.perf_counter()
        evaluate(inst, x)
        full.append(time.perf_counter() - t)
        t = time.perf_counter()
        latency(inst, x)
        lat.append(time.perf_counter() - t)
    print(
        f"instance: {inst.L} layers x {int(inst.n_experts[0])} experts, K={inst.K}, {inst.N} servers, "
        f"{inst.M} activation sets ({inst.M / inst.L:.0f} per layer); generated in {build:.2f} s"
    )
    print(f"{'operation':<28}{'median ms':>12}{'best ms':>10}")
    for name, ts in (("evaluate (full)", full), ("latency only", lat)):
        print(f"{name:<28}{1e3 * statistics.median(ts):>12.2f}{1e3 * min(ts):>10.2f}")


if __name__ == "__main__":
    main()
