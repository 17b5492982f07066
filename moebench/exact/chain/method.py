"""Registration of the combinatorial exact method and the certified bound (issue 7).

``exact-sets``
    Exact optimum of chain-reducible instances (equal expert sizes, latency depending on the
    server only within each layer, constant fallback per layer, one fastest-first server order
    for all layers; :func:`moebench.exact.chain.model.chain_model`) by per-layer branch and bound over
    experts, the (max,+) DP over layers, per-level bounds and a top-down enumeration over
    nested levels (:func:`moebench.exact.chain.search.exact_chains`). Status ``optimal`` only with a
    proof; otherwise ``time-limit`` (or ``feasible``) with the proven bound.
``bound-levels``
    The certified upper bound sum_j UB_j (each level's single-level optimum with the nesting
    between levels dropped), computed with a fixed node budget per profile entry, returned with
    the nested top-down placement as its incumbent (status ``feasible``, or ``optimal`` when
    the two meet). docs/certify.md argues the validity of every bound.

Expert sizes may differ between layers (one size per layer, each a whole multiple of the
smallest: int4 / int8 / bf16 mixes). The chains with prefix budgets in units of the smallest size
are then a relaxation of the placements (packing may fail), so both methods return its bound, a
packed placement, and ``optimal`` only when that placement's gain reaches the bound.
"""

from __future__ import annotations

import time

import numpy as np

from moebench.errors import InputError
from moebench.evaluate import gain
from moebench.exact.chain.coverage import TOL
from moebench.exact.chain.model import (
    ChainModel,
    chain_model,
    chain_value,
    chains_to_placement,
    full_chains,
    placement_chains,
    trivial_bound,
)
from moebench.exact.chain.search import exact_chains
from moebench.instance import Instance
from moebench.methods import Method, MethodInfo, MethodSpec, Solution, SolveRequest, Status, int_arg, register_method
from moebench.tolerances import OPTIMAL_RTOL, bound_below, proven

#: Seconds kept back from the time limit to build and return the placement.
_MARGIN = 0.5
#: Relative widening of every returned bound against double rounding (far below the 1e-9
#: relative tolerance of ``optimal``, :data:`moebench.tolerances.OPTIMAL_RTOL`).
SAFETY = 1e-10


def safe_bound(model: ChainModel, upper: float) -> float:
    """``upper`` widened so that it bounds the instance's optimum despite floating point.

    Adds :data:`SAFETY` relative (rounding of sums of at most L x N nonnegative terms) and the
    DPs' absolute tie tolerance (``TOL`` per layer and level: a DP keeps a larger value only when
    it beats the current one by more than ``TOL``); docs/certify.md section 7.7.
    """
    return float(upper) + SAFETY * abs(float(upper)) + (model.L * len(model.levels) + 1) * TOL


def _solve(inst: Instance, req: SolveRequest, *, exact: bool, node_limit: int) -> Solution:
    t0 = time.perf_counter()
    model = chain_model(inst)  # NotApplicableError outside the reduction's conditions
    build = time.perf_counter() - t0
    remaining = req.remaining()
    deadline = None if remaining is None else time.monotonic() + max(0.0, remaining - _MARGIN)
    node_limit = int(req.options.get("node_limit", node_limit))

    def stream(chains: dict, upper: float) -> None:
        # the harness keeps the last streamed incumbent if it has to kill the run
        if req.on_incumbent is not None:
            req.on_incumbent(chains_to_placement(inst, model, full_chains(model, chains)), safe_bound(model, upper))

    if req.on_incumbent is not None:
        # before any work: the empty placement with the bound "every set covered at the fastest
        # level" (sum_l (T0_l - u[l, 0]) * mass_l), so that a kill never leaves the run without both
        req.on_incumbent(np.zeros((inst.N, inst.G), dtype=bool), safe_bound(model, trivial_bound(model)))

    chains, value, upper, _, nodes = exact_chains(
        model,
        deadline=deadline,
        node_limit=node_limit,
        grow=exact,
        enumerate_levels=exact,
        on_incumbent=stream,
    )
    x = chains_to_placement(inst, model, full_chains(model, chains))
    # the solver's own objective: the layer-cake value of the placement's chains, computed
    # independently of the evaluator's max formula (a cross-check of the reduction)
    own = chain_value(model, placement_chains(inst, model, x))
    achieved = gain(inst, x)
    # widen the bound against floating point and the search's pruning slack (docs/certify.md 7.7);
    # with several sizes the chains are a relaxation (Claim 5), so their bound holds as well
    upper = safe_bound(model, upper)
    if bound_below(upper, achieved, inst.empty_latency):
        raise AssertionError(f"exact-sets: bound {upper!r} below the gain {achieved!r} of its own placement")
    upper = max(upper, achieved)
    # one rule with every other exact method (moebench.tolerances): optimal when the evaluator's
    # gain of the returned placement is within OPTIMAL_RTOL of the safe bound
    done = proven(achieved, upper, inst.empty_latency)
    timed_out = deadline is not None and time.monotonic() >= deadline
    status = Status.OPTIMAL if done else (Status.TIME_LIMIT if timed_out else Status.FEASIBLE)
    if req.on_incumbent is not None:
        req.on_incumbent(x, upper)
    return Solution(
        x,
        status,
        bound=upper,
        solver_latency=inst.empty_latency - own,
        build_time=build,
        solve_time=time.perf_counter() - t0 - build,
        solver="exact-sets" if exact else "bound-levels",
        options={"node_limit": node_limit, "time_limit": req.time_limit},
        tolerance=OPTIMAL_RTOL,
        info={
            "nodes": nodes,
            "levels": [int(j) for j in model.levels],
            "prefix_slots": [int(v) for v in model.prefix],
            "units": [int(v) for v in model.units],
            "chain_value": value,
        },
    )


def _node_limit(spec: MethodSpec, default: int, what: str) -> int:
    """The optional ``nodes=N`` bracket argument, the only one these methods take."""
    if spec.args or set(spec.kwargs) - {"nodes"}:
        raise InputError(f"{spec.base} takes only nodes=N ({what})", where="method")
    raw = spec.kwargs.get("nodes")
    return default if raw is None else int_arg(raw, spec, "nodes", lo=1, hi=10**9)


def _register(name: str, examples: tuple[str, ...], summary: str, description: str, *, exact: bool) -> None:
    """Register ``exact-sets`` (``exact``) or ``bound-levels``: :func:`_solve` with a node limit per profile entry."""
    default, what = (
        (20_000, "initial node limit per profile entry") if exact else (5_000, "node limit per profile entry")
    )

    @register_method(name, examples=examples, summary=summary)
    def build(spec: MethodSpec) -> Method:
        limit = _node_limit(spec, default, what)
        info = MethodInfo(
            spec.full_name if spec.kwargs else name,
            "exact",
            description,
            assumptions=("one expert size per layer",),
            deterministic=True,
        )

        def solve(inst: Instance, req: SolveRequest) -> Solution:
            return _solve(inst, req, exact=exact, node_limit=limit)

        return Method(info, solve, options=("node_limit",))


_register(
    "exact-sets",
    ("exact-sets",),
    "exact by branch and bound over experts/activation sets + (max,+) DP + nested levels (chain-reducible)",
    "per-layer exact profiles by branch and bound, (max,+) DP over layers, per-level bounds and "
    "top-down enumeration over nested levels; needs server-only latencies per layer",
    exact=True,
)
_register(
    "bound-levels",
    ("bound-levels", "bound-levels[nodes=2000]"),
    "certified upper bound: per-level optima with nesting dropped, nested top-down placement",
    "upper bound sum_j UB_j from exact or bounded per-layer profiles; returns the nested top-down chains",
    exact=False,
)
