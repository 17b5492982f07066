"""Effect of each MILP strengthening (option ``strengthen``) on the LP bound, final bound, gap and time.

Usage::

    python benchmarks/milp_strengthening.py --limit 30
    python benchmarks/milp_strengthening.py --instances 1x20,1x50 --variants none,all --backends milp-highs,cpsat

Instances: the issue-7 setting built exactly as ``benchmarks/certify_scaling.py`` does (ESFT
``law``, Top-6 of 64, 5 servers at 2/3/4/6/8 ms, cloud 30 ms, 25% capacity in whole slots;
names ``LxT``), and generated ones (``clustered`` / ``zipf``, K = 4, 2 layers of 16 experts, 3
servers, 300 tokens, capacity 0.25; names ``clustered``, ``zipf``).

Variants: ``none``, each strengthening alone, ``all`` and ``default`` (skipped when equal to
``all``). For every (instance, variant) the script prints the LP relaxation of F-cover (root
bound, as a gain upper bound in ms, with the profile refinement given the same share of
``--limit`` as inside the solver), then runs each back end through the harness (isolated child
process, ``--limit`` seconds, so at most one solver process runs at a time) and prints its
status, gain, bound, gap (bound - gain) / bound and wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from certify_scaling import esft_instance

from moebench.exact.strengthen import (
    DEFAULT_STRENGTHEN,
    PROFILE_MAX_SECONDS,
    PROFILE_TIME_SHARE,
    STRENGTHENINGS,
    build_model,
)
from moebench.families import generate
from moebench.harness import run_method
from moebench.instance import Instance

DEFAULT_INSTANCES = "1x20,1x50,2x100,8x200,clustered,zipf"


def make_instance(name: str, seed: int) -> Instance:
    """``LxT`` (issue-7 setting) or a generated family name."""
    if "x" in name and name.split("x")[0].isdigit():
        nl, t = (int(v) for v in name.split("x"))
        return esft_instance(nl, t, seed)
    params = {"K": 4, "layers": 2, "experts": 16, "servers": 3, "tokens": 300, "capacity": 0.25}
    return generate(name, params, seed)


def variants(selected: str) -> list[tuple[str, str]]:
    """(label, option value) pairs."""
    allv = [("none", "none"), *((s, s) for s in STRENGTHENINGS), ("all", "all")]
    if tuple(DEFAULT_STRENGTHEN) != tuple(STRENGTHENINGS):
        allv.append(("default", "default"))
    if selected == "every":
        return allv
    want = selected.split(",")
    return [v for v in allv if v[0] in want]


def lp_root(inst: Instance, strengthen: str, limit: float) -> tuple[float | None, float, float]:
    """(gain bound of the LP relaxation of F-cover, build seconds, LP seconds)."""
    from moebench.exact.highs import lp_bound
    from moebench.exact.strengthen import parse_strengthen

    share = min(PROFILE_MAX_SECONDS, PROFILE_TIME_SHARE * limit)
    t0 = time.perf_counter()
    model = build_model(inst, "cover", parse_strengthen(strengthen), deadline=time.monotonic() + share)
    t1 = time.perf_counter()
    val = lp_bound(model, time_limit=limit)
    t2 = time.perf_counter()
    return (None if val is None else model.gain_bound(val)), t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=60.0, help="seconds per solver run (and LP)")
    ap.add_argument("--instances", default=DEFAULT_INSTANCES)
    ap.add_argument("--variants", default="every", help="'every' or a comma list of labels (none, nodup, ..., all)")
    ap.add_argument("--backends", default="milp-highs", help="comma list among milp-highs, cpsat, milp-pyomo")
    ap.add_argument("--no-lp", action="store_true", help="skip the LP root bound")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    backends = args.backends.split(",")
    print(f"default strengthen = {','.join(DEFAULT_STRENGTHEN) or 'none'}; limit {args.limit:.0f} s")
    print("| instance | variant | LP root bound | build+LP s | back end | status | gain | bound | gap | time s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.instances.split(","):
        inst = make_instance(name, args.seed)
        for label, value in variants(args.variants):
            if args.no_lp:
                root, tl = "", ""
            else:
                lp, tb, tlp = lp_root(inst, value, args.limit)
                root = "n/a" if lp is None else f"{lp:.4f}"
                tl = f"{tb:.1f}+{tlp:.1f}"
            for be in backends:
                t0 = time.perf_counter()
                rec = run_method(inst, be, time_limit=args.limit, options={"strengthen": value}, isolate=True)
                wall = time.perf_counter() - t0
                gap = "" if rec.gap is None else f"{100 * rec.gap:.2f}%"
                bound = "" if rec.bound is None else f"{rec.bound:.4f}"
                gain = "" if rec.gain is None else f"{rec.gain:.4f}"
                status = rec.status if not rec.error else f"{rec.status} ({rec.error})"
                print(
                    f"| {name} | {label} | {root} | {tl} | {be} | {status} | {gain} | {bound} | {gap} | {wall:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
