"""``cpsat``: OR-Tools CP-SAT on integer-scaled versions of the three formulations.

CP-SAT needs integer coefficients, so the model is scaled and rounded; this module states the
scales and a rigorous bound on the rounding error, returned as ``info["rounding_error_bound"]``
(``eps`` below, in ms) and checked by ``tests/test_exact_cpsat.py``.

Models (same placement binaries ``x[n,g]`` and the same reductions as
:mod:`moebench.exact.formulations`; every auxiliary variable is *tied* to ``x`` by equivalences,
so every CP-SAT solution, not only an optimal one, has an objective equal to the scaled value of
its placement):

``cover``
    ``c[k,g] <=> OR{x[n,g] : T[n,g] <= v_k}``, ``a[k,S] <=> AND{c[k,g] : g in S, T0_g > v_k}``,
    maximize ``sum w~[k,S] a[k,S]`` with ``w~ = round(omega * pi_S (v_{k+1} - v_k))``.
``k1``
    ``y[n,g] <=> x[n,g] AND no faster kept server of g caches g``; maximize
    ``sum w~[n,g] y[n,g]`` with ``w~ = round(omega * p_g (T0_g - T[n,g]))``.
``assign``
    latencies in units of ``1/lam`` ms, ``T~ = round(lam T)``; ``t[g] = min(T~0_g, min_n T~0_g -
    (T~0_g - T~[n,g]) x[n,g])`` and ``z[S] = max_{g in S} t[g]`` (CP-SAT min/max equalities);
    minimize ``sum_S q~_S z[S]`` with ``q~_S = round(Pi pi_S)``; Lat = obj / (Pi lam) + const.

Scales and the error bound. With weights ``w_j`` on variables ``v_j in [0, U_j]`` and rounded
integers ``w~_j = round(omega w_j)``, every solution satisfies
``|sum_j w_j v_j - sum_j w~_j v_j / omega| <= sum_j |w_j - w~_j / omega| U_j =: eps_w``. For
``assign`` the latency rounding adds ``eps_T = sum_S pi~_S max_{g in S}|T~/lam - T| <= L max|T~/lam - T|``
(one max per set, sum of probabilities 1 per layer), and ``eps = eps_w + eps_T``. The scales
are powers of two chosen so that ``eps_w <= 1e-9 max(1, Lat(empty))`` when the largest objective
activity stays below 2**53 (``cover``, ``k1``); for ``assign`` the activity ``Pi lam Lat(empty)``
may reach 2**61 and the two scales balance ``eps_w`` and ``eps_T`` (about 1e-9 relative on tiny
instances, 1e-7 at DeepSeek scale).
Consequences: (1) ``|solver_latency - Lat(x)| <= eps`` for the returned placement;
(2) an optimal CP-SAT solution is within ``2 eps`` of the true optimum; (3) the returned gain
bound is the CP-SAT bound plus ``eps``, hence valid.

Capacities. Sizes are scaled by ``sigma`` (a power of 2 or of 10, the smallest that makes every
``sigma s_g`` an integer up to float noise, e.g. 1 for integer MB, 1e6 for the generated families)
and each row is divided by the gcd of its coefficients: then ``sum s~ x <= floor(sigma Q / gcd)``
is exactly the capacity constraint (equal sizes become coefficients 1). If no exact scale exists,
or a reduced row still has a right-hand side above 2**24 (CP-SAT returned a wrong "optimal"
answer with coefficients near 4e11), the row is scaled to ``sigma Q <= 2**24`` with sizes rounded
*up* and capacities down: every CP-SAT-feasible placement is feasible, and only placements
using more than ``Q - (#cached)/sigma`` are lost (``info["capacity_exact"] = False``).

Parameters for 2 cores (profile ``cpsat-2core``, measured on a shared 2-core machine): with
``num_workers = 2`` the default portfolio barely uses the LP relaxation and even
``linearization_level = 2`` does not reach its named workers: zipf L3 E16 K2 N3 and clustered
L2 E16 K4 N3 (cover) stayed at 70% / 63% gap after 30 s. One worker with
``linearization_level = 2`` solved them in 0.1 s / 1.1 s; two workers named explicitly,
``subsolvers = ["max_lp", "quick_restart"]``, in 0.3 s / 1.1 s (the profile's choice: it keeps a
primal worker beside the LP one). The parameters actually used are returned in
``Solution.options["cpsat_parameters"]``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.errors import InputError, UnavailableError
from moebench.evaluate import empty_placement
from moebench.exact.formulations import Extra, strengthen_model
from moebench.instance import Instance
from moebench.methods import Solution, SolveRequest, Status

#: Target rounding error relative to max(1, Lat(empty)).
TARGET_REL_ERROR = 1e-9
#: Largest objective activity allowed (exact in doubles).
MAX_ACTIVITY = 2.0**53
#: Largest scaled capacity of a row after exact scaling and gcd reduction, and the target of the
#: conservative rounding. CP-SAT returned a wrong "optimal" answer with capacity coefficients
#: around 4e11 (sigma = 1e8), so rows are kept small.
MAX_SCALED_CAPACITY = 2.0**24
#: Largest scaled capacity before gcd reduction when looking for an exact scale.
MAX_EXACT_CAPACITY = 2.0**50
#: F-assign multiplies two scales: its objective activity may use int64 up to 2**61.
MAX_ACTIVITY_ASSIGN = 2.0**61


def size_scale(size: np.ndarray, capacity: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Integer sizes and capacities: ``(s~, Q~, sigma, exact)`` (see the module docstring)."""
    size = np.asarray(size, float)
    qmax = max(float(np.max(capacity, initial=0.0)), 1e-12)
    cands = sorted({2.0**k for k in range(31)} | {10.0**k for k in range(10)})
    for sigma in cands:
        scaled = size * sigma
        # integral up to float noise (absolute, in scaled units) and within int64 comfortably
        if qmax * sigma <= MAX_EXACT_CAPACITY and np.all(np.abs(scaled - np.round(scaled)) <= 1e-6):
            q = np.floor(capacity * sigma * (1 + 1e-10) + 1e-9)
            return np.round(scaled).astype(np.int64), q.astype(np.int64), sigma, True
    sigma = 2.0 ** math.floor(math.log2(MAX_SCALED_CAPACITY / qmax))
    return np.ceil(size * sigma).astype(np.int64), np.floor(capacity * sigma).astype(np.int64), sigma, False


def capacity_rows(inst: Instance, pairs: Any) -> tuple[list[tuple[np.ndarray, np.ndarray, int]], dict[str, Any]]:
    """Integer capacity rows ``(pair indices, coefficients, rhs)`` for servers that can overflow.

    Exactly scaled rows are divided by the gcd of their coefficients (equal sizes become 1, so
    coefficients stay small: CP-SAT returned a wrong "optimal" answer with coefficients near 4e11);
    an exact row still above ``MAX_SCALED_CAPACITY`` after that is rounded conservatively instead.
    """
    s_int, q_int, sigma, exact = size_scale(inst.size, inst.capacity)
    rows, all_exact = [], exact
    for n in range(inst.N):
        idx = np.flatnonzero(pairs.server == n)
        if not (len(idx) and inst.size[pairs.expert[idx]].sum() > inst.capacity[n]):
            continue
        coef, rhs = s_int[pairs.expert[idx]], int(q_int[n])
        if exact:
            g = int(np.gcd.reduce(coef)) if np.all(coef > 0) else 1
            coef, rhs = coef // g, rhs // g
            if rhs > MAX_SCALED_CAPACITY:
                sg = 2.0 ** math.floor(math.log2(MAX_SCALED_CAPACITY / max(inst.capacity[n], 1e-12)))
                coef = np.ceil(inst.size[pairs.expert[idx]] * sg).astype(np.int64)
                rhs = math.floor(inst.capacity[n] * sg)
                all_exact = False
        rows.append((idx, coef, rhs))
    return rows, {"size_scale": sigma, "capacity_exact": all_exact}


def scale_weights(w: np.ndarray, ub: np.ndarray, target: float) -> tuple[np.ndarray, float, float]:
    """Round ``w`` at scale ``omega = 2**b``: returns ``(w~, omega, eps_w)``.

    ``omega`` is the smallest power of two with ``eps_w = sum |w - w~/omega| ub <= target``
    that keeps ``sum |w~| ub <= 2**53``; if none does, the largest that fits.
    """
    w, ub = np.asarray(w, float), np.asarray(ub, float)
    total_ub = float(ub.sum())
    mass = float(np.abs(w) @ ub)
    b = math.ceil(math.log2(max(total_ub, 1.0) / (2 * target)))
    b_max = math.floor(math.log2(MAX_ACTIVITY / max(mass, 1e-300))) if mass > 0 else b
    b = min(b, b_max)
    omega = 2.0**b
    wt = np.round(w * omega)
    return wt.astype(np.int64), omega, float(np.abs(w - wt / omega) @ ub)


@dataclass
class _Model:
    cp: Any
    x: list[Any]
    pairs: Any  # the kept pairs behind x (after the strengthening ``prune``)
    sense: str  # "max": objective is the gain; "min": objective is Lat
    omega: float  # objective units per ms (gain or latency)
    const: float  # Lat = obj / omega + const (min) ; gain = obj / omega (max)
    eps: float
    info: dict[str, Any]


def _capacity(cp: Any, inst: Instance, pairs: Any, x: list[Any]) -> dict[str, Any]:
    rows, info = capacity_rows(inst, pairs)
    for idx, coef, rhs in rows:
        cp.add(sum(int(c) * x[i] for i, c in zip(idx, coef)) <= rhs)
    return info


def add_extra_rows(cp: Any, ex: Extra, x: list[Any], a: list[Any] | None = None) -> dict[str, Any]:
    """The strengthenings' rows as integer CP-SAT constraints.

    Rows with integral coefficients are added exactly. Others are scaled by ``lam = 2**k``
    (largest coefficient about 2**30) and rounded *weaker*: every variable is a boolean >= 0, so
    ``sum floor(lam c) v <= ceil(lam ub)`` is implied by ``sum c v <= ub`` (and ceil / floor for
    ``>=`` rows). The rounded rows are therefore still valid; they only lose a little strength.
    """
    arr = ex.arrays()
    n = len(arr["lb"])
    if n == 0:
        return {"extra_rows": 0}
    terms: list[list[tuple[Any, float]]] = [[] for _ in range(n)]
    for r, p, c in zip(arr["x_row"], arr["x_pair"], arr["x_coef"]):
        terms[r].append((x[p], float(c)))
    for r, j, c in zip(arr["a_row"], arr["a_idx"], arr["a_coef"]):
        assert a is not None
        terms[r].append((a[j], float(c)))
    rounded = 0
    for r in range(n):
        coefs = np.array([c for _, c in terms[r]])
        lb, ub = float(arr["lb"][r]), float(arr["ub"][r])
        integral = np.all(np.abs(coefs - np.round(coefs)) <= 1e-12) and all(
            not math.isfinite(b) or abs(b - round(b)) <= 1e-12 for b in (lb, ub)
        )
        lam = 1.0
        if not integral:
            top = float(np.abs(coefs).max(initial=0.0))
            lam = 2.0 ** math.floor(math.log2(2.0**30 / top)) if top > 0 else 1.0
            rounded += 1
        for side, bound in (("ub", ub), ("lb", lb)):
            if not math.isfinite(bound):
                continue
            if side == "ub":
                ci = np.floor(coefs * lam + 1e-9 * integral).astype(np.int64)
                rhs = math.ceil(bound * lam - 1e-9 * integral)
                cp.add(sum(int(c) * v for (v, _), c in zip(terms[r], ci) if c) <= rhs)
            else:
                ci = np.ceil(coefs * lam - 1e-9 * integral).astype(np.int64)
                rhs = math.floor(bound * lam + 1e-9 * integral)
                cp.add(sum(int(c) * v for (v, _), c in zip(terms[r], ci) if c) >= rhs)
    return {"extra_rows": n, "extra_rows_rounded": rounded}


def build_cover_cp(inst: Instance, ex: Extra | None = None) -> _Model:
    """CP-SAT model of F-cover (see the module docstring); ``ex``: strengthenings."""
    from ortools.sat.python import cp_model

    ex = strengthen_model(inst, "cover", ()) if ex is None else ex
    pairs, cs = ex.pairs, ex.cs
    cp = cp_model.CpModel()
    x = [cp.new_bool_var(f"x{i}") for i in range(len(pairs.server))]
    info = _capacity(cp, inst, pairs, x)
    c = [cp.new_bool_var(f"c{i}") for i in range(len(cs.c_expert))]
    a = [cp.new_bool_var(f"a{i}") for i in range(len(cs.a_set))]
    # c <=> OR of its fast pairs (grouped by c: cx_c is sorted)
    bounds = np.searchsorted(cs.cx_c, np.arange(len(c) + 1))
    for i, ci in enumerate(c):
        xs = [x[p] for p in cs.cx_pair[bounds[i] : bounds[i + 1]]]
        cp.add_bool_or([*xs, ~ci])
        for xp in xs:
            cp.add_implication(xp, ci)
    # a <=> AND of its c's (ac_a is sorted)
    bounds = np.searchsorted(cs.ac_a, np.arange(len(a) + 1))
    for i, ai in enumerate(a):
        cs_i = [c[j] for j in cs.ac_c[bounds[i] : bounds[i + 1]]]
        for cj in cs_i:
            cp.add_implication(ai, cj)
        cp.add_bool_or([ai, *(~cj for cj in cs_i)])
    for j in ex.a_zero:
        cp.add(a[int(j)] == 0)
    info.update(add_extra_rows(cp, ex, x, a))
    target = TARGET_REL_ERROR * max(1.0, inst.empty_latency)
    wt, omega, eps = scale_weights(cs.a_weight, np.ones(len(a)), target)
    cp.maximize(sum(int(wi) * ai for wi, ai in zip(wt, a) if wi))
    info.update(objective_scale=omega, a_vars=len(a), c_vars=len(c))
    return _Model(cp, x, pairs, "max", omega, 0.0, eps, info)


def build_k1_cp(inst: Instance, ex: Extra | None = None) -> _Model:
    """CP-SAT model of F-k1 (see the module docstring); ``ex``: strengthenings."""
    from ortools.sat.python import cp_model

    ex = strengthen_model(inst, "k1", ()) if ex is None else ex
    pairs = ex.pairs
    cp = cp_model.CpModel()
    x = [cp.new_bool_var(f"x{i}") for i in range(len(pairs.server))]
    info = _capacity(cp, inst, pairs, x)
    lat = inst.latency[pairs.server, pairs.expert]
    y = [cp.new_bool_var(f"y{i}") for i in range(len(x))]
    # within an expert, order its pairs by latency: y_p <=> x_p and no earlier pair cached
    order = np.lexsort((pairs.server, lat, pairs.expert))
    start = np.searchsorted(pairs.expert[order], pairs.expert[order], side="left")
    for j, p in enumerate(order):
        earlier = [x[q] for q in order[start[j] : j]]
        cp.add_implication(y[p], x[p])
        for xq in earlier:
            cp.add_implication(y[p], ~xq)
        cp.add_bool_or([y[p], ~x[p], *earlier])
    info.update(add_extra_rows(cp, ex, x))
    w = inst.marginals[pairs.expert] * (inst.fallback[pairs.expert] - lat)
    target = TARGET_REL_ERROR * max(1.0, inst.empty_latency)
    wt, omega, eps = scale_weights(w, np.ones(len(y)), target)
    cp.maximize(sum(int(wi) * yi for wi, yi in zip(wt, y) if wi))
    info.update(objective_scale=omega)
    return _Model(cp, x, pairs, "max", omega, 0.0, eps, info)


def build_assign_cp(inst: Instance, ex: Extra | None = None) -> _Model:
    """CP-SAT model of F-assign with min/max equalities (see the module docstring); ``ex``: strengthenings."""
    from ortools.sat.python import cp_model

    ex = strengthen_model(inst, "assign", ()) if ex is None else ex
    pairs = ex.pairs
    cp = cp_model.CpModel()
    x = [cp.new_bool_var(f"x{i}") for i in range(len(pairs.server))]
    info = _capacity(cp, inst, pairs, x)
    # objective activity ~ Pi lam Lat(empty) must fit int64 (CP-SAT checks it); within that,
    # balance the two error terms L / (2 lam) and M zmax / (2 Pi)
    budget = MAX_ACTIVITY_ASSIGN / max(1.0, 2 * inst.empty_latency)
    zmax = float(max(inst.fallback.max(), 1e-9))
    lam = 2.0 ** math.floor(0.5 * math.log2(budget * inst.L / (inst.M * zmax)))
    pi_scale = 2.0 ** math.floor(math.log2(budget / lam))
    t_int = np.round(inst.latency * lam).astype(np.int64)
    t0_int = np.round(inst.fallback * lam).astype(np.int64)
    zub = t0_int[inst.sets].max(axis=1)
    q = np.round(inst.probs * pi_scale).astype(np.int64)
    eps_w = float(np.abs(inst.probs - q / pi_scale) @ (zub / lam))
    resid = np.maximum(np.abs(t_int - inst.latency * lam).max(axis=0), np.abs(t0_int - inst.fallback * lam)) / lam
    eps_t = float((q / pi_scale) @ resid[inst.sets].max(axis=1))
    rank = np.full(inst.G, -1)
    rank[pairs.cand] = np.arange(len(pairs.cand))
    t = []
    bounds = np.searchsorted(pairs.expert, pairs.cand, side="left"), np.searchsorted(pairs.expert, pairs.cand, "right")
    for j, g in enumerate(pairs.cand):
        t0 = int(t0_int[g])
        ps = range(bounds[0][j], bounds[1][j])
        lo = min(int(t_int[pairs.server[p], g]) for p in ps)
        tg = cp.new_int_var(min(lo, t0), t0, f"t{g}")
        cp.add_min_equality(tg, [t0, *(t0 - (t0 - int(t_int[pairs.server[p], g])) * x[p] for p in ps)])
        t.append(tg)
    z_terms = []
    const = 0.0
    for s in range(inst.M):
        members = inst.sets[s]
        cand = [t[rank[g]] for g in members if rank[g] >= 0]
        if not cand or inst.probs[s] == 0:
            const += inst.probs[s] * inst.base_set_latency[s]
            continue
        fixed = [int(t0_int[g]) for g in members if rank[g] < 0]
        # prune: the set's latency is at least its lowest level that fits (rounding is monotone)
        zlo = 0 if ex.z_lb is None else min(round(ex.z_lb[s] * lam), int(zub[s]))
        zs = cp.new_int_var(zlo, int(zub[s]), f"z{s}")
        cp.add_max_equality(zs, cand + fixed)
        if q[s]:
            z_terms.append(int(q[s]) * zs)
    info.update(add_extra_rows(cp, ex, x))
    cp.minimize(sum(z_terms))
    # objective / (pi_scale lam) is sum pi~ z~ / lam over non-constant sets; constants separately
    info.update(latency_scale=lam, probability_scale=pi_scale)
    return _Model(cp, x, pairs, "min", pi_scale * lam, const, eps_w + eps_t, info)


BUILDERS = {"cover": build_cover_cp, "k1": build_k1_cp, "assign": build_assign_cp}


def scaled_latency(model: _Model, inst: Instance, objective: float) -> float:
    """Latency from a CP-SAT objective value."""
    if model.sense == "max":
        return inst.empty_latency - objective / model.omega
    return objective / model.omega + model.const


def gain_bound(model: _Model, inst: Instance, bound: float) -> float:
    """Valid upper bound on the gain from a CP-SAT objective bound (rounding error added)."""
    if model.sense == "max":
        return bound / model.omega + model.eps
    return inst.empty_latency - (bound / model.omega + model.const) + model.eps


def _polish(model: _Model, values: list[bool], objective: float, info: dict[str, Any]) -> float:
    """CP-SAT's objective with the binaries fixed to ``values`` (falls back to ``objective``)."""
    from ortools.sat.python import cp_model

    for var, val in zip(model.x, values):
        model.cp.add(var == int(val))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = 10.0
    status = solver.solve(model.cp)
    info["polish_status"] = solver.status_name(status)
    if status == cp_model.OPTIMAL:
        info["incumbent_objective"] = objective
        return solver.objective_value
    return objective


def version() -> str:
    """OR-Tools version."""
    import ortools

    return str(ortools.__version__)


def solve_cpsat(inst: Instance, req: SolveRequest, opt: Any) -> Solution:
    """Solve with CP-SAT; ``opt`` is a :class:`moebench.exact.backends.Resolved`."""
    try:
        from ortools.sat.python import cp_model
    except ImportError as exc:  # pragma: no cover - ortools is a dependency
        raise UnavailableError(f"OR-Tools is not installed: {exc}") from None
    from moebench.exact.backends import promote_if_proven, stream_start, strengthen_for, tighter_bound

    t0 = time.perf_counter()
    ex = strengthen_for(inst, req, opt)
    model = BUILDERS[opt.formulation](inst, ex)
    pairs = model.pairs
    if ex.start is not None:  # hint: the feasible placement found by the strengthening ``profile``
        for var, val in zip(model.x, ex.start[pairs.server, pairs.expert]):
            model.cp.add_hint(var, bool(val))
    build_time = time.perf_counter() - t0
    solver = cp_model.CpSolver()
    params: dict[str, Any] = {
        "num_workers": opt.threads,
        "random_seed": int(req.seed) % 2147483647,
        "relative_gap_limit": opt.mip_rel_gap,
        **opt.solver_options,
    }
    if opt.mip_abs_gap is not None:
        params["absolute_gap_limit"] = opt.mip_abs_gap * model.omega
    limit = req.remaining()
    if limit is not None:
        params["max_time_in_seconds"] = max(0.05, limit)  # remaining() already counts the build
    for key, val in params.items():
        try:
            if isinstance(val, list):  # repeated field (e.g. subsolvers) of fresh, empty parameters
                getattr(solver.parameters, key).extend(val)
            else:
                setattr(solver.parameters, key, val)
        except (AttributeError, TypeError, ValueError) as exc:
            raise InputError(f"CP-SAT rejected parameter {key}={val!r}: {exc}", where="solver option") from None

    def decode(values: list[bool]) -> np.ndarray:
        x = empty_placement(inst)
        on = np.asarray(values, bool)
        x[pairs.server[on], pairs.expert[on]] = True
        return x

    trivial = stream_start(inst, req, ex.gain_bound, ex.start)

    class Stream(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            if req.on_incumbent is not None:
                vals = [self.boolean_value(v) for v in model.x]
                b = gain_bound(model, inst, self.best_objective_bound)
                req.on_incumbent(decode(vals), min(trivial, b) if math.isfinite(b) else trivial)

    t1 = time.perf_counter()
    status = solver.solve(model.cp, Stream() if req.on_incumbent is not None else None)
    solve_time = time.perf_counter() - t1
    name = solver.status_name(status)
    info = {
        **model.info,
        "rounding_error_bound": model.eps,
        "cpsat_status": name,
        "objective_value": solver.objective_value if status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None,
        "best_objective_bound": solver.best_objective_bound,
        "wall_time": solver.wall_time,
    }
    common = dict(
        build_time=build_time,
        solve_time=solve_time,
        solver="cp-sat",
        solver_version=version(),
        options={
            **opt.record(req, params.get("max_time_in_seconds")),
            "cpsat_parameters": params,
            "strengthen_applied": {
                **ex.record(),
                **({"slots": "implied: capacity rows are divided by the gcd of their sizes"} if ex.slot_size else {}),
            },
        },
        info=info,
    )
    bound = gain_bound(model, inst, solver.best_objective_bound) if math.isfinite(solver.best_objective_bound) else None
    bound = tighter_bound(bound, ex.gain_bound)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        values = [solver.boolean_value(v) for v in model.x]
        x = decode(values)
        objective = solver.objective_value
        if status == cp_model.FEASIBLE:
            # Every model ties its auxiliaries to x, yet in isolated (child-process) runs stopped
            # by the time limit F-assign's incumbent objective exceeded its placement's scaled
            # latency by ~0.1%. As for HiGHS, re-solve with x fixed and report that objective.
            objective = _polish(model, values, objective, info)
        lat = scaled_latency(model, inst, objective)
        st = Status.OPTIMAL if status == cp_model.OPTIMAL else Status.TIME_LIMIT
        st = promote_if_proven(st, inst.empty_latency - lat - model.eps, bound, opt, info)
        return Solution(x, st, bound=bound, solver_latency=lat, **common)
    if status == cp_model.INFEASIBLE:
        return Solution(empty_placement(inst), Status.INFEASIBLE, error="CP-SAT: model infeasible", **common)
    if status == cp_model.UNKNOWN:
        return Solution(empty_placement(inst), Status.TIME_LIMIT, bound=bound, **common)
    return Solution(empty_placement(inst), Status.ERROR, error=f"CP-SAT: {name}", **common)
