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
(one max per set, sum of probabilities 1 per layer), and ``eps = eps_w + eps_T`` plus the
rounding noise of evaluating a latency in doubles (1e-14 of ``max(1, Lat(empty))``). The scales
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
is exactly the capacity constraint (equal sizes become coefficients 1), however large the
numbers (up to :data:`MAX_EXACT_CAPACITY`). Only when no exact scale exists is the row scaled to
``sigma Q <= 2**24`` with sizes rounded *down* and capacities up: a *relaxation* of the instance,
so CP-SAT's bound stays valid for it. A CP-SAT placement that overflows a true capacity is
repaired (the cached expert whose removal costs least is dropped until it fits) and is then not
claimed optimal (``info["capacity_exact"] = False``, ``info["repaired"]``; docs/tolerances.md).
Earlier versions rounded the other way (a restriction: sizes up, capacities down) and also did so
for exact rows above 2**24, after a wrong ``optimal`` with coefficients near 4e11 that came from a
scale accepted "up to float noise" of 1e-6 at sigma = 1e8; that restriction made CP-SAT report
optima and bounds below the true ones (issue 12).

Bounds. CP-SAT's ``best_objective_bound`` is used only when CP-SAT has one: a response without a
solution (status ``UNKNOWN``, e.g. stopped during presolve) carries the field's default 0, which
once became a bound of 1.25e-7 on a gain of 92 (issue 12). Streamed incumbents carry the bound
of the search at that moment.

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
from moebench.evaluate import CAPACITY_RTOL, empty_placement, gain, server_load
from moebench.exact.driver import Resolved, SolverResult, Stream
from moebench.exact.formulations import Extra, plain_extra, trivial_gain_bound
from moebench.instance import Instance
from moebench.methods import SolveRequest

#: Target rounding error of the objective, relative to the trivial gain bound (the policy's
#: ``optimal`` needs twice the error below 1e-9 of the gain).
TARGET_REL_ERROR = 1e-13
#: Largest objective activity allowed (exact in doubles).
MAX_ACTIVITY = 2.0**53
#: Target of the relaxed rounding of a capacity row that has no exact integer scale.
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
        # integral up to float noise (a decimal such as 17.3 is 173/10 up to its last bits, 1e-16
        # relative; 1e-12 leaves room and stays far below the evaluator's capacity slack of 1e-9)
        # and within int64 comfortably
        noise = 1e-12 * np.maximum(np.abs(scaled), 1.0)
        if qmax * sigma <= MAX_EXACT_CAPACITY and np.all(np.abs(scaled - np.round(scaled)) <= noise):
            q = np.floor(capacity * sigma * (1 + 1e-10) + 1e-9)
            return np.round(scaled).astype(np.int64), q.astype(np.int64), sigma, True
    # no exact scale: a relaxation (sizes down, capacities up), see the module docstring
    sigma = 2.0 ** math.floor(math.log2(MAX_SCALED_CAPACITY / qmax))
    return np.floor(size * sigma).astype(np.int64), np.ceil(capacity * sigma).astype(np.int64), sigma, False


def capacity_rows(inst: Instance, pairs: Any) -> tuple[list[tuple[np.ndarray, np.ndarray, int]], dict[str, Any]]:
    """Integer capacity rows ``(pair indices, coefficients, rhs)`` for servers that can overflow.

    Exactly scaled rows are divided by the gcd of their coefficients (equal sizes become 1);
    without an exact scale every row is a relaxation (see the module docstring).
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


def _new_model(inst: Instance, ex: Extra | None, formulation: str) -> tuple[Extra, Any, list[Any], dict[str, Any]]:
    """``(ex, model, x, info)``: a CP-SAT model with a binary per kept pair of ``ex`` (no
    strengthening when None) and the capacity rows; ``info`` describes their scaling."""
    from ortools.sat.python import cp_model

    ex = plain_extra(inst, formulation) if ex is None else ex
    cp = cp_model.CpModel()
    x = [cp.new_bool_var(f"x{i}") for i in range(len(ex.pairs.server))]
    rows, info = capacity_rows(inst, ex.pairs)
    for idx, coef, rhs in rows:
        cp.add(sum(int(c) * x[i] for i, c in zip(idx, coef)) <= rhs)
    return ex, cp, x, info


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
        for sign, bound in ((1, ub), (-1, lb)):
            if not math.isfinite(bound):
                continue
            # <= ub: floor the coefficients, ceil the bound; >= lb: ceil and floor (sign -1)
            ci = sign * np.floor(sign * coefs * lam + 1e-9 * integral).astype(np.int64)
            rhs = sign * math.ceil(sign * bound * lam - 1e-9 * integral)
            expr = sum(int(c) * v for (v, _), c in zip(terms[r], ci) if c)
            cp.add(expr <= rhs if sign > 0 else expr >= rhs)
    return {"extra_rows": n, "extra_rows_rounded": rounded}


def _float_noise(inst: Instance) -> float:
    """Rounding of evaluating a latency of ``inst`` in doubles (a few units in the last place)."""
    return 1e-14 * max(1.0, inst.empty_latency)


def _target(inst: Instance) -> float:
    """Target objective rounding error of ``inst`` (:data:`TARGET_REL_ERROR` of the trivial gain bound)."""
    return TARGET_REL_ERROR * max(trivial_gain_bound(inst), 1e-12 * max(1.0, inst.empty_latency))


def build_cover_cp(inst: Instance, ex: Extra | None = None) -> _Model:
    """CP-SAT model of F-cover (see the module docstring); ``ex``: strengthenings."""
    ex, cp, x, info = _new_model(inst, ex, "cover")
    pairs, cs = ex.pairs, ex.cs
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
    wt, omega, eps = scale_weights(cs.a_weight, np.ones(len(a)), _target(inst))
    cp.maximize(sum(int(wi) * ai for wi, ai in zip(wt, a) if wi))
    info.update(objective_scale=omega, a_vars=len(a), c_vars=len(c))
    return _Model(cp, x, pairs, "max", omega, 0.0, eps + _float_noise(inst), info)


def build_k1_cp(inst: Instance, ex: Extra | None = None) -> _Model:
    """CP-SAT model of F-k1 (see the module docstring); ``ex``: strengthenings."""
    ex, cp, x, info = _new_model(inst, ex, "k1")
    pairs = ex.pairs
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
    wt, omega, eps = scale_weights(w, np.ones(len(y)), _target(inst))
    cp.maximize(sum(int(wi) * yi for wi, yi in zip(wt, y) if wi))
    info.update(objective_scale=omega)
    return _Model(cp, x, pairs, "max", omega, 0.0, eps + _float_noise(inst), info)


def build_assign_cp(inst: Instance, ex: Extra | None = None) -> _Model:
    """CP-SAT model of F-assign with min/max equalities (see the module docstring); ``ex``: strengthenings."""
    ex, cp, x, info = _new_model(inst, ex, "assign")
    pairs = ex.pairs
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
    return _Model(cp, x, pairs, "min", pi_scale * lam, const, eps_w + eps_t + _float_noise(inst), info)


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


def repair(inst: Instance, x: np.ndarray) -> tuple[np.ndarray, int]:
    """``x`` made feasible by dropping, on each overflowing server, the cached expert whose removal
    costs least gain until it fits; returns the placement and the number dropped."""
    x = np.asarray(x, bool).copy()
    dropped = 0
    while True:
        over = np.flatnonzero(server_load(inst, x) > inst.capacity * (1 + CAPACITY_RTOL))
        if len(over) == 0:
            return x, dropped
        n = int(over[0])
        best, best_gain = -1, -np.inf
        for g in np.flatnonzero(x[n]):
            x[n, g] = False
            v = gain(inst, x)
            x[n, g] = True
            if v > best_gain:
                best, best_gain = int(g), v
        x[n, best] = False
        dropped += 1


class CpsatBackend:
    """``cpsat`` for :func:`moebench.exact.driver.run_exact`: the integer-scaled CP-SAT models."""

    profile_kind = "cpsat"

    def build(self, inst: Instance, opt: Resolved, ex: Extra) -> _Model:
        """The CP-SAT model of ``opt.formulation`` with the strengthenings ``ex`` (and its start as a hint).

        Raises
        ------
        UnavailableError
            When OR-Tools is not installed.
        """
        try:
            import ortools.sat.python.cp_model  # noqa: F401
        except ImportError as exc:  # pragma: no cover - ortools is a dependency
            raise UnavailableError(f"OR-Tools is not installed: {exc}") from None
        model = BUILDERS[opt.formulation](inst, ex)
        if ex.start is not None:  # hint: the feasible placement found by the strengthening ``profile``
            for var, val in zip(model.x, ex.start[model.pairs.server, model.pairs.expert]):
                model.cp.add_hint(var, bool(val))
        return model

    def solve(
        self, model: _Model, inst: Instance, opt: Resolved, req: SolveRequest, limit: float | None, stream: Stream
    ) -> SolverResult:
        """Solve with CP-SAT; its bound counts only where the capacities are exact (module docstring)."""
        from ortools.sat.python import cp_model

        solver = cp_model.CpSolver()
        params: dict[str, Any] = {
            "num_workers": opt.threads,
            "random_seed": int(req.seed) % 2147483647,
            "relative_gap_limit": opt.mip_rel_gap,
            **opt.solver_options,
        }
        if opt.mip_abs_gap is not None:
            params["absolute_gap_limit"] = opt.mip_abs_gap * model.omega
        if limit is not None:
            params["max_time_in_seconds"] = limit  # driver.solver_time_limit: >= 0.05, counts the build
        for key, val in params.items():
            try:
                if isinstance(val, list):  # repeated field (e.g. subsolvers) of fresh, empty parameters
                    getattr(solver.parameters, key).extend(val)
                else:
                    setattr(solver.parameters, key, val)
            except (AttributeError, TypeError, ValueError) as exc:
                raise InputError(f"CP-SAT rejected parameter {key}={val!r}: {exc}", where="solver option") from None
        exact = bool(model.info.get("capacity_exact", True))  # else the rows are a relaxation
        pairs = model.pairs

        def decode(values: list[bool]) -> np.ndarray:
            x = empty_placement(inst)
            on = np.asarray(values, bool)
            x[pairs.server[on], pairs.expert[on]] = True
            return x

        def safe(raw: float) -> float | None:
            return gain_bound(model, inst, raw) if math.isfinite(raw) else None

        class Relay(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(self) -> None:
                x = decode([self.boolean_value(v) for v in model.x])
                stream(x if exact else repair(inst, x)[0], safe(self.best_objective_bound))

        t1 = time.perf_counter()
        status = solver.solve(model.cp, Relay() if stream.active else None)
        solve_time = time.perf_counter() - t1
        name = solver.status_name(status)
        has = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
        info = {
            **model.info,
            "rounding_error_bound": model.eps,
            "cpsat_status": name,
            "objective_value": solver.objective_value if has else None,
            "best_objective_bound": solver.best_objective_bound if has else None,
            "wall_time": solver.wall_time,
        }
        common: dict[str, Any] = dict(
            native_status=name,
            optimal=status == cp_model.OPTIMAL,
            time_limit=status in (cp_model.FEASIBLE, cp_model.UNKNOWN),
            infeasible=status == cp_model.INFEASIBLE,
            solve_time=solve_time,
            solver="cp-sat",
            version=version(),
            options={"cpsat_parameters": params},
            info=info,
        )
        if not has:
            return SolverResult(error=f"CP-SAT: {name}", **common)
        values = [solver.boolean_value(v) for v in model.x]
        objective = solver.objective_value
        if status == cp_model.FEASIBLE:
            # Every model ties its auxiliaries to x, yet in isolated (child-process) runs stopped
            # by the time limit F-assign's incumbent objective exceeded its placement's scaled
            # latency by ~0.1%. As for HiGHS, re-solve with x fixed and report that objective.
            objective = _polish(model, values, objective, info)
        x, dropped = (decode(values), 0) if exact else repair(inst, decode(values))
        latency = scaled_latency(model, inst, objective)
        if dropped:  # the relaxed capacities let CP-SAT overfill a server: no longer its own solution
            info["repaired"] = f"{dropped} cached expert(s) dropped to fit the true capacities"
            common["optimal"] = False
            latency = None
        return SolverResult(placement=x, solver_latency=latency, bound=safe(solver.best_objective_bound), **common)
