"""BLAS threads in supervised children: CPU time against wall time, pools as found vs one thread.

Usage: python benchmarks/child_blas.py [--repeat 3] [--batch 64] [--rounds 40]

Each child (:func:`moebench.supervisor.run_in_child`, as a method run or a stress search) scores
batches of placements of a DeepSeek-scale instance with :func:`moebench.evaluate.latency_many`
(the exhaustive search's kernel: a gather, a maximum and a matrix-vector product). It runs once
with the BLAS pools as OpenBLAS chose them (``blas_threads=None``: one thread per core, the state
before this setting existed) and once limited to one thread (the default), interleaved, and
prints the child's own wall and CPU seconds (``getrusage`` in the child). CPU above wall means a
pool spinning on a second core that the runner's other jobs need.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from typing import Any

import numpy as np

from moebench.supervisor import run_in_child


def _work(channel: Any, batch: int, rounds: int) -> tuple[float, float]:
    from moebench.evaluate import latency_many
    from moebench.families import generate

    inst = generate("uniform", {"K": 6, "layers": 26, "experts": 64, "servers": 5, "tokens": 4000}, seed=0)
    rng = np.random.default_rng(0)
    xs = rng.random((batch, inst.N, inst.G)) < 0.15
    latency_many(inst, xs[:2])
    channel.started()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(rounds):
        latency_many(inst, xs)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - t0, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64, help="placements per latency_many call")
    ap.add_argument("--rounds", type=int, default=40, help="calls per child")
    args = ap.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {"as found (None)": [], "one thread (1)": []}
    for _ in range(args.repeat):
        for label, threads in (("as found (None)", None), ("one thread (1)", 1)):
            out = run_in_child(_work, (args.batch, args.rounds), blas_threads=threads)
            if not out.done:
                raise SystemExit(f"child failed: {out.failure or out.death()}")
            runs[label].append(out.result)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.repeat} children each")
    print(f"{'BLAS pools':<18}{'median wall s':>14}{'median CPU s':>13}{'CPU / wall':>11}")
    for label, rs in runs.items():
        wall = statistics.median(r[0] for r in rs)
        cpu = statistics.median(r[1] for r in rs)
        print(f"{label:<18}{wall:>14.2f}{cpu:>13.2f}{cpu / wall:>11.2f}")


if __name__ == "__main__":
    main()
