"""Successive greedy decomposition (SGD) for any K (SPEC section 4): ``sgd-levels`` and ``sgd-servers``.

Both split the problem into subproblems of the shape

    max sum_l g_l(A_l)  s.t.  sum_l size(A_l) <= B,

where A_l is the set of layer-l candidates *promoted* from their current latency to a lower one
(:mod:`moebench.algorithms.profiles`), solved by per-layer profiles combined with ``dp`` (exact
(max,+) in capacity units) or ``maxconv`` ((1 - eps) of the subproblem optimum, real sizes)
from :mod:`moebench.algorithms.knapsack`.

Levels and servers (``sgd-levels``)
-----------------------------------
Servers with identical latency rows T[n, :] form one *group*; groups are ranked fastest first
by their mean latency (ties by index), G_1 .. G_H. Level j is group G_j and its latencies
t_j(g) = T[n, g] for n in G_j. C_j is the set of experts available at a level at least as fast
as j, i.e. stored on groups G_1..G_j, so C_1 ⊆ C_2 ⊆ ... ⊆ C_H, and group G_j stores
C_j \\ C_{j-1}. Levels are visited from the coarsest (H: cloud vs. slowest group) to the finest:

* at level j the candidates are the experts of C_{j+1} (tentatively stored on G_{j+1}) and the
  cloud experts that no coarser level could serve faster than the cloud (so the fastest group
  still helps when the slowest server is slower than the cloud); a candidate must be strictly
  faster on G_j than its current latency and fit on some server of G_1..G_j;
* the subproblem promotes A ⊆ candidates to latency t_j with budget = capacity of G_1..G_j
  (``dp``: sum over those servers of floor(Q_n / unit) units; ``maxconv``: MB, counted in whole
  experts when sizes are equal); C_j = A. With unequal sizes the total capacity may hold A
  while the servers cannot (bin packing): if first-fit decreasing leaves x MB of A out, the
  budget shrinks by x and the level is solved again (at most 4 times);
* the experts of C_{j+1} left behind stay on G_{j+1}: they are packed first-fit least valuable
  first (value = activation rate x (T0 - current latency)), so what does not fit is the most
  valuable part; it is promoted to level j too, making room in the level-j budget if needed by
  undoing the subproblem's promotions straight from the cloud (least valuable first); what
  still does not fit returns to the cloud;
* C_1 is packed on G_1 the same way; finally leftover space is filled first-fit (fastest server
  first) with the remaining useful experts by activation rate, which can only lower latency.

When latencies depend on the server only, level j's subproblem value is exactly the layer-cake
term (t_{j+1} - t_j) * P(S ⊆ C_j) of SPEC section 2 (plus cloud-to-level promotions), so the
decomposition follows the paper's SGD. When they depend on the expert too (different compute
speeds, jittered sizes) the group order may not be every expert's order: a subproblem then uses
each candidate's true latency on G_j, and an expert left behind at a level stays on that level's
group. That is a restriction of the heuristic, not of the evaluation: every placement is scored
by the evaluator.

``sgd-servers`` (ablation)
--------------------------
One server at a time, fastest first (mean latency): the subproblem promotes experts from their
current latency to that server's latency with the server's capacity as budget. It sees no gain
in a co-activated set that fits on no single server, so it can return zero gain where
``sgd-levels`` does not.

Capacity units for ``dp``: one expert when all expert sizes are equal (exact), else ``res`` MB
(bracket argument, default: the smallest expert size / 64); sizes round up and budgets down, so
the result always fits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moebench.algorithms.baselines import popularity_order, server_order
from moebench.algorithms.greedy import fits
from moebench.algorithms.knapsack import dp_combine, maxconv_combine
from moebench.algorithms.profiles import EXACT_MAX, Profile, layer_profile, make_layer_task
from moebench.errors import InputError
from moebench.evaluate import empty_placement
from moebench.instance import Instance
from moebench.methods import Method, MethodInfo, MethodSpec, Solution, SolveRequest, float_arg, register_method

#: Re-solves of a level whose chosen set does not pack on its servers (budget shrunk each time).
_REPACK_TRIES = 4
#: Default dp resolution for unequal sizes, as a fraction of the smallest expert size.
DEFAULT_RES_FRACTION = 1.0 / 64


@dataclass(frozen=True)
class SubSolver:
    """How subproblems are solved: ``dp`` (unit = MB per capacity unit) or ``maxconv`` (eps)."""

    kind: str
    eps: float = 0.1
    res: float | None = None
    exact_max: int = EXACT_MAX

    def unit(self, inst: Instance) -> float:
        """MB per capacity unit for this instance."""
        if self.res is not None:
            return self.res
        if equal_sizes(inst):
            return float(inst.size[0]) if inst.size[0] > 0 else 1.0
        pos = inst.size[inst.size > 0]
        return float(pos.min()) * DEFAULT_RES_FRACTION if len(pos) else 1.0


def equal_sizes(inst: Instance) -> bool:
    """True when every expert has the same size (capacity counted in whole experts)."""
    return bool(np.all(inst.size == inst.size[0]))


def server_groups(inst: Instance) -> list[np.ndarray]:
    """Servers with identical latency rows grouped, groups fastest first (mean latency, then index)."""
    _, first, inverse = np.unique(inst.latency, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    groups = [np.flatnonzero(inverse == i) for i in range(len(first))]
    groups.sort(key=lambda g: (float(inst.latency[g[0]].mean()), int(g[0])))
    return groups


def solve_subproblem(
    inst: Instance,
    cur: np.ndarray,
    new: np.ndarray,
    cand: np.ndarray,
    budget_units: int,
    budget_mb: float,
    solver: SubSolver,
    unit: float,
) -> tuple[np.ndarray, dict]:
    """Promote candidates (bool mask over global experts) under one budget; returns the promoted mask.

    Parameters
    ----------
    cur, new
        Current and promoted latency of every global expert.
    cand
        Boolean mask of the candidates.
    budget_units, budget_mb
        The budget in ``dp`` units and in MB (``maxconv``).
    """
    profiles: list[Profile] = []
    limit = budget_units * unit if solver.kind == "dp" else budget_mb
    for layer in range(inst.L):
        lo, hi = inst.expert_offset[layer], inst.expert_offset[layer + 1]
        c = lo + np.flatnonzero(cand[lo:hi])
        s0, s1 = inst.set_offset[layer], inst.set_offset[layer + 1]
        task = make_layer_task(inst.sets[s0:s1], inst.probs[s0:s1], cur, new, c, inst.size)
        profiles.append(layer_profile(task, max_weight=limit, exact_max=solver.exact_max))
    if solver.kind == "dp":
        choice, value = dp_combine(profiles, budget_units, unit)
    else:
        choice, value = maxconv_combine(profiles, budget_mb, solver.eps)
    promoted = np.zeros(inst.G, bool)
    for p, k in zip(profiles, choice):
        promoted[p.members(k)] = True
    kinds = [p.kind for p in profiles]
    return promoted, {"value": value, "profiles": kinds, "breakpoints": int(sum(len(p) for p in profiles))}


def _units(inst: Instance, servers: Sequence[int] | np.ndarray, unit: float) -> int:
    return int(np.floor(inst.capacity[np.asarray(servers, int)] / unit + 1e-9).sum())


def _budget_mb(inst: Instance, servers: np.ndarray) -> float:
    if equal_sizes(inst) and inst.size[0] > 0:
        return float(_units(inst, servers, float(inst.size[0])) * inst.size[0])
    return float(inst.capacity[servers].sum())


def _pack(inst: Instance, x: np.ndarray, free: np.ndarray, experts: np.ndarray, servers: np.ndarray) -> np.ndarray:
    """First-fit ``experts`` (in the given order) onto ``servers``; returns those that did not fit."""
    left = []
    for g in experts:
        for n in servers:
            if fits(inst.size[g], free[n]):
                x[n, g] = True
                free[n] -= inst.size[g]
                break
        else:
            left.append(int(g))
    return np.array(left, np.int64)


def _unpacked_mb(inst: Instance, experts: np.ndarray, capacity: np.ndarray) -> float:
    """MB of ``experts`` that first-fit decreasing cannot place in bins of ``capacity``."""
    free = np.array(capacity, float)
    left = 0.0
    for g in experts[np.argsort(-inst.size[experts], kind="stable")]:
        ok = np.flatnonzero(fits(inst.size[g], free))
        if len(ok):
            free[ok[0]] -= inst.size[g]
        else:
            left += float(inst.size[g])
    return left


def _fill_leftover(inst: Instance, x: np.ndarray, free: np.ndarray, order: np.ndarray) -> None:
    """Cache still-uncached useful experts (most active first) on the fastest server with room."""
    useful = inst.latency < inst.fallback[None, :]
    for g in popularity_order(inst, np.flatnonzero(~x.any(axis=0))):
        for n in order:
            if useful[n, g] and fits(inst.size[g], free[n]):
                x[n, g] = True
                free[n] -= inst.size[g]
                break


def sgd_levels(inst: Instance, solver: SubSolver) -> tuple[np.ndarray, dict]:
    """The ``sgd-levels`` placement and per-level information (see the module docstring)."""
    groups = server_groups(inst)
    h = len(groups)
    unit = solver.unit(inst)
    x = empty_placement(inst)
    free = inst.capacity.astype(float).copy()
    cur = inst.fallback.copy()
    tier = np.full(inst.G, -1)  # group index holding the expert tentatively, -1 = cloud
    seen = np.zeros(inst.G, bool)  # cloud experts already offered to a coarser level
    value = inst.marginals * 1.0
    levels = []

    def units_of(g: np.ndarray) -> int:
        return int(np.ceil(inst.size[g] / unit - 1e-9).sum())

    def by_value(g: np.ndarray) -> np.ndarray:
        return g[np.argsort(-value[g] * (inst.fallback[g] - cur[g]), kind="stable")]

    for j in range(h - 1, -1, -1):
        servers = np.concatenate(groups[: j + 1])
        t = inst.latency[groups[j][0]]
        units = _units(inst, servers, unit)
        mb = _budget_mb(inst, servers)
        info: dict = {"returned_to_cloud": 0}
        biggest = inst.capacity[servers].max()
        cand = ((tier == j + 1) | ((tier == -1) & ~seen)) & inst.active & (t < cur) & fits(inst.size, biggest)
        from_cloud = cand & (tier == -1)
        seen |= from_cloud
        # C_j must be packable on the servers of G_1..G_j, not just fit their total capacity:
        # when first-fit decreasing leaves experts out, shrink the budget by that much and re-solve
        for attempt in range(_REPACK_TRIES + 1):
            promoted, sub = solve_subproblem(inst, cur, t, cand, units, mb, solver, unit)
            over = _unpacked_mb(inst, np.flatnonzero(promoted), free[servers])
            if over <= 0 or attempt == _REPACK_TRIES:
                break
            units -= max(1, int(np.ceil(over / unit - 1e-9)))
            mb -= over
            info["budget_shrunk"] = attempt + 1
        info.update(sub)
        if j + 1 < h:
            # the rest of C_{j+1} stays on G_{j+1}: pack it least valuable first, so that what
            # does not fit is the most valuable part, which moves up to level j
            left = by_value(np.flatnonzero((tier == j + 1) & ~promoted))[::-1]
            spill = by_value(_pack(inst, x, free, left, groups[j + 1]))
            units -= units_of(np.flatnonzero(promoted))
            mb -= float(inst.size[promoted].sum())
            need_u, need_mb = units_of(spill), float(inst.size[spill].sum())
            # make room by undoing promotions straight from the cloud, least valuable first
            for g in by_value(np.flatnonzero(promoted & from_cloud))[::-1]:
                if units >= need_u and fits(need_mb, mb):
                    break
                promoted[g] = False
                units += units_of(np.array([g]))
                mb += float(inst.size[g])
                info["undone_from_cloud"] = info.get("undone_from_cloud", 0) + 1
            for g in spill:
                su = units_of(np.array([g]))
                if t[g] < inst.fallback[g] and su <= units and fits(inst.size[g], mb):
                    promoted[g] = True
                    units -= su
                    mb -= float(inst.size[g])
                    info["moved_up"] = info.get("moved_up", 0) + 1
                else:
                    tier[g], cur[g] = -1, inst.fallback[g]
                    info["returned_to_cloud"] += 1
        tier[promoted] = j
        cur[promoted] = t[promoted]
        info.update({"level": j, "servers": [int(n) for n in groups[j]], "candidates": int(cand.sum())})
        info["promoted"] = int(promoted.sum())
        levels.append(info)
    lost = _pack(inst, x, free, by_value(np.flatnonzero(tier == 0)), groups[0])
    _fill_leftover(inst, x, free, np.concatenate(groups))
    return x, {"levels": levels, "unit_mb": unit, "not_packed": len(lost)}


def sgd_servers(inst: Instance, solver: SubSolver) -> tuple[np.ndarray, dict]:
    """The ``sgd-servers`` placement: one subproblem per server, fastest first."""
    unit = solver.unit(inst)
    x = empty_placement(inst)
    cur = inst.fallback.copy()
    order = server_order(inst)
    steps = []
    for n in order:
        t = inst.latency[n]
        cand = inst.active & (t < cur) & fits(inst.size, inst.capacity[n])
        units = _units(inst, [n], unit)
        mb = _budget_mb(inst, np.array([n]))
        promoted, info = solve_subproblem(inst, cur, t, cand, units, mb, solver, unit)
        free = np.array([inst.capacity[n]])
        g_sorted = np.flatnonzero(promoted)
        lost = _pack(inst, x[n : n + 1], free, g_sorted, np.array([0]))
        placed = np.setdiff1d(g_sorted, lost)
        cur[placed] = np.minimum(cur[placed], t[placed])
        info.update({"server": int(n), "candidates": int(cand.sum()), "promoted": len(placed)})
        steps.append(info)
    return x, {"servers": steps, "unit_mb": unit}


def _parse(spec: MethodSpec) -> SubSolver:
    if len(spec.args) != 1 or spec.args[0] not in ("dp", "maxconv"):
        raise InputError(
            f"{spec.base} needs the subproblem solver as its first argument: {spec.base}[dp] or "
            f"{spec.base}[maxconv,eps=0.1]",
            where="method",
        )
    kind = spec.args[0]
    allowed = {"dp": {"res", "exact"}, "maxconv": {"eps", "exact"}}[kind]
    bad = sorted(set(spec.kwargs) - allowed)
    if bad:
        raise InputError(
            f"{spec.base}[{kind}]: unknown argument(s) {', '.join(bad)} (accepted: {', '.join(sorted(allowed))})",
            where="method",
        )
    eps = float_arg(spec, "eps", 0.1, lo=0.0, hi=1.0)
    res = float_arg(spec, "res", 1.0, lo=0.0, hi=float("inf")) if "res" in spec.kwargs else None
    exact = int(float_arg(spec, "exact", EXACT_MAX, lo=-1.0, hi=21.0))
    return SubSolver(kind, eps=eps, res=res, exact_max=exact)


def _method(spec: MethodSpec, run, what: str) -> Method:
    solver = _parse(spec)

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        t0 = time.perf_counter()
        x, info = run(inst, solver)
        info["solver"] = solver.kind
        if solver.kind == "maxconv":
            info["eps"] = solver.eps
        return Solution(x, solve_time=time.perf_counter() - t0, info=info)

    summary = f"{what}; subproblems by " + (
        "exact (max,+) dp over capacity units"
        if solver.kind == "dp"
        else f"sparsified max-convolution, >= (1 - {solver.eps}) of each subproblem's optimum"
    )
    return Method(MethodInfo(spec.full_name, "heuristic", summary), solve)


@register_method(
    "sgd-levels",
    examples=("sgd-levels[dp]", "sgd-levels[maxconv,eps=0.1]"),
    summary="successive greedy decomposition over latency levels, coarsest first (any K)",
)
def _sgd_levels(spec: MethodSpec) -> Method:
    return _method(spec, sgd_levels, "nested sets C_1 ⊆ ... ⊆ C_H chosen level by level, coarsest first")


@register_method(
    "sgd-servers",
    examples=("sgd-servers[dp]",),
    summary="ablation: one subproblem per server, fastest first (blind to sets spanning servers)",
)
def _sgd_servers(spec: MethodSpec) -> Method:
    return _method(spec, sgd_servers, "one server at a time, fastest first")
