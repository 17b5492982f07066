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

HiGHS keeps its thread pool per process: asking for a different thread count in the same
process silently fails, so the global scheduler is reset whenever the thread count changes.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moebench.exact.formulations import SparseModel

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

    if _last_threads is not None and threads != _last_threads:
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
            from moebench.errors import InputError

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
    polish: bool = True,
    start: np.ndarray | None = None,
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
        Solve the LP relaxation instead.
    polish
        Re-solve with the binaries fixed to the incumbent (see the module docstring).
    start
        0/1 values of the placement binaries (``model.x_cols``) of a feasible placement, passed to
        HiGHS as a (partial) starting solution.

    Returns
    -------
    HighsOutcome
    """
    import highspy

    trivial = model.trivial_solution()
    if trivial is not None:
        val = model.objective(trivial)
        flags = {"optimal": True, "time_limit": False, "infeasible": False, "model_status": "trivial (no rows)"}
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
    status = h.getModelStatus()
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
        },
    )
    out.info["status_code"] = int(status)
    if solution is not None and polish and not relax and len(model.x_cols):
        tp = time.perf_counter()
        fixed = np.round(solution[model.x_cols])
        h.changeColsBounds(len(model.x_cols), model.x_cols.astype(np.int32), fixed, fixed)
        cont = np.zeros(len(model.x_cols), dtype=np.uint8)  # kContinuous
        h.changeColsIntegrality(len(model.x_cols), model.x_cols.astype(np.int32), cont)
        h.setOptionValue("time_limit", 1e6)
        h.run()
        pinfo = h.getInfo()
        if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            out.polished = float(pinfo.objective_function_value)
        else:
            out.info["polish_status"] = h.modelStatusToString(h.getModelStatus())
        out.info["polish_time"] = time.perf_counter() - tp
    out.solve_time = time.perf_counter() - t0
    out.info["optimal"] = status == highspy.HighsModelStatus.kOptimal
    out.info["time_limit"] = status in (
        highspy.HighsModelStatus.kTimeLimit,
        highspy.HighsModelStatus.kInterrupt,
        highspy.HighsModelStatus.kIterationLimit,
        highspy.HighsModelStatus.kSolutionLimit,
    )
    out.info["infeasible"] = status == highspy.HighsModelStatus.kInfeasible
    return out


def lp_bound(model: SparseModel, threads: int = 1, time_limit: float | None = None) -> float | None:
    """Value of the LP relaxation of ``model`` (``obj @ v + offset``), None if not solved."""
    out = run_highs(model, threads=threads, time_limit=time_limit, relax=True, polish=False)
    return out.objective if out.model_status == "Optimal" else None
