"""``bruteforce``: exact optimum by enumeration, the ground truth of every differential test.

Only the fastest copy of an expert is ever used, so some optimal placement caches every
expert on at most one server (dropping a slower duplicate frees space and changes no latency).
The search therefore enumerates *assignments*: each relevant expert goes to no server or to
one server where it is faster than its fallback and fits at all. Irrelevant experts (in no
activation set with positive probability, or slower on every server than in the cloud) are
never cached. Assignments are decoded and evaluated in vectorized chunks.
"""

from __future__ import annotations

import time

import numpy as np

from moebench.errors import NotApplicableError
from moebench.evaluate import gain
from moebench.instance import Instance
from moebench.methods import Method, MethodInfo, MethodSpec, Solution, SolveRequest, Status, no_args, register_method

#: Default largest number of assignments enumerated (option ``max_assignments``).
MAX_ASSIGNMENTS = 3_000_000
_CHUNK = 4096


def candidate_servers(inst: Instance) -> tuple[np.ndarray, list[np.ndarray]]:
    """Relevant experts and, for each, the servers worth caching it on."""
    useful = (inst.latency < inst.fallback[None, :]) & (inst.size[None, :] <= inst.capacity[:, None])
    relevant = np.flatnonzero(inst.active & useful.any(axis=0))
    return relevant, [np.flatnonzero(useful[:, g]) for g in relevant]


def search_space(inst: Instance) -> int:
    """Number of assignments ``bruteforce`` would enumerate."""
    _, choices = candidate_servers(inst)
    return int(np.prod([len(c) + 1 for c in choices], dtype=object))


def solve_bruteforce(inst: Instance, max_assignments: int = MAX_ASSIGNMENTS) -> tuple[np.ndarray, float]:
    """Optimal placement and its latency by enumeration.

    Raises
    ------
    NotApplicableError
        When the search space exceeds ``max_assignments``.
    """
    relevant, choices = candidate_servers(inst)
    total = search_space(inst)
    if total > max_assignments:
        # the count can have thousands of digits: print its order of magnitude
        shown = f"{total:,}" if total < 10**15 else f"about 10^{int((total.bit_length() - 1) * 0.30103)}"
        raise NotApplicableError(
            f"bruteforce: {shown} assignments exceed the limit of {max_assignments:,} "
            f"({len(relevant)} relevant experts, {inst.N} servers); use an exact MILP back end"
        )
    radix = np.array([len(c) + 1 for c in choices], dtype=np.int64)
    # table[j, c] = server for choice c of relevant expert j (-1 = not cached)
    width = int(radix.max()) if len(radix) else 1
    table = np.full((len(relevant), width), -1, dtype=np.int64)
    for j, c in enumerate(choices):
        table[j, 1 : len(c) + 1] = c
    best_lat, best_code = np.inf, 0
    n_idx = np.arange(inst.N)

    def servers(codes: np.ndarray) -> np.ndarray:
        # (B, R): the server of every relevant expert (-1: not cached) in each assignment
        digits = np.empty((len(codes), len(relevant)), dtype=np.int64)
        rest = codes.copy()
        for j, r in enumerate(radix):
            digits[:, j] = rest % r
            rest //= r
        return table[np.arange(len(relevant))[None, :], digits]

    for start in range(0, total, _CHUNK):
        codes = np.arange(start, min(total, start + _CHUNK), dtype=np.int64)
        server = servers(codes)
        load = ((server[:, :, None] == n_idx[None, None, :]) * inst.size[relevant][None, :, None]).sum(axis=1)
        ok = np.all(load <= inst.capacity[None, :] * (1 + 1e-9) + 1e-12, axis=1)
        if not ok.any():
            continue
        server, codes = server[ok], codes[ok]
        tau = np.broadcast_to(inst.fallback, (len(codes), inst.G)).copy()
        cached = server >= 0
        fast = inst.latency[np.where(cached, server, 0), relevant[None, :]]
        tau[:, relevant] = np.where(
            cached, np.minimum(fast, inst.fallback[relevant][None, :]), inst.fallback[relevant][None, :]
        )
        lat = tau[:, inst.sets].max(axis=2) @ inst.probs
        i = int(np.argmin(lat))
        if lat[i] < best_lat - 1e-12:
            best_lat, best_code = float(lat[i]), int(codes[i])
    x = np.zeros((inst.N, inst.G), dtype=bool)
    best = servers(np.array([best_code], dtype=np.int64))[0]
    x[best[best >= 0], relevant[best >= 0]] = True
    if not np.isfinite(best_lat):  # nothing relevant: the empty placement is optimal
        best_lat = inst.empty_latency
    return x, best_lat


@register_method("bruteforce", summary="exact optimum by enumerating assignments (tiny instances only)")
def _build(spec: MethodSpec) -> Method:
    no_args(spec)

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        limit = int(req.options.get("max_assignments", MAX_ASSIGNMENTS))
        t0 = time.perf_counter()
        x, lat = solve_bruteforce(inst, limit)
        return Solution(
            x,
            Status.OPTIMAL,
            bound=gain(inst, x),
            solver_latency=lat,
            solve_time=time.perf_counter() - t0,
            solver="bruteforce",
            options={"max_assignments": limit},
            info={"assignments": search_space(inst)},
        )

    info = MethodInfo(
        "bruteforce",
        "exact",
        "enumerates every assignment of experts to servers; the test oracle",
        deterministic=True,
    )
    return Method(info, solve, options=("max_assignments",))
