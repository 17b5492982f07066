"""The greedy family for K = 1 (SPEC section 4) and the ``greedy-marginal`` baseline.

Ground set V = {(n, g)}: expert g cached on server n, restricted to pairs where g is faster on n
than in the cloud, is activated at all, and fits n on its own. Each server is its own knapsack.

At K = 1 every activation set is a single expert, so with p_g = marginal activation rate

    R(X) = sum_g p_g * (T0_g - tau_g(X)),   tau_g(X) = min(T0_g, min_{n: x[n,g]} T[n,g]),

a weighted facility-location function: monotone and submodular. The marginal gain of (n, g)
is p_g * max(0, tau_g - T[n,g]); it only ever decreases, which makes lazy evaluation exact.

Methods
-------
``greedy-ratio``
    Best marginal gain per MB among the elements that still fit; lazy evaluation with a heap
    (initial gains of all candidates computed at once with numpy). No guarantee alone.
``greedy-ratio+single``
    Best of ``greedy-ratio`` and the best single element: >= 0.405 for one knapsack
    (Tang, Tang, Lim, Yuan, Chen, "Revisiting modified greedy algorithm for monotone submodular
    maximization with a knapsack constraint", SIGMETRICS 2021). Built as ``greedy-ratio`` plus
    the ``+single`` modifier (best of any method and the best single element under the true
    objective), because the name parser reads ``+single`` as a modifier; the modifier declares
    the 0.405 guarantee when it wraps ``greedy-ratio``.
``greedy-enum[q]``
    Best of: the greedy from the empty set, every feasible set of fewer than q elements, and
    the greedy completion of every feasible seed of exactly q elements (distinct experts; a
    duplicate copy of an expert is never needed by an optimum). q = 3 is Sviridenko (2004),
    (1 - 1/e); q = 2 is (1 - 1/e) by Kulik, Schwartz, Shachnai (2021); q = 1 contains the
    greedy and every singleton's completion, so it dominates ``greedy-ratio+single`` (0.405).
    Completions of all seeds run as one batch, vectorized over seeds. More than ``max_seeds``
    (option, default 200 000) candidate seeds, or more than ``max_work`` (default 2e9) seeds x
    elements x greedy steps, is reported as not applicable rather than run for hours; with a
    time limit the enumeration stops in time and says so (``info["complete"]``).
``greedy-marginal`` (baseline, any K)
    The same lazy greedy on R_marg(X) = sum_g p_g (T0_g - tau_g(X)): it treats every expert as
    if it were activated alone, blind to co-activation. Its placement is evaluated by the true
    objective like every other method's.

:func:`true_gain_greedy` is the "plain greedy" used by tests at K >= 2: single-element marginal
gains of the *true* objective, best gain per MB first, stopping when no element gains. It is not
a registered method (at K >= 2 it has no justification: it cannot see that a co-activated set
only gains when complete).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import replace

import numpy as np

from moebench.errors import InputError, NotApplicableError
from moebench.evaluate import effective_latency, empty_placement, gain
from moebench.instance import Instance
from moebench.methods import (
    Guarantee,
    Method,
    MethodInfo,
    MethodSpec,
    Solution,
    SolveRequest,
    Status,
    int_arg,
    no_args,
    number_options,
    register_method,
    register_modifier,
)

#: Default largest number of seeds ``greedy-enum[q]`` completes (option ``max_seeds``).
MAX_SEEDS = 200_000
#: Default cap on seeds x elements x greedy steps (option ``max_work``; about a minute of numpy).
MAX_WORK = 2e9
_SEED_CHUNK = 512
_FIT_RTOL = 1e-12
ONE_MINUS_INV_E = 1.0 - 1.0 / math.e
#: Conditions of the one-knapsack guarantees of the greedy family.
_ONE_KNAPSACK = ("K = 1", "single server")


def fits(size: float | np.ndarray, free: float | np.ndarray) -> bool | np.ndarray:
    """True where ``size`` fits ``free`` MB up to float noise (shared by the algorithms)."""
    return size <= free * (1 + _FIT_RTOL) + 1e-12


def ground_set(inst: Instance, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elements (n, g) worth considering: faster than the cloud, positive weight, fit alone."""
    ok = (
        (inst.latency < inst.fallback[None, :])
        & (weight > 0)[None, :]
        & fits(inst.size[None, :], inst.capacity[:, None])
    )
    return np.nonzero(ok)


def surrogate_gain(inst: Instance, weight: np.ndarray, x: np.ndarray) -> float:
    """sum_g weight_g (T0_g - tau_g(X)); the true gain R(X) when K = 1 and weight = marginals."""
    return float(weight @ (inst.fallback - effective_latency(inst, x)))


def lazy_ratio_greedy(inst: Instance, weight: np.ndarray) -> np.ndarray:
    """Lazy ratio greedy on sum_g weight_g (T0_g - tau_g(X)), starting from the empty placement.

    Parameters
    ----------
    inst
        The instance.
    weight
        Per-expert weight (the marginals p_g).

    Returns
    -------
    ndarray of bool, shape (N, G)
    """
    x = empty_placement(inst)
    free = inst.capacity.tolist()
    tau = inst.fallback
    n_idx, g_idx = ground_set(inst, weight)
    lat = inst.latency[n_idx, g_idx]
    gains = weight[g_idx] * np.maximum(tau[g_idx] - lat, 0.0)
    size = inst.size[g_idx]
    ratio = np.where(size > 0, gains / np.where(size > 0, size, 1.0), np.inf)
    pos = gains > 0
    heap = list(zip((-ratio[pos]).tolist(), n_idx[pos].tolist(), g_idx[pos].tolist(), lat[pos].tolist()))
    heapq.heapify(heap)
    tau_l, w_l, s_l = tau.tolist(), weight.tolist(), inst.size.tolist()
    while heap:
        _, n, g, t = heapq.heappop(heap)
        s = s_l[g]
        if not fits(s, free[n]):
            continue  # capacities only shrink: it never fits again
        now = w_l[g] * (tau_l[g] - t)
        if now <= 0:
            continue
        r = now / s if s > 0 else math.inf
        if heap and r < -heap[0][0]:
            heapq.heappush(heap, (-r, n, g, t))  # stale: re-insert with its current ratio
            continue
        x[n, g] = True
        free[n] -= s
        tau_l[g] = t
    return x


def batch_ratio_greedy(inst: Instance, weight: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, float]:
    """Greedy completion of many seeds at once; returns the best completed placement and its value.

    Parameters
    ----------
    seeds
        Feasible starting placements, shape (B, N, G).
    """
    n_el, g_el = ground_set(inst, weight)
    size_el = inst.size[g_el]
    lat_el = inst.latency[n_el, g_el]
    w_el = weight[g_el]
    x = np.array(seeds, dtype=bool)
    b = x.shape[0]
    rows = np.arange(b)
    free = inst.capacity[None, :] - x.astype(float) @ inst.size
    tau = np.minimum(inst.fallback[None, :], np.where(x, inst.latency[None], np.inf).min(axis=1))
    safe = np.where(size_el > 0, size_el, 1.0)
    while len(n_el):
        gains = w_el[None, :] * np.maximum(tau[:, g_el] - lat_el[None, :], 0.0)
        ok = (gains > 0) & fits(size_el[None, :], free[:, n_el])
        ratio = np.where(ok, np.where(size_el > 0, gains / safe, np.inf), -np.inf)
        j = np.argmax(ratio, axis=1)
        live = ok[rows, j]
        if not live.any():
            break
        r, jj = rows[live], j[live]
        x[r, n_el[jj], g_el[jj]] = True
        free[r, n_el[jj]] -= size_el[jj]
        tau[r, g_el[jj]] = np.minimum(tau[r, g_el[jj]], lat_el[jj])
    values = (inst.fallback[None, :] - tau) @ weight
    best = int(np.argmax(values))
    return x[best], float(values[best])


def _feasible_combos(inst: Instance, n_el: np.ndarray, g_el: np.ndarray, q: int) -> np.ndarray:
    """All sets of q elements with distinct experts that fit their servers, shape (C, q)."""
    combos = np.array(list(itertools.combinations(range(len(n_el)), q)), dtype=np.int64).reshape(-1, q)
    if len(combos) == 0 or q <= 1:
        return combos
    g = g_el[combos]
    gs = np.sort(g, axis=1)
    distinct = np.all(np.diff(gs, axis=1) > 0, axis=1)
    combos = combos[distinct]
    load = np.zeros((len(combos), inst.N))
    for k in range(q):
        np.add.at(load, (np.arange(len(combos)), n_el[combos[:, k]]), inst.size[g_el[combos[:, k]]])
    ok = np.all(fits(load, inst.capacity[None, :]), axis=1)
    return combos[ok]


def _to_placement(inst: Instance, n_el: np.ndarray, g_el: np.ndarray, combos: np.ndarray) -> np.ndarray:
    x = np.zeros((len(combos), inst.N, inst.G), dtype=bool)
    for k in range(combos.shape[1]):
        x[np.arange(len(combos)), n_el[combos[:, k]], g_el[combos[:, k]]] = True
    return x


def greedy_enum(
    inst: Instance,
    weight: np.ndarray,
    q: int,
    max_seeds: int = MAX_SEEDS,
    max_work: float = MAX_WORK,
    deadline: float | None = None,
) -> tuple[np.ndarray, dict]:
    """Partial enumeration: best of the plain greedy, all sets of < q elements, all q-seed completions.

    Raises
    ------
    NotApplicableError
        When the seeds exceed ``max_seeds`` or seeds x elements x greedy steps exceeds
        ``max_work``. When ``deadline`` (``time.monotonic()``) passes, the enumeration stops
        early and ``info["complete"]`` is false (the guarantee then does not hold).
    """
    n_el, g_el = ground_set(inst, weight)
    n_total = math.comb(len(n_el), q)
    if n_total > max_seeds:
        raise NotApplicableError(
            f"greedy-enum[{q}]: C({len(n_el)}, {q}) = {n_total:,} candidate seeds exceed max_seeds={max_seeds:,}"
        )
    if len(n_el):
        smallest = max(float(inst.size[g_el].min()), 1e-12)
        steps = min(len(n_el), int(np.floor(inst.capacity / smallest + 1e-9).sum()))
        work = float(n_total) * len(n_el) * max(steps, 1)
        if work > max_work:
            raise NotApplicableError(
                f"greedy-enum[{q}]: {n_total:,} seeds x {len(n_el):,} elements x up to {steps:,} greedy steps "
                f"= {work:.3g} exceeds max_work={max_work:.3g}"
            )
    best_x = lazy_ratio_greedy(inst, weight)
    best_v = surrogate_gain(inst, weight, best_x)
    # every feasible set of fewer than q elements (distinct experts: their values add up)
    single = weight[g_el] * (inst.fallback[g_el] - inst.latency[n_el, g_el])
    for r in range(1, q):
        combos = _feasible_combos(inst, n_el, g_el, r)
        if len(combos):
            vals = single[combos].sum(axis=1)
            j = int(np.argmax(vals))
            if vals[j] > best_v:
                best_x, best_v = _to_placement(inst, n_el, g_el, combos[j : j + 1])[0], float(vals[j])
    seeds = _feasible_combos(inst, n_el, g_el, q)
    done = 0
    for start in range(0, len(seeds), _SEED_CHUNK):
        if deadline is not None and time.monotonic() > deadline:
            break
        xs = _to_placement(inst, n_el, g_el, seeds[start : start + _SEED_CHUNK])
        x, v = batch_ratio_greedy(inst, weight, xs)
        done += len(xs)
        if v > best_v:
            best_x, best_v = x, v
    return best_x, {"seeds": len(seeds), "seeds_completed": done, "complete": done == len(seeds), "elements": len(n_el)}


def single_add_gains(inst: Instance, tau: np.ndarray, layer: int | None = None) -> np.ndarray:
    """Exact gain of the true objective for adding each single (n, g) to the state ``tau``.

    Returns shape (N, G), or (N, E_l) for the experts of ``layer`` only. Uses the top-two
    trick: lowering one member of a set changes the set's latency to max(max of the other
    members, the member's new latency).
    """
    if layer is None:
        s0, s1, lo, width = 0, inst.M, 0, inst.G
    else:
        s0, s1 = int(inst.set_offset[layer]), int(inst.set_offset[layer + 1])
        lo, width = int(inst.expert_offset[layer]), int(inst.n_experts[layer])
    sets = inst.sets[s0:s1]
    probs = inst.probs[s0:s1]
    cur = tau[sets]
    k = inst.K
    order = np.argsort(-cur, axis=1, kind="stable")
    top1 = np.take_along_axis(cur, order[:, :1], axis=1)
    top2 = np.take_along_axis(cur, order[:, 1:2], axis=1) if k > 1 else np.full_like(top1, -np.inf)
    others = np.where(np.arange(k)[None, :] == order[:, :1], top2, top1)
    lat = inst.latency[:, lo : lo + width]
    new = np.minimum(tau[lo : lo + width][None, :], lat)[:, sets - lo]  # (N, M_l, K)
    g = probs[None, :, None] * (top1[None] - np.maximum(others[None], new))
    idx = (np.arange(inst.N)[:, None, None] * width + (sets - lo)[None]).ravel()
    return np.bincount(idx, weights=g.ravel(), minlength=inst.N * width).reshape(inst.N, width)


def true_gain_greedy(inst: Instance) -> np.ndarray:
    """The "plain greedy" at any K: best true single-element gain per MB until nothing gains.

    Not registered (see the module docstring); tests use it to show why greedy fails at K >= 2.
    """
    x = empty_placement(inst)
    free = inst.capacity.astype(float).copy()
    tau = inst.fallback.copy()
    safe = np.where(inst.size > 0, inst.size, 1.0)
    while True:
        gains = single_add_gains(inst, tau)
        ok = (gains > 1e-15) & ~x & fits(inst.size[None, :], free[:, None])
        if not ok.any():
            return x
        ratio = np.where(ok, np.where(inst.size > 0, gains / safe, np.inf), -np.inf)
        n, g = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        x[n, g] = True
        free[n] -= inst.size[g]
        tau[g] = min(tau[g], inst.latency[n, g])


# ---- registration -------------------------------------------------------------------------
def _solve_ratio_greedy(inst: Instance, req: SolveRequest) -> Solution:
    """Lazy ratio greedy on the marginals: the true gain at K = 1 (``greedy-ratio``), blind to
    co-activation at K >= 2 (the ``greedy-marginal`` baseline)."""
    return Solution(lazy_ratio_greedy(inst, inst.marginals))


@register_method(
    "greedy-ratio",
    examples=("greedy-ratio", "greedy-ratio+single"),
    summary="K = 1: lazy greedy by marginal gain per MB, one knapsack per server (+single: best of it and the best single element)",
)
def _greedy_ratio(spec: MethodSpec) -> Method:
    no_args(spec)

    summary = "lazy ratio greedy on the facility-location gain (K = 1); no guarantee alone"
    info = MethodInfo("greedy-ratio", "heuristic", summary, assumptions=("K = 1",))
    return Method(info, _solve_ratio_greedy)


@register_modifier("single")
def _plus_single(method: Method, spec: MethodSpec) -> Method:
    """``<method>+single``: best of the method's placement and the best single element.

    ``greedy-ratio+single`` is ``greedy-ratio`` with this modifier; wrapping ``greedy-ratio`` it
    is the modified greedy of
    Tang et al. (0.405 for one knapsack). The best single element is measured with the true
    objective, so the modifier is valid for any K and never returns less than the method alone.
    """
    inner = method.solve

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        sol = inner(inst, req)
        if not Status(sol.status).has_placement:
            return sol
        xs, vs = best_true_single(inst)
        if vs > gain(inst, sol.placement):
            return Solution(xs, info={**sol.info, "picked": "single"}, options=sol.options)
        return replace(sol, info={**sol.info, "picked": "method"}, solver_latency=None)

    base = method.info
    if base.name == "greedy-ratio":
        guarantee = Guarantee(
            0.405,
            "Tang, Tang, Lim, Yuan, Chen: Revisiting modified greedy for monotone submodular maximization "
            "with a knapsack constraint (SIGMETRICS 2021)",
            _ONE_KNAPSACK,
        )
        kind = "approximation"
    else:
        guarantee, kind = base.guarantee, base.kind
    summary = f"best of {base.name} and the best single (server, expert) element"
    info = replace(base, name=f"{base.name}+single", kind=kind, summary=summary, guarantee=guarantee)
    return Method(info, solve, options=method.options, check_options=method.check_options)


def best_true_single(inst: Instance) -> tuple[np.ndarray, float]:
    """The single (n, g) with the largest true gain R({(n, g)}) that fits, as a placement."""
    x = empty_placement(inst)
    gains = single_add_gains(inst, inst.fallback.copy())
    ok = (gains > 0) & fits(inst.size[None, :], inst.capacity[:, None])
    if not ok.any():
        return x, 0.0
    n, g = np.unravel_index(int(np.argmax(np.where(ok, gains, -np.inf))), gains.shape)
    x[n, g] = True
    return x, float(gains[n, g])


_ENUM_GUARANTEE = {
    1: Guarantee(0.405, "contains greedy-ratio+single (Tang et al., SIGMETRICS 2021)", _ONE_KNAPSACK),
    2: Guarantee(
        ONE_MINUS_INV_E,
        "Kulik, Schwartz, Shachnai: A refined analysis of submodular greedy (Oper. Res. Lett. 2021)",
        _ONE_KNAPSACK,
    ),
    3: Guarantee(
        ONE_MINUS_INV_E,
        "Sviridenko: A note on maximizing a submodular set function subject to a knapsack constraint "
        "(Oper. Res. Lett. 2004)",
        _ONE_KNAPSACK,
    ),
}


@register_method(
    "greedy-enum",
    examples=("greedy-enum[1]", "greedy-enum[2]", "greedy-enum[3]"),
    summary="K = 1: partial enumeration of q-element seeds, each completed by the ratio greedy",
)
def _greedy_enum(spec: MethodSpec) -> Method:
    if len(spec.args) != 1 or spec.kwargs:
        raise InputError("greedy-enum takes one bracket argument q in {1, 2, 3}, e.g. greedy-enum[2]", where="method")
    q = int_arg(spec.args[0], spec, "q", lo=1, hi=3)

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        limit = int(req.options.get("max_seeds", MAX_SEEDS))
        work = float(req.options.get("max_work", MAX_WORK))
        remaining = req.remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        x, info = greedy_enum(inst, inst.marginals, q, limit, work, deadline)
        return Solution(x, info=info, options={"max_seeds": limit, "max_work": work})

    info = MethodInfo(
        spec.full_name,
        "approximation",
        f"best greedy completion over all feasible {q}-element seeds (and all smaller sets)",
        assumptions=("K = 1",),
        guarantee=_ENUM_GUARANTEE[q],
    )
    check = number_options(max_seeds=(int, 1), max_work=(float, 0))
    return Method(info, solve, options=("max_seeds", "max_work"), check_options=check)


@register_method("greedy-marginal", summary="baseline: the K = 1 greedy on marginals p[l,e], blind to co-activation")
def _greedy_marginal(spec: MethodSpec) -> Method:
    no_args(spec)

    summary = "ratio greedy on sum_g p_g (T0_g - tau_g) as if K = 1; evaluated by the true objective"
    info = MethodInfo("greedy-marginal", "baseline", summary)
    return Method(info, _solve_ratio_greedy)
