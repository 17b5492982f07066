"""Replay speed (issue 16 item 5): every token of an ESFT task through all 26 MoE layers.

Usage: python benchmarks/replay_speed.py [--repeat 30] [--tasks law,intent,summary,translation] [--no-cli]

For an instance of the 26-layer law traces (all train tokens) and each task, prints the wall and
CPU time of

- ``read 26 layer files``: :func:`moebench.data.esft.read_task` alone (parsing the gzip files);
- ``first replay``: a new :class:`moebench.replay.Replayer` replaying one placement on all the
  task's tokens with nothing cached in this process for that task (reading the 26 gzip layer
  files, building the token stream, the replay itself): the "under 2 s" target. The law task's
  paths were already read to generate the instance, so its row is ``first replay (paths
  cached)``;
- ``replay (stream cached)``: median and best of ``--repeat`` further placements on the same
  Replayer (what a suite pays per placement);
- ``kernel only``: the gather + max over K + sum over layers of :meth:`TokenStream.token_latency`;
- ``moebench replay`` (unless ``--no-cli``): the command in a child process, end to end
  (interpreter start, imports, reading the instance file, the data and the placement).

The evaluator on the same instance is shown for scale. BLAS is limited to one thread, as in the
benchmark workers; the load average is printed because the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from moebench.data import default_data_dir
from moebench.data.esft import ESFT_DIR, ESFT_TASKS, read_task
from moebench.evaluate import effective_latency, evaluate
from moebench.families import generate
from moebench.instance_file import save_instance
from moebench.placement import save_placement
from moebench.replay import Replayer


def timed(f: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall s, CPU s) of one call."""
    c, t = time.process_time(), time.perf_counter()
    out = f()
    return out, time.perf_counter() - t, time.process_time() - c


def cli_time(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the child) of ``moebench replay ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "moebench.cli", "replay", *args],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    if proc.returncode not in (0, 1):  # 1: an infeasible placement, replayed all the same
        raise SystemExit(f"moebench replay failed with exit code {proc.returncode}")
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--tasks", default=",".join(ESFT_TASKS))
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end command")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    with threadpool_limits(1):
        inst, build, _ = timed(lambda: generate("deepseek-v2-lite-esft", {"task": "law"}, 0))
        rng = np.random.default_rng(0)
        xs = [rng.random((inst.N, inst.G)) < 0.15 for _ in range(args.repeat + 1)]
        print(
            f"instance {inst.name}: {inst.L} layers, {inst.M} activation sets, "
            f"{inst.meta['provenance']['tokens_used']} tokens; generated in {build:.2f} s; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        evaluate(inst, xs[0])
        ev = [timed(lambda x=x: evaluate(inst, x))[1:] for x in xs[1:]]
        print(
            f"evaluate on the instance (for scale): median {1e3 * statistics.median(w for w, _ in ev):.2f} ms wall, "
            f"{1e3 * statistics.median(c for _, c in ev):.2f} ms CPU"
        )
        header = f"{'task':<12}{'tokens':>7}{'seqs':>6}  {'what':<28}{'wall ms':>10}{'best ms':>9}{'CPU ms':>9}"
        print(header)
        scores = default_data_dir() / ESFT_DIR
        for task in tasks:
            rp = Replayer(inst)
            rep, wall, cpu = timed(lambda rp=rp, task=task: rp.replay(xs[0], task, "all"))
            _, rwall, rcpu = timed(lambda task=task: read_task(scores, task))
            lead = f"{task:<12}{rep.per_token.count:>7}{rep.per_sequence.count:>6}  "
            first = "first replay" + (" (paths cached)" if task == inst.meta["provenance"]["task"] else "")
            print(f"{lead}{first:<28}{1e3 * wall:>10.1f}{'':>9}{1e3 * cpu:>9.1f}")
            print(f"{'':<27}{'read 26 layer files':<28}{1e3 * rwall:>10.1f}{'':>9}{1e3 * rcpu:>9.1f}")
            warm = [timed(lambda rp=rp, task=task, x=x: rp.replay(x, task, "all"))[1:] for x in xs[1:]]
            stream = rp.stream(task, "all")
            kern = [
                timed(lambda s=stream, x=x: s.token_latency(effective_latency(inst, x), inst.expert_offset))[1:]
                for x in xs[1:]
            ]
            for what, ts in (("replay (stream cached)", warm), ("kernel only", kern)):
                walls = [w for w, _ in ts]
                print(
                    f"{'':<27}{what:<28}{1e3 * statistics.median(walls):>10.2f}{1e3 * min(walls):>9.2f}"
                    f"{1e3 * statistics.median(c for _, c in ts):>9.2f}"
                )
        if args.no_cli:
            return
        with tempfile.TemporaryDirectory() as tmp:
            ipath, ppath = Path(tmp) / "law.json.gz", Path(tmp) / "p.json"
            save_instance(inst, ipath)
            save_placement(inst, xs[0], ppath)
            for task in tasks:
                wall, cpu = cli_time([str(ipath), str(ppath), "--task", task])
                print(f"{task:<27}{'moebench replay (CLI)':<28}{1e3 * wall:>10.0f}{'':>9}{1e3 * cpu:>9.0f}")


if __name__ == "__main__":
    main()
