"""Exact optimum over nested chains (several levels): bounds, nested heuristic, enumeration.

:func:`exact_chains` combines the per-level certificates of :mod:`moebench.exact.chain.profiles`
(their sum bounds R* with the nesting dropped: ``bound-levels``), a top-down nested heuristic,
and, when they do not meet, the enumeration of every top-level solution that could still beat
the incumbent (:func:`moebench.exact.chain.unions.level_solutions`) with the levels below solved
recursively. docs/certify.md section 3 argues validity.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from moebench.exact.chain.allocation import monotone_sizes
from moebench.exact.chain.coverage import TOL
from moebench.exact.chain.model import ChainModel, chain_model, levels_value, restricted
from moebench.exact.chain.profiles import LayerProfile, certify_level, combine_units
from moebench.exact.chain.unions import Timeout, level_solutions
from moebench.instance import Instance

#: Also use LP upper values in the (cached) profiles of restricted subproblems.
SUB_LP = False
#: Bound the levels below the enumerated one by their own nested optimum (docs/certify.md §3).
STRENGTHEN_REST = True
#: Also try the bottom-up completion inside every subproblem of the enumeration (not only at the
#: root); measured in docs/certify.md section 7.3.
BOTTOM_UP_EVERYWHERE = True
#: At the root, complete the top level of every nested completion exactly (the levels below
#: solved inside it) before the enumeration; measured in docs/certify.md section 7.9.
COMPLETE_TOPS = True
#: Relative slack of the enumeration's pruning (see :func:`prune_tol`).
PRUNE_RTOL = 1e-11


def prune_tol(model: ChainModel, levels: list[int] | np.ndarray, value: float) -> float:
    """Slack of the search's comparisons near ``value`` over ``levels``.

    A candidate whose bound is within this of the incumbent is not searched further; the bound
    :func:`exact_chains` returns is the largest bound of the candidates it dropped, not the
    incumbent's value, so the slack never enters a proof (docs/certify.md section 7.7). Relative
    part :data:`PRUNE_RTOL`; absolute part 20 ``TOL`` per unit of weight, which covers the
    profiles' upper values (an entry counts as exact within 10 ``TOL``) summed by the DPs.
    """
    return PRUNE_RTOL * abs(float(value)) + 20 * TOL * float(model.weights[:, list(levels)].sum())


def exact_chains(
    model: ChainModel,
    *,
    deadline: float | None = None,
    node_limit: int = 20_000,
    allowed: list[np.ndarray] | None = None,
    levels: list[int] | None = None,
    grow: bool = True,
    enumerate_levels: bool = True,
    lp: bool = True,
    on_incumbent: Callable[[dict[int, list[np.ndarray]], float], None] | None = None,
    target: float = -np.inf,
    cache: dict | None = None,
) -> tuple[dict[int, list[np.ndarray]], float, float, bool, int]:
    """Exact optimum over nested chains inside ``allowed`` (per layer) for the given levels.

    With a ``target`` only solutions of value > target matter (the caller has a solution that
    good): the search stops as soon as its bound drops to the target (within :func:`prune_tol`).
    The returned ``upper`` is always a bound on the optimum (the largest bound of every part of
    the search space it closed), and ``proven`` says that the search finished: ``upper`` is then
    within :func:`prune_tol` per level of max(value, target). ``cache`` maps (layer, allowed experts) to
    that layer's :class:`LayerProfile` and is shared by the recursive subproblems.

    Bound and heuristic first; when they do not meet, every top
    level solution that could still beat the incumbent, value_t(C_t) + sum_{j < t} UB_j > LB, is
    enumerated (:func:`closed_unions` across layers with suffix DP bounds), and the levels below
    are solved recursively inside it. Exact when every level has positive weight in all layers
    or in none (otherwise only the bound and the heuristic are used).

    Returns
    -------
    chains : dict level -> per-layer masks
    value : float
        Layer-cake value of ``chains`` over ``levels``.
    upper : float
        Proven upper bound.
    proven : bool
    nodes : int
    """
    nl = model.L
    if allowed is None:
        allowed = [np.ones(a.shape[1], dtype=bool) for a in model.members]
    if levels is None:
        levels = [int(j) for j in model.levels]
    members, probs = [], []
    for layer in range(nl):
        keep = restricted(model.members[layer], allowed[layer])
        members.append(model.members[layer][keep])
        probs.append(model.probs[layer][keep])
    if not levels:
        return {}, 0.0, 0.0, True, 0
    top_budget = int(model.prefix[levels[-1]])
    units = model.units
    if cache is None:
        cache = {}

    def profile(ly: int, inside: np.ndarray) -> LayerProfile:
        # a layer's profile depends only on its allowed experts: sibling subproblems share them
        # (with every refinement already made); LP upper values only at the root
        key = (ly, inside.tobytes())
        if key not in cache:
            keep = restricted(model.members[ly], inside)
            cache[key] = LayerProfile(model.members[ly][keep], model.probs[ly][keep], int(inside.sum()), use_lp=SUB_LP)
        return cache[key]

    if lp:
        profiles = [
            LayerProfile(
                members[ly],
                probs[ly],
                min(top_budget // int(units[ly]), int(allowed[ly].sum())),
                use_lp=lp,
                deadline=deadline,
            )
            for ly in range(nl)
        ]
        for ly, pr in enumerate(profiles):  # every later budget is at most top_budget
            cache[(ly, allowed[ly].tobytes())] = pr
    else:
        profiles = [profile(ly, allowed[ly]) for ly in range(nl)]
    nodes0 = sum(pr.nodes for pr in profiles)

    # with the exact completion of the tops at the root, the completions only propose tops:
    # their levels are searched once per entry, not refined until proven
    heur_grow = grow and not (COMPLETE_TOPS and lp)

    def heur_alloc(profs: list[LayerProfile], j: int, budget: int, until: float | None) -> np.ndarray:
        # the best known allocation of level j over `profs` (their entries refined until `until`)
        w = model.weights[:, j]
        return certify_level(profs, w, budget, deadline=until, node_limit=node_limit, grow=heur_grow, units=units)[1]

    def nested(until: float | None) -> dict[int, list[np.ndarray]]:
        # top-down nested heuristic: each level's best known allocation inside the level above
        # (``until`` = 0.0: no refinement at all, only the DP over the current lower profiles)
        out: dict[int, list[np.ndarray]] = {}
        above = allowed
        for j in sorted(levels, reverse=True):
            profs = profiles if above is allowed else [profile(ly, above[ly]) for ly in range(nl)]
            alloc = heur_alloc(profs, j, int(model.prefix[j]), until)
            out[j] = [profs[ly].witness[int(alloc[ly])] & above[ly] for ly in range(nl)]
            above = out[j]
        return out

    forced_cache: dict = {}

    def forced_profile(ly: int, forced: np.ndarray) -> LayerProfile:
        # layer ly inside `allowed` with the experts `forced` already cached: each set keeps only
        # its experts outside `forced` (sets inside `forced` are covered, they add a constant)
        # (kept in this call only: the shared cache holds profiles the subproblems reuse)
        key = (ly, forced.tobytes())
        if key not in forced_cache:
            keep = restricted(model.members[ly], allowed[ly])
            a = model.members[ly][keep] & ~forced[None, :]
            live = a.any(axis=1)
            free = int((allowed[ly] & ~forced).sum())
            forced_cache[key] = LayerProfile(a[live], model.probs[ly][keep][live], free, use_lp=SUB_LP)
        return forced_cache[key]

    def nested_up(until: float | None) -> dict[int, list[np.ndarray]]:
        # bottom-up nested heuristic: each level's best allocation that contains the level below.
        # It wins when the top level has ties that the top-down order breaks blindly (e.g. any
        # whole layer covers everything; only the lower levels tell which layer is worth it)
        out: dict[int, list[np.ndarray]] = {}
        below = [np.zeros_like(al) for al in allowed]
        for j in sorted(levels):
            profs = [forced_profile(ly, below[ly]) for ly in range(nl)]
            used = int(sum(int(units[ly]) * int(below[ly].sum()) for ly in range(nl)))
            alloc = heur_alloc(profs, j, int(model.prefix[j]) - used, until)
            out[j] = [below[ly] | (profs[ly].witness[int(alloc[ly])] & allowed[ly]) for ly in range(nl)]
            below = out[j]
        return out

    def nested_sizes(until: float | None) -> dict[int, list[np.ndarray]] | None:
        # sizes per layer and level from the size-monotone allocation MILP over the lower
        # profiles (allocation.py), then per layer top-down: each level's best known set of its
        # size inside the level above
        lv = sorted(levels)
        vals = [[model.weights[ly, j] * profiles[ly].lo for j in lv] for ly in range(nl)]
        left = 5.0 if until is None else min(5.0, max(0.0, until - time.monotonic()) / 10)
        if left < 0.05:
            return None
        sizes = monotone_sizes(vals, [int(model.prefix[j]) for j in lv], units, left)
        if sizes is None:
            return None
        out: dict[int, list[np.ndarray]] = {j: [] for j in lv}
        for ly in range(nl):
            above = allowed[ly]
            for k in range(len(lv) - 1, -1, -1):
                pr = profile(ly, above)
                c = pr.witness[min(int(sizes[ly, k]), pr.bmax)] & above
                out[lv[k]].append(c)
                above = c
        return out

    def heuristic(until: float | None) -> tuple[dict[int, list[np.ndarray]], float]:
        # the best of the nested completions
        cands = [nested(until)]
        if (lp or BOTTOM_UP_EVERYWHERE) and not (COMPLETE_TOPS and lp and until != 0.0):
            cands.append(nested_up(until))
        if lp and len(levels) > 1:
            guided = nested_sizes(until)
            if guided is not None:
                cands.append(guided)
        vals = [levels_value(model, c) for c in cands]
        tried.extend(cands)
        k = int(np.argmax(vals))
        return cands[k], vals[k]

    tried: list[dict[int, list[np.ndarray]]] = []  # every nested completion made so far

    ubs = {}
    best: list = [None, -np.inf, np.inf]  # streamed incumbent chains, their value, the bound

    def emit(chains_: dict[int, list[np.ndarray]], value_: float, upper_: float) -> None:
        # the harness keeps the last message only: send the best chains and the best bound so far
        if on_incumbent is None:
            return
        better = value_ > best[1] + 1e-12 * max(1.0, abs(value_))
        if better:
            best[0], best[1] = chains_, value_
        if better or upper_ < best[2]:
            best[2] = min(best[2], upper_)
            on_incumbent(best[0], best[2])

    def quick_upper(j: int) -> float:
        # level j's bound from the DP over the current upper profiles (no search)
        f, _ = combine_units([w * pr.hi for w, pr in zip(model.weights[:, j], profiles)], int(model.prefix[j]), units)
        return float(f[-1])

    if on_incumbent is not None:
        # anytime: a placement and a valid bound before any search (the DP over the initial
        # upper profiles of each level; the greedy nested chains)
        quick_ub = sum(quick_upper(j) for j in levels)
        quick, quick_value = heuristic(0.0)
        emit(quick, quick_value, quick_ub)
    if np.isfinite(target):
        # cheap bound first: the DP over the initial upper profiles of every level
        for j in levels:
            ubs[j] = (quick_upper(j), False)
        if sum(u for u, _ in ubs.values()) <= target + prune_tol(model, levels, target):
            return {}, -np.inf, float(sum(u for u, _ in ubs.values())), True, 0
    for j in sorted(levels, key=lambda j: -float(model.weights[:, j].sum())):
        others = sum(u for jj, (u, _) in ubs.items() if jj != j)
        res, _ = certify_level(
            profiles,
            model.weights[:, j],
            int(model.prefix[j]),
            deadline=deadline,
            node_limit=node_limit,
            grow=grow,
            stop_below=target - others - prune_tol(model, levels, target),
            units=units,
        )
        ubs[j] = (res.upper, res.proven)
        if sum(u for u, _ in ubs.values()) <= target + prune_tol(model, levels, target):
            nodes = sum(pr.nodes for pr in profiles) - nodes0
            return {}, -np.inf, float(sum(u for u, _ in ubs.values())), True, nodes
    upper = sum(u for u, _ in ubs.values())
    chains, value = heuristic(deadline)
    if best[0] is not None and best[1] > value:
        chains, value = best[0], best[1]  # the quick chains were better
    nodes = sum(pr.nodes for pr in profiles) - nodes0
    emit(chains, value, upper)
    tol = prune_tol(model, levels, upper)
    if value >= upper - tol:
        return chains, value, max(upper, value), True, nodes
    goal = max(value, target)  # what a better solution must beat
    if goal >= upper - tol:
        return chains, value, upper, True, nodes
    t, rest = levels[-1], levels[:-1]
    uniform = all(bool(np.all(model.weights[:, j] > 0) or np.all(model.weights[:, j] == 0)) for j in levels)
    if not enumerate_levels or not rest or not uniform or not all(p for _, p in ubs.values()):
        return chains, value, upper, False, nodes

    def solve_rest(
        inside: list[np.ndarray], above: float, until: float | None
    ) -> tuple[dict[int, list[np.ndarray]], float, float, bool, int]:
        # the levels below t inside `inside`, only values above `above` mattering
        return exact_chains(
            model,
            deadline=until,
            node_limit=node_limit,
            allowed=inside,
            levels=rest,
            grow=grow,
            lp=False,
            target=above,
            cache=cache,
        )

    if COMPLETE_TOPS and lp:
        # the completions choose each level for itself (top-down: the level below can only take
        # what the level above left it); the best chains inside a good top level are often much
        # better. Solve the levels below exactly inside the top of each completion (distinct tops,
        # best first), sharing half of the time left.
        tops: dict[bytes, list[np.ndarray]] = {}
        for cand in sorted(tried, key=lambda c: -levels_value(model, {t: c[t]})):
            tops.setdefault(b"".join(np.packbits(c).tobytes() for c in cand[t]), cand)
        for k, cand in enumerate(tops.values()):
            vt = levels_value(model, {t: cand[t]})
            share = max(0.0, deadline - time.monotonic()) / (2 * (len(tops) - k)) if deadline is not None else None
            until = None if share is None else time.monotonic() + share
            sub, sub_value, _, _, sub_nodes = solve_rest(cand[t], max(value, target) - vt, until)
            nodes += sub_nodes
            if vt + sub_value > value + tol:
                chains = {**sub, t: cand[t]}
                value = levels_value(model, chains)
                emit(chains, value, upper)
        goal = max(value, target)
        if goal >= upper - tol:
            return chains, value, max(upper, value), True, nodes
    rest_ub = sum(ubs[j][0] for j in rest)
    if STRENGTHEN_REST and len(rest) >= 2:
        # the levels below t on their own, nested, inside `allowed`: their optimum bounds the rest
        # of every candidate (C_t lies inside `allowed`) and is tighter than the per-level sum;
        # only values above goal - UB_t matter. Its returned upper is a bound in every case.
        _, _, r_upper, _, rnodes = solve_rest(allowed, goal - ubs[t][0], deadline)
        nodes += rnodes
        rest_ub = min(rest_ub, r_upper)
        if ubs[t][0] + rest_ub <= goal + tol:
            return chains, value, max(value, ubs[t][0] + rest_ub), True, nodes
    # the bound proven so far over the candidates: those the enumeration skips have
    # v_t + rest_ub <= goal; the others are bounded by v_t + their subproblem's upper bound
    proof = [max(value, target)]
    box = [goal - rest_ub]  # the enumeration threshold, raised whenever the incumbent improves
    try:
        sols = level_solutions(
            members,
            probs,
            model.weights[:, t],
            int(model.prefix[t]),
            [model.weights[ly, t] * pr.hi for ly, pr in enumerate(profiles)],
            box,
            deadline,
            units,
        )
        for tops, vt in sols:
            goal = max(value, target)
            if vt + rest_ub <= goal + tol:
                proof[0] = max(proof[0], vt + rest_ub)
                continue
            # only a completion worth more than goal - vt matters below this top level
            sub, sub_value, sub_upper, sub_proven, sub_nodes = solve_rest(tops, goal - vt, deadline)
            nodes += sub_nodes
            if not sub_proven:
                return chains, value, upper, False, nodes
            proof[0] = max(proof[0], vt + sub_upper)
            if vt + sub_value > value + tol:
                chains = {**sub, t: tops}
                value = levels_value(model, chains)
                box[0] = max(value, target) - rest_ub
                emit(chains, value, upper)
    except Timeout:
        return chains, value, upper, False, nodes
    return chains, value, min(upper, max(proof[0], value)), True, nodes


def level_bound(inst: Instance, *, node_limit: int = 5_000, deadline: float | None = None) -> float:
    """Certified upper bound on the optimal gain of a chain-reducible instance.

    Parameters
    ----------
    inst
        The instance (raises :class:`~moebench.errors.NotApplicableError` outside the reduction).
    node_limit
        Branch-and-bound nodes per profile entry (larger: tighter and slower).
    deadline
        ``time.monotonic()`` value after which refinement stops (the bound stays valid).

    Returns
    -------
    float
        sum_j UB_j >= R*.
    """
    model = chain_model(inst)
    _, _, upper, _, _ = exact_chains(
        model, deadline=deadline, node_limit=node_limit, grow=False, enumerate_levels=False
    )
    return float(upper)
