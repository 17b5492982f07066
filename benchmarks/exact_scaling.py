"""Scaling of the exact back ends (issue 3): prints tables.

Parts (``--part``, default all):

``build``
    Model build time, Pyomo vs highspy (numpy arrays + one ``passModel``), F-cover, as the
    number of binaries grows to about 50k; "hand-off" adds the transfer to HiGHS and a solve
    call limited to 1 ms, so both columns are comparable end to end.
``lp``
    LP-relaxation bound on the gain of F-assign vs F-cover, and the best known gain.
``solve``
    Solve time of milp-highs per formulation (and cpsat / milp-pyomo on cover).
``deepseek``
    DeepSeek-scale zipf instances (64 experts, K = 6, 5 servers) with growing layer counts: which
    back end proves optimality within the time limit.

Usage::

    python benchmarks/exact_scaling.py --part build --max-binaries 50000
    python benchmarks/exact_scaling.py --part deepseek --time-limit 120

The machine is shared: timings are noisy, run several times and compare medians.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tabulate import tabulate

from moebench.exact import highs as hs
from moebench.exact.strengthen import build_model
from moebench.families import generate
from moebench.harness import run_method


def build_part(max_binaries: int) -> None:
    import pyomo.environ  # noqa: F401  (fills the solver factory)
    from pyomo.contrib.solver.common.factory import SolverFactory

    from moebench.exact.pyomo_model import BUILDERS

    rows = []
    layers = [1, 4, 12, 25, 49]
    for nl in layers:
        inst = generate("zipf", {"K": 2, "experts": 128, "layers": nl, "servers": 8, "tokens": 300}, seed=0)
        if inst.N * inst.G > max_binaries * 1.05:
            break
        t0 = time.perf_counter()
        model = build_model(inst, "cover")
        t_np = time.perf_counter() - t0
        h = hs._new_highs(1, {"time_limit": 1e-3})
        hs.pass_model(h, model)
        t_np_pass = time.perf_counter() - t0
        h.run()
        t_np_all = time.perf_counter() - t0
        t0 = time.perf_counter()
        m = BUILDERS["cover"](inst)
        t_py = time.perf_counter() - t0
        SolverFactory("highs").solve(
            m, time_limit=1e-3, threads=1, load_solutions=False, raise_exception_on_nonoptimal_result=False
        )
        t_py_all = time.perf_counter() - t0
        rows.append(
            [
                nl,
                model.stats["binaries"],
                model.n_cols,
                model.n_rows,
                f"{t_np:.3f}",
                f"{t_np_pass:.3f}",
                f"{t_py:.2f}",
                f"{t_py / t_np_pass:.0f}x",
                f"{t_np_all:.2f}",
                f"{t_py_all:.2f}",
                f"{t_py_all / t_np_all:.1f}x",
            ]
        )
        print(tabulate(rows[-1:], tablefmt="plain"), flush=True)
    print()
    print("F-cover build time, zipf K=2, 128 experts/layer, 8 servers, 300 tokens/layer")
    print(
        tabulate(
            rows,
            headers=[
                "layers",
                "binaries",
                "cols",
                "rows",
                "numpy build s",
                "+passModel s",
                "Pyomo build s",
                "Pyomo/highspy build",
                "highspy to 1ms-solve s",
                "Pyomo to 1ms-solve s",
                "ratio",
            ],
        )
    )


def _lp_instances() -> list[tuple[str, object]]:
    out = []
    for fam, k, nl, e, n, jitter in [
        ("zipf", 1, 4, 16, 3, 0.0),
        ("zipf", 2, 4, 16, 3, 0.0),
        ("clustered", 2, 4, 16, 3, 0.0),
        ("zipf", 2, 4, 16, 3, 0.3),
        ("zipf", 6, 2, 64, 5, 0.0),
        ("clustered", 4, 2, 32, 3, 0.3),
    ]:
        params = {"K": k, "layers": nl, "experts": e, "servers": n, "tokens": 500, "inter_jitter": jitter}
        out.append((f"{fam} K{k} L{nl} E{e} N{n} jit{jitter}", generate(fam, params, seed=1)))
    return out


def lp_part(time_limit: float) -> None:
    rows = []
    for label, inst in _lp_instances():
        ma, mc = build_model(inst, "assign"), build_model(inst, "cover")
        lpa = ma.gain_bound(hs.lp_bound(ma))
        lpc = mc.gain_bound(hs.lp_bound(mc))
        rec = run_method(inst, "milp-highs", time_limit=time_limit, isolate=True)
        best = rec.gain if rec.gain is not None else float("nan")
        rows.append(
            [
                label,
                f"{lpa:.4f}",
                f"{lpc:.4f}",
                f"{best:.4f}",
                rec.status,
                f"{(lpa - best) / best:.1%}" if best > 0 else "-",
                f"{(lpc - best) / best:.1%}" if best > 0 else "-",
                f"{(lpa - best) / max(lpc - best, 1e-12):.1f}" if best > 0 else "-",
            ]
        )
        print(tabulate(rows[-1:], tablefmt="plain"), flush=True)
    print()
    print("LP relaxation bounds on the gain (ms); best = milp-highs cover result")
    print(
        tabulate(
            rows,
            headers=[
                "instance",
                "LP F-assign",
                "LP F-cover",
                "best gain",
                "status",
                "assign gap",
                "cover gap",
                "ratio",
            ],
        )
    )


def solve_part(time_limit: float) -> None:
    rows = []
    for label, inst in _lp_instances():
        for backend, forms in [
            ("milp-highs", ("cover", "assign") + (("k1",) if inst.K == 1 else ())),
            ("cpsat", ("cover", "assign")),
            ("milp-pyomo", ("cover",)),
        ]:
            for f in forms:
                rec = run_method(inst, backend, time_limit=time_limit, isolate=True, options={"formulation": f})
                rows.append(
                    [
                        label,
                        backend,
                        f,
                        rec.status,
                        f"{rec.wall_time:.1f}",
                        None if rec.build_time is None else f"{rec.build_time:.2f}",
                        None if rec.gap is None else f"{rec.gap:.2e}",
                        None if rec.gain is None else f"{rec.gain:.4f}",
                    ]
                )
                print(tabulate(rows[-1:], tablefmt="plain"), flush=True)
    print()
    print(f"Solve time per formulation (time limit {time_limit} s, isolated child, 1 seed)")
    print(tabulate(rows, headers=["instance", "back end", "form.", "status", "wall s", "build s", "gap", "gain"]))


def deepseek_part(time_limit: float, layers: list[int], backends: list[str], tokens: int, capacity: float) -> None:
    rows = []
    for backend in backends:
        for nl in layers:
            params = {"K": 6, "experts": 64, "layers": nl, "servers": 5, "tokens": tokens, "capacity": capacity}
            inst = generate("zipf", params, seed=0)
            t0 = time.perf_counter()
            rec = run_method(inst, backend, time_limit=time_limit, isolate=True)
            rows.append(
                [
                    backend,
                    nl,
                    inst.M,
                    rec.status,
                    f"{time.perf_counter() - t0:.1f}",
                    None if rec.gap is None else f"{rec.gap:.2%}",
                    None if rec.gain is None else f"{rec.gain:.3f}",
                    None if rec.bound is None else f"{rec.bound:.3f}",
                    (rec.info.get("model") or {}).get("binaries", ""),
                ]
            )
            print(tabulate(rows[-1:], tablefmt="plain"), flush=True)
            if rec.status != "optimal":
                break  # larger ones will not be proven either
    print()
    print(
        f"DeepSeek-scale zipf (64 experts, K=6, 5 servers, {tokens} tokens/layer, capacity {capacity}), limit {time_limit} s"
    )
    print(
        tabulate(rows, headers=["back end", "layers", "sets", "status", "wall s", "gap", "gain", "bound", "binaries"])
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("build", "lp", "solve", "deepseek", "all"), default="all")
    ap.add_argument("--max-binaries", type=int, default=50_000)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--layers", default="1,2,4,8,13,26")
    ap.add_argument("--backends", default="milp-highs,cpsat,milp-pyomo")
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--capacity", type=float, default=0.25)
    a = ap.parse_args()
    np.set_printoptions(precision=4)
    if a.part in ("build", "all"):
        build_part(a.max_binaries)
    if a.part in ("lp", "all"):
        lp_part(a.time_limit)
    if a.part in ("solve", "all"):
        solve_part(a.time_limit)
    if a.part in ("deepseek", "all"):
        deepseek_part(a.time_limit, [int(v) for v in a.layers.split(",")], a.backends.split(","), a.tokens, a.capacity)


if __name__ == "__main__":
    main()
