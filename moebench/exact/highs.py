"""``milp-highs``: the sparse formulations passed to HiGHS (highspy) in one ``passModel`` call.

The model arrays come from :mod:`moebench.exact.formulations` (numpy, vectorized); they are
compressed column-wise and handed to ``Highs.passModel(HighsLp)`` at once, the only fast path
(highspy's expression API is as slow as Pyomo on 50k binaries, see NOTES-solver-stack.md).

Incumbents are streamed with the ``kCallbackMipImprovingSolution`` callback to
``SolveRequest.on_incumbent`` together with the current dual bound converted to a gain bound.

The solver's own objective. An incumbent of a MILP may carry slack (e.g. ``z[S]`` above the
latency its placement really has) when the solver stops before proving optimality, or within
its gap tolerance. After the MIP, HiGHS therefore re-solves the model with every placement
binary fixed to the incumbent (an LP that presolve usually removes entirely) and that objective
is the ``solver_latency`` the harness compares with the evaluator. The raw MIP objective is kept
in ``info["mip_objective"]``.

Safe bounds (docs/tolerances.md). HiGHS prunes a node whose bound is within
``mip_feasibility_tolerance`` (or the absolute / relative gap) of the incumbent, and its LP bounds
hold up to its dual feasibility tolerance; all are absolute in objective units. The objective is
therefore scaled (:func:`moebench.exact.formulations.objective_scale`) and every dual bound is
widened by :func:`bound_slack` before it becomes a bound on the gain.

HiGHS keeps its thread pool per process: asking for a different thread count in the same
process silently fails, so the global scheduler is reset whenever the thread count changes.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.exact.driver import Resolved, SolverResult, Stream
from moebench.exact.formulations import BUILDERS, Extra, SparseModel, objective_scale
from moebench.instance import Instance
from moebench.methods import SolveRequest

#: HiGHS options whose values (absolute, objective units) widen every dual bound.
TOLERANCE_OPTIONS = ("mip_abs_gap", "mip_rel_gap", "mip_feasibility_tolerance", "dual_feasibility_tolerance")

_last_threads: int | None = None


@dataclass
class HighsOutcome:
    """What one HiGHS MIP (or LP) run produced.

    Attributes
    ----------
    model_status : str
        HiGHS model status name (e.g. ``"kOptimal"``).
    solution : ndarray or None
        Column values of the incumbent, None when there is none.
    objective : float or None
        The incumbent's objective (``obj @ v + offset``) as HiGHS reports it.
    polished : float or None
        Objective with the binaries fixed to the incumbent (slack removed), see module docstring.
    dual_bound : float or None
        Best bound on the objective.
    gap : float or None
        HiGHS's relative MIP gap.
    solve_time : float
        Seconds in ``run`` (MIP plus polish).
    info : dict
        Node count, iterations, polish time.
    """

    model_status: str
    solution: np.ndarray | None
    objective: float | None
    polished: float | None
    dual_bound: float | None
    gap: float | None
    solve_time: float
    info: dict[str, Any] = field(default_factory=dict)


@functools.cache
def version() -> str:
    """highspy / HiGHS version string."""
    import highspy

    h = highspy.Highs()
    return str(h.version()) if hasattr(h, "version") else "unknown"


def to_highs_lp(model: SparseModel) -> Any:
    """A ``highspy.HighsLp`` holding the continuous part of ``model`` (column-wise, one array per field).

    Integrality is set afterwards by :func:`pass_model` from a numpy array: filling
    ``HighsLp.integrality_`` needs a Python list of enum objects, one per column, which is slow.
    """
    import highspy

    lp = highspy.HighsLp()
    lp.num_col_ = model.n_cols
    lp.num_row_ = model.n_rows
    lp.sense_ = highspy.ObjSense.kMinimize if model.sense == "min" else highspy.ObjSense.kMaximize
    lp.offset_ = model.offset
    lp.col_cost_ = model.obj
    lp.col_lower_ = model.col_lb
    lp.col_upper_ = model.col_ub
    lp.row_lower_ = model.row_lb
    lp.row_upper_ = model.row_ub
    start, index, value = model.csc()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    lp.a_matrix_.num_col_ = model.n_cols
    lp.a_matrix_.num_row_ = model.n_rows
    return lp


def pass_model(h: Any, model: SparseModel, relax: bool = False) -> None:
    """Hand ``model`` to the ``Highs`` object ``h``: one ``passModel`` plus the integrality array."""
    import highspy

    if h.passModel(to_highs_lp(model)) != highspy.HighsStatus.kOk:
        raise RuntimeError("HiGHS rejected the model")
    ints = np.flatnonzero(model.integer).astype(np.int32)
    if not relax and len(ints):
        kind = np.full(len(ints), int(highspy.HighsVarType.kInteger), dtype=np.uint8)
        h.changeColsIntegrality(len(ints), ints, kind)


def prepare_threads(threads: int) -> None:
    """Reset HiGHS's per-process thread pool when the thread count changes (see module docstring)."""
    global _last_threads
    import highspy

    # also on the first call: another module's Highs (an LP bound of the strengthening) may
    # have started the pool with its own count (issue 15: `--profile highs-default` failed)
    if threads != _last_threads:
        highspy.Highs.resetGlobalScheduler(True)
    _last_threads = threads


def _new_highs(threads: int, options: dict[str, Any]) -> Any:
    import highspy

    prepare_threads(threads)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", int(threads))
    for key, val in options.items():
        status = h.setOptionValue(key, val)
        if status != highspy.HighsStatus.kOk:
            raise InputError(f"HiGHS rejected option {key}={val!r}", where="solver option")
    return h


def run_highs(
    model: SparseModel,
    *,
    threads: int = 1,
    time_limit: float | None = None,
    mip_rel_gap: float = 0.0,
    mip_abs_gap: float | None = None,
    seed: int = 0,
    solver_options: dict[str, Any] | None = None,
    on_incumbent: Any = None,
    relax: bool = False,
    start: np.ndarray | None = None,
    tolerances: dict[str, float] | None = None,
) -> HighsOutcome:
    """Solve ``model`` with HiGHS.

    Parameters
    ----------
    model
        The sparse model.
    threads, time_limit, mip_rel_gap, mip_abs_gap, seed
        HiGHS options ``threads``, ``time_limit``, ``mip_rel_gap``, ``mip_abs_gap``, ``random_seed``.
    solver_options
        Further HiGHS options, passed verbatim.
    on_incumbent
        Called as ``on_incumbent(solution_vector, dual_bound)`` on every improving MIP solution.
    relax
        Solve the LP relaxation instead (else the MIP, re-solved with the binaries fixed to the
        incumbent, see the module docstring).
    start
        0/1 values of the placement binaries (``model.x_cols``) of a feasible placement, passed to
        HiGHS as a (partial) starting solution.
    tolerances
        Filled, before the solve starts, with the effective values of :data:`TOLERANCE_OPTIONS`
        (also returned in ``info["tolerances"]``).

    Returns
    -------
    HighsOutcome
    """
    import highspy

    trivial = model.trivial_solution()
    if trivial is not None:
        val = model.objective(trivial)
        flags = {"optimal": True, "time_limit": False, "infeasible": False, "model_status": "trivial (no rows)"}
        flags["tolerances"] = dict.fromkeys(TOLERANCE_OPTIONS, 0.0)
        return HighsOutcome("trivial", trivial, val, val, val, 0.0, 0.0, flags)
    opts: dict[str, Any] = {"random_seed": int(seed) % 2147483647}
    if not relax:
        opts["mip_rel_gap"] = float(mip_rel_gap)
        if mip_abs_gap is not None:
            opts["mip_abs_gap"] = float(mip_abs_gap)
    if time_limit is not None:
        opts["time_limit"] = max(0.01, float(time_limit))
    opts.update(solver_options or {})
    h = _new_highs(threads, opts)
    effective = {k: float(h.getOptionValue(k)[1]) for k in TOLERANCE_OPTIONS}
    if tolerances is not None:
        tolerances.update(effective)
    pass_model(h, model, relax)
    if on_incumbent is not None and not relax:

        def improving(event: Any) -> None:
            sol = np.asarray(event.data_out.mip_solution, float)
            if sol.shape == (model.n_cols,):
                on_incumbent(sol, float(event.data_out.mip_dual_bound))

        h.cbMipImprovingSolution.subscribe(improving)
    if start is not None and not relax and len(model.x_cols):
        h.setSolution(len(model.x_cols), model.x_cols.astype(np.int32), np.asarray(start, np.float64))
    t0 = time.perf_counter()
    h.run()
    ms, status = highspy.HighsModelStatus, h.getModelStatus()
    info = h.getInfo()
    has_sol = int(info.primal_solution_status) == 2  # kSolutionStatusFeasible
    solution = np.asarray(h.getSolution().col_value, float) if has_sol else None
    objective = float(info.objective_function_value) if has_sol else None
    bound = float(info.mip_dual_bound) if not relax else objective
    out = HighsOutcome(
        model_status=h.modelStatusToString(status),
        solution=solution,
        objective=objective,
        polished=objective,
        dual_bound=bound if bound is not None and np.isfinite(bound) else None,
        gap=float(info.mip_gap) if not relax and np.isfinite(info.mip_gap) else None,
        solve_time=0.0,
        info={
            "model_status": h.modelStatusToString(status),
            "mip_node_count": int(info.mip_node_count) if not relax else 0,
            "simplex_iterations": int(info.simplex_iteration_count),
            "status_code": int(status),
            "tolerances": effective,
        },
    )
    if solution is not None and not relax and len(model.x_cols):
        tp = time.perf_counter()
        cols = model.x_cols.astype(np.int32)
        fixed = np.round(solution[model.x_cols])
        h.changeColsBounds(len(cols), cols, fixed, fixed)
        h.changeColsIntegrality(len(cols), cols, np.zeros(len(cols), dtype=np.uint8))  # kContinuous
        h.setOptionValue("time_limit", 1e6)
        h.run()
        if h.getModelStatus() == ms.kOptimal:
            out.polished = float(h.getInfo().objective_function_value)
        else:
            out.info["polish_status"] = h.modelStatusToString(h.getModelStatus())
        out.info["polish_time"] = time.perf_counter() - tp
    out.solve_time = time.perf_counter() - t0
    out.info["optimal"] = status == ms.kOptimal
    out.info["time_limit"] = status in (ms.kTimeLimit, ms.kInterrupt, ms.kIterationLimit, ms.kSolutionLimit)
    out.info["infeasible"] = status == ms.kInfeasible
    return out


def lp_bound(model: SparseModel, threads: int = 1, time_limit: float | None = None) -> float | None:
    """Value of the LP relaxation of ``model`` (``obj @ v + offset``), None if not solved."""
    out = run_highs(model, threads=threads, time_limit=time_limit, relax=True)
    return out.objective if out.model_status == "Optimal" else None


def bound_slack(tolerances: dict[str, float], bound: float) -> float:
    """What HiGHS's tolerances may hide below (max) / above (min) a dual ``bound``, in objective units:
    the absolute and relative gaps and the feasibility tolerance it prunes with, plus its dual
    feasibility tolerance (module docstring)."""
    t = tolerances
    return (
        t["mip_abs_gap"]
        + t["mip_rel_gap"] * abs(bound)
        + t["mip_feasibility_tolerance"]
        + t["dual_feasibility_tolerance"]
    )


def safe_gain_bound(model: SparseModel, tolerances: dict[str, float], bound: float | None) -> float | None:
    """A bound on the optimal gain from HiGHS's dual ``bound``, widened by :func:`bound_slack`."""
    if bound is None or not np.isfinite(bound):
        return None
    return model.gain_bound(bound) + bound_slack(tolerances, bound) / model.scale


class HighsBackend:
    """``milp-highs`` for :func:`moebench.exact.driver.run_exact`: the sparse model, scaled, on highspy."""

    profile_kind = "highs"

    def build(self, inst: Instance, opt: Resolved, ex: Extra) -> SparseModel:
        """The sparse model of ``opt.formulation`` with the strengthenings ``ex``, objective scaled."""
        model = BUILDERS[opt.formulation](inst, ex)
        model.scale_objective(objective_scale(inst))
        return model

    def solve(
        self, model: SparseModel, inst: Instance, opt: Resolved, req: SolveRequest, limit: float | None, stream: Stream
    ) -> SolverResult:
        """Solve with HiGHS, streaming incumbents with widened dual bounds."""
        tol: dict[str, float] = {}
        on_inc = None
        if stream.active:

            def on_inc(v: np.ndarray, dual: float) -> None:
                stream(model.decode(v), safe_gain_bound(model, tol, dual) if tol else None)

        out = run_highs(
            model,
            threads=opt.threads,
            time_limit=limit,
            mip_rel_gap=opt.mip_rel_gap,
            mip_abs_gap=None if opt.mip_abs_gap is None else opt.mip_abs_gap * model.scale,
            seed=req.seed,
            solver_options=opt.solver_options,
            on_incumbent=on_inc,
            start=None if model.start is None else model.encode(model.start),
            tolerances=tol,
        )
        tol = out.info.get("tolerances", tol)
        info = {
            "model": model.stats,
            **out.info,
            "objective_scale": model.scale,
            "mip_objective": out.objective,
            "mip_gap": out.gap,
        }
        return SolverResult(
            native_status=out.model_status,
            optimal=bool(out.info["optimal"]),
            time_limit=bool(out.info["time_limit"]),
            infeasible=bool(out.info["infeasible"]),
            placement=None if out.solution is None else model.decode(out.solution),
            solver_latency=None if out.polished is None else model.latency(out.polished),
            bound=safe_gain_bound(model, tol, out.dual_bound),
            solve_time=out.solve_time,
            solver="highs",
            version=version(),
            info=info,
            error=None if out.solution is not None else f"HiGHS: {out.model_status}",
        )
