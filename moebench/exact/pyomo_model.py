"""``milp-pyomo``: readable Pyomo models of F-assign, F-cover and F-k1 (SPEC section 3).

One builder per formulation, written constraint by constraint as in the SPEC so that the model
can be read (``model.pprint()``) or written to an LP/MPS file and handed to any solver. They use
the same reductions and index sets as :mod:`moebench.exact.formulations` (kept pairs, per-layer
levels), so the Pyomo and the highspy models have identical optima; the highspy path exists
because building large Pyomo models is slow (benchmarks/exact_scaling.py measures by how much).

Solving goes through Pyomo's current solver interface
(``pyomo.contrib.solver.common.factory.SolverFactory``, HiGHS by default). Another solver is
named with the ``solver`` option; names the new interface does not know are looked up in the
legacy ``pyomo.environ.SolverFactory``. A solver that is not installed gives status
``unavailable``. Pyomo is imported only inside :class:`PyomoBackend`, the module's part of the
shared driver (:mod:`moebench.exact.driver`).

Objectives are shifted and scaled as in :mod:`moebench.exact.formulations`: ``latency`` is
``scale * (Lat - Lat(empty))`` and ``gain`` is ``scale * R``, with ``scale`` a power of two
(:func:`~moebench.exact.formulations.objective_scale`), so that the solver's absolute tolerances
stay far below the gain; every bound is widened by the solver's tolerances
(:func:`solver_tolerances`, docs/tolerances.md).

When the solver stops before proving optimality with zero gap, the incumbent may carry slack
(see :mod:`moebench.exact.highs`), so the model is solved once more with the placement binaries
fixed and that objective is reported as the solver's latency.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from moebench.errors import UnavailableError
from moebench.evaluate import empty_placement
from moebench.exact.driver import Resolved, SolverResult, Stream
from moebench.exact.formulations import Extra, capacity_terms, objective_scale, plain_extra
from moebench.exact.highs import bound_slack
from moebench.instance import Instance
from moebench.methods import SolveRequest


def _group(keys: np.ndarray, values: np.ndarray) -> dict[int, list[int]]:
    """``values`` grouped by ``keys`` (in their order)."""
    out: dict[int, list[int]] = {}
    for k, v in zip(keys.tolist(), values.tolist()):
        out.setdefault(k, []).append(v)
    return out


def _capacity(pyo: Any, m: Any, inst: Instance, pairs: Any, slot: float | None = None) -> None:
    """Capacity rows (only for servers whose kept pairs could overflow them); in expert counts
    ``<= floor(Q / s)`` with the strengthening ``slots`` (``slot`` = the common size)."""
    coef, cap, binding = capacity_terms(inst, pairs, slot)
    m.SERVERS = pyo.Set(initialize=[int(n) for n in binding])
    by_server = _group(pairs.server, np.arange(len(pairs.server)))
    m.capacity = pyo.Constraint(
        m.SERVERS,
        rule=lambda m, n: sum(float(coef[i]) * m.x[n, int(pairs.expert[i])] for i in by_server[n]) <= float(cap[n]),
    )


def _extra(pyo: Any, m: Any, ex: Extra, a: Any = None) -> None:
    """The strengthenings' rows as ``m.strengthening`` (a ConstraintList)."""
    arr = ex.arrays()
    m.strengthening = pyo.ConstraintList()
    n = len(arr["lb"])
    terms: list[list[Any]] = [[] for _ in range(n)]
    p = ex.pairs
    for r, i, c in zip(arr["x_row"].tolist(), arr["x_pair"].tolist(), arr["x_coef"].tolist()):
        terms[r].append(c * m.x[int(p.server[i]), int(p.expert[i])])
    for r, j, c in zip(arr["a_row"].tolist(), arr["a_idx"].tolist(), arr["a_coef"].tolist()):
        terms[r].append(c * a[j])
    for r in range(n):
        lb, ub = float(arr["lb"][r]), float(arr["ub"][r])
        expr = sum(terms[r])
        m.strengthening.add((None if not np.isfinite(lb) else lb, expr, None if not np.isfinite(ub) else ub))


def _assignment(pyo: Any, inst: Instance, ex: Extra, name: str, t: bool = False) -> tuple[Any, dict[int, list[int]]]:
    """The model ``name`` with what F-assign and F-k1 share: x, y (and F-assign's t), y <= x,
    sum_n y[n, g] <= 1 and the capacity rows; also the servers of every candidate expert."""
    pairs = ex.pairs
    servers_of = _group(pairs.expert, pairs.server)
    m = pyo.ConcreteModel(name=f"{name} {inst.name}")
    m.PAIRS = pyo.Set(initialize=list(zip(pairs.server.tolist(), pairs.expert.tolist())), dimen=2)
    m.CAND = pyo.Set(initialize=pairs.cand.tolist())
    m.x = pyo.Var(m.PAIRS, within=pyo.Binary)
    m.y = pyo.Var(m.PAIRS, bounds=(0, 1))
    if t:
        m.t = pyo.Var(m.CAND, bounds=lambda m, g: (float(pairs.best[g]), float(inst.fallback[g])))
    _capacity(pyo, m, inst, pairs, ex.slot_size)
    m.serve_if_cached = pyo.Constraint(m.PAIRS, rule=lambda m, n, g: m.y[n, g] <= m.x[n, g])
    m.one_server = pyo.Constraint(m.CAND, rule=lambda m, g: sum(m.y[n, g] for n in servers_of[g]) <= 1)
    return m, servers_of


def build_assign_pyomo(inst: Instance, ex: Extra | None = None, scale: float = 1.0) -> Any:
    """F-assign: min sum_S pi_S z_S with y <= x, sum_n y <= 1, t = T0 - sum (T0 - T) y, z >= t.

    The objective ``latency`` is ``scale * (Lat - Lat(empty))`` (module docstring).
    """
    import pyomo.environ as pyo

    ex = plain_extra(inst, "assign") if ex is None else ex
    pairs = ex.pairs
    T, T0 = inst.latency, inst.fallback
    m, servers_of = _assignment(pyo, inst, ex, "F-assign", t=True)
    m.expert_latency = pyo.Constraint(
        m.CAND,
        rule=lambda m, g: m.t[g] + sum(float(T0[g] - T[n, g]) * m.y[n, g] for n in servers_of[g]) == float(T0[g]),
    )
    is_cand = np.zeros(inst.G, bool)
    is_cand[pairs.cand] = True
    zsets = [s for s in range(inst.M) if inst.probs[s] > 0 and is_cand[inst.sets[s]].any()]
    const = float(sum(inst.probs[s] * inst.base_set_latency[s] for s in set(range(inst.M)) - set(zsets)))
    m.SETS = pyo.Set(initialize=zsets)
    z_lb = np.zeros(inst.M) if ex.z_lb is None else ex.z_lb
    m.z = pyo.Var(m.SETS, bounds=lambda m, s: (float(z_lb[s]), float(inst.base_set_latency[s])))
    m.SET_MEMBERS = pyo.Set(initialize=[(s, int(g)) for s in zsets for g in inst.sets[s]], dimen=2)
    m.set_latency = pyo.Constraint(
        m.SET_MEMBERS, rule=lambda m, s, g: m.z[s] >= (m.t[g] if is_cand[g] else float(T0[g]))
    )
    lat = const - inst.empty_latency + sum(float(inst.probs[s]) * m.z[s] for s in zsets)
    m.latency = pyo.Objective(expr=scale * lat, sense=pyo.minimize)
    _extra(pyo, m, ex)
    m.SENSE, m.SCALE = "min", scale
    return m


def build_k1_pyomo(inst: Instance, ex: Extra | None = None, scale: float = 1.0) -> Any:
    """F-k1 (K = 1): min sum_g p_g T0_g - sum p_g (T0_g - T[n,g]) y[n,g], y <= x, sum_n y <= 1.

    The objective ``latency`` is ``scale * (Lat - Lat(empty))`` (module docstring).
    """
    import pyomo.environ as pyo

    ex = plain_extra(inst, "k1") if ex is None else ex
    p, T, T0 = inst.marginals, inst.latency, inst.fallback
    m, _ = _assignment(pyo, inst, ex, "F-k1")
    saving = sum(float(p[g] * (T0[g] - T[n, g])) * m.y[n, g] for n, g in m.PAIRS)
    m.latency = pyo.Objective(expr=scale * (float(p @ T0) - inst.empty_latency - saving), sense=pyo.minimize)
    _extra(pyo, m, ex)
    m.SENSE, m.SCALE = "min", scale
    return m


def build_cover_pyomo(inst: Instance, ex: Extra | None = None, scale: float = 1.0) -> Any:
    """F-cover: max sum pi_S (v_{k+1} - v_k) a[k,S], a[k,S] <= c[k,g] <= sum_{n: T <= v_k} x[n,g].

    The objective ``gain`` is ``scale * R`` (module docstring).
    """
    import pyomo.environ as pyo

    ex = plain_extra(inst, "cover") if ex is None else ex
    pairs, cs = ex.pairs, ex.cs
    fast: dict[int, list[tuple[int, int]]] = {}
    for ci, pi in zip(cs.cx_c.tolist(), cs.cx_pair.tolist()):
        fast.setdefault(ci, []).append((int(pairs.server[pi]), int(pairs.expert[pi])))
    m = pyo.ConcreteModel(name=f"F-cover {inst.name}")
    m.PAIRS = pyo.Set(initialize=list(zip(pairs.server.tolist(), pairs.expert.tolist())), dimen=2)
    # c[i] stands for c[k, g] with (k, g) = (c_level[i], c_expert[i]); a[j] for a[k, S]
    m.C = pyo.RangeSet(0, len(cs.c_expert) - 1)
    m.A = pyo.RangeSet(0, len(cs.a_set) - 1)
    m.x = pyo.Var(m.PAIRS, within=pyo.Binary)
    m.c = pyo.Var(m.C, bounds=(0, 1))
    m.a = pyo.Var(m.A, bounds=(0, 1))
    _capacity(pyo, m, inst, pairs, ex.slot_size)
    m.available_within_level = pyo.Constraint(m.C, rule=lambda m, i: m.c[i] <= sum(m.x[n, g] for n, g in fast[i]))
    m.AC = pyo.Set(initialize=list(zip(cs.ac_a.tolist(), cs.ac_c.tolist())), dimen=2)
    m.set_covered = pyo.Constraint(m.AC, rule=lambda m, j, i: m.a[j] <= m.c[i])
    for j in ex.a_zero.tolist():
        m.a[j].fix(0.0)
    _extra(pyo, m, ex, m.a)
    m.gain = pyo.Objective(expr=scale * sum(float(w) * m.a[j] for j, w in enumerate(cs.a_weight)), sense=pyo.maximize)
    m.SENSE, m.SCALE = "max", scale
    return m


BUILDERS = {"assign": build_assign_pyomo, "cover": build_cover_pyomo, "k1": build_k1_pyomo}


def _solver(name: str) -> tuple[Any, bool]:
    """(solver, uses the new interface); raises UnavailableError when it is not installed."""
    import pyomo.environ as pyo
    from pyomo.contrib.solver.common.factory import SolverFactory

    try:
        s = SolverFactory(name)
    except Exception:
        s = None
    if s is not None:
        try:
            ok = bool(s.available())
        except Exception:
            ok = False
        if ok:
            return s, True
        raise UnavailableError(f"Pyomo solver {name!r} is not available")
    try:
        legacy = pyo.SolverFactory(name)
        ok = legacy is not None and bool(legacy.available(exception_flag=False))
    except Exception:
        ok = False
    if not ok:
        raise UnavailableError(f"Pyomo solver {name!r} is not available (neither Pyomo interface finds it)")
    return legacy, False


def _objective_value(m: Any) -> float:
    import pyomo.environ as pyo

    obj = m.latency if m.SENSE == "min" else m.gain
    return float(pyo.value(obj))


def _run(solver: Any, new: bool, m: Any, opt: Resolved, req: SolveRequest, limit: float | None) -> dict:
    """One solve; returns status flags, objective, bound (in objective units) and solution availability."""

    if new:
        from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition

        kw: dict[str, Any] = {
            "raise_exception_on_nonoptimal_result": False,
            "load_solutions": False,
            "rel_gap": opt.mip_rel_gap,
            "threads": opt.threads,
        }
        if limit is not None:
            kw["time_limit"] = limit  # driver.solver_time_limit: >= 0.05
        if opt.solver == "highs":
            from moebench.exact.highs import prepare_threads

            prepare_threads(opt.threads)
            extra = {"random_seed": int(req.seed) % 2147483647, **opt.solver_options}
            if opt.mip_abs_gap is not None:
                extra["mip_abs_gap"] = opt.mip_abs_gap
            kw["solver_options"] = extra
        res = solver.solve(m, **kw)
        has = res.solution_status in (SolutionStatus.feasible, SolutionStatus.optimal)
        if has:
            res.solution_loader.load_vars()
        tc, tcs = res.termination_condition, TerminationCondition
        bound = res.objective_bound
        return {
            "has": has,
            "optimal": tc == tcs.convergenceCriteriaSatisfied,
            "time_limit": tc in (tcs.maxTimeLimit, tcs.iterationLimit, tcs.interrupted),
            "infeasible": tc in (tcs.provenInfeasible, tcs.infeasibleOrUnbounded),
            "objective": res.incumbent_objective,
            "bound": None if bound is None or not np.isfinite(bound) else float(bound),
            "termination": str(tc),
        }
    # legacy interface (other solvers): time limit and gap through generic names where known
    res = solver.solve(m, load_solutions=False, tee=False)
    tc = str(res.solver.termination_condition)
    has = len(res.solution) > 0
    if has:
        m.solutions.load_from(res)
    lb = getattr(res.problem, "lower_bound", None)
    ub = getattr(res.problem, "upper_bound", None)
    bound = lb if m.SENSE == "min" else ub
    return {
        "has": has,
        "optimal": tc == "optimal",
        "time_limit": tc in ("maxTimeLimit", "maxIterations"),
        "infeasible": tc == "infeasible",
        "objective": _objective_value(m) if has else None,
        "bound": float(bound) if bound is not None and np.isfinite(float(bound)) else None,
        "termination": tc,
    }


#: Tolerances assumed for Pyomo solvers other than HiGHS (absolute, objective units): moebench
#: cannot read them, so it assumes common defaults (docs/tolerances.md).
GENERIC_TOLERANCES = {"mip_feasibility_tolerance": 1e-6, "dual_feasibility_tolerance": 1e-6}


def solver_tolerances(opt: Resolved, scale: float) -> dict[str, float]:
    """The tolerances that widen the solver's bound (see :func:`moebench.exact.highs.bound_slack`):
    HiGHS's defaults (or the profile's values) for ``highs``, :data:`GENERIC_TOLERANCES` otherwise."""
    o = opt.solver_options
    if opt.solver == "highs":
        feas = float(o.get("mip_feasibility_tolerance", 1e-6))
        dual = float(o.get("dual_feasibility_tolerance", 1e-7))
        abs_gap = 1e-6 if opt.mip_abs_gap is None else opt.mip_abs_gap * scale
    else:
        feas, dual = GENERIC_TOLERANCES["mip_feasibility_tolerance"], GENERIC_TOLERANCES["dual_feasibility_tolerance"]
        abs_gap = 1e-6 if opt.mip_abs_gap is None else max(opt.mip_abs_gap * scale, 1e-6)
    return {
        "mip_abs_gap": abs_gap,
        "mip_rel_gap": opt.mip_rel_gap,
        "mip_feasibility_tolerance": feas,
        "dual_feasibility_tolerance": dual,
    }


class PyomoBackend:
    """``milp-pyomo`` for :func:`moebench.exact.driver.run_exact`: the Pyomo models, objective scaled."""

    profile_kind = "highs"

    def build(self, inst: Instance, opt: Resolved, ex: Extra) -> Any:
        """The Pyomo model of ``opt.formulation`` with the strengthenings ``ex``.

        Raises
        ------
        UnavailableError
            When Pyomo or the solver is not installed.
        """
        try:
            import pyomo.environ  # noqa: F401  (fills the solver factories)
        except ImportError as exc:
            raise UnavailableError(f"Pyomo is not installed: {exc}") from None
        _solver(opt.solver)  # unavailable before any work
        return BUILDERS[opt.formulation](inst, ex, objective_scale(inst))

    def solve(
        self, m: Any, inst: Instance, opt: Resolved, req: SolveRequest, limit: float | None, stream: Stream
    ) -> SolverResult:
        """Solve with ``opt.solver``; re-solve with the binaries fixed when the incumbent may carry slack."""
        import pyomo
        import pyomo.environ as pyo

        solver, new = _solver(opt.solver)
        t1 = time.perf_counter()
        if m.nconstraints() == 0:
            # nothing can be cached usefully: the objective is a constant and solvers reject
            # empty models, so this is solved here
            for v in m.x.values():
                v.set_value(0)
            val = _objective_value(m)
            r = {"has": True, "optimal": True, "time_limit": False, "infeasible": False}
            r.update(objective=val, bound=val, termination="trivial (no constraints)")
        else:
            r = _run(solver, new, m, opt, req, limit)
        version = solver.version() if new else getattr(solver, "version", lambda: None)()
        tol = solver_tolerances(opt, m.SCALE)
        info: dict[str, Any] = {
            "termination": r["termination"],
            "mip_objective": r["objective"],
            "objective_scale": m.SCALE,
            "tolerances": tol,
        }
        common: dict[str, Any] = dict(
            native_status=r["termination"],
            optimal=bool(r["optimal"]),
            time_limit=bool(r["time_limit"]),
            infeasible=bool(r["infeasible"]),
            solver=f"pyomo/{opt.solver}",
            version=f"pyomo {pyomo.version.version}; {opt.solver} {version}",
            options={"solver": opt.solver},
            info=info,
        )
        bound = None
        if r["bound"] is not None:
            raw = float(r["bound"])
            bound = _gain(m, raw) + (0.0 if r["termination"].startswith("trivial") else bound_slack(tol, raw) / m.SCALE)
        if not r["has"]:
            err = None if r["time_limit"] else f"{opt.solver}: {r['termination']}"
            return SolverResult(bound=bound, solve_time=time.perf_counter() - t1, error=err, **common)
        xval = {k: float(pyo.value(v, exception=False) or 0.0) for k, v in m.x.items()}
        x = empty_placement(inst)
        for (n, g), v in xval.items():
            x[n, g] = v > 0.5
        objective = float(r["objective"]) if r["objective"] is not None else _objective_value(m)
        tight = r["termination"].startswith("trivial") or (
            r["optimal"] and opt.mip_rel_gap == 0 and (opt.mip_abs_gap or 0) <= 1e-9
        )
        if not tight and len(xval):
            # remove slack: fix the binaries and solve again (see the module docstring)
            for k, v in m.x.items():
                v.fix(round(xval[k]))
            r2 = _run(solver, new, m, opt, req, None)
            if r2["has"] and r2["objective"] is not None:
                objective = float(r2["objective"])
                info["polished"] = True
        return SolverResult(
            placement=x,
            solver_latency=inst.empty_latency - _gain(m, objective),
            bound=bound,
            solve_time=time.perf_counter() - t1,
            **common,
        )


def _gain(m: Any, objective: float) -> float:
    """The gain R from a value of the (scaled, shifted) objective of ``m``."""
    v = float(objective) / m.SCALE
    return -v if m.SENSE == "min" else v
