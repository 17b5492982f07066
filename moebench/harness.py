"""Running one method on one instance and recording the result honestly.

:func:`run_method` is the only place where a method's output becomes a :class:`Record`:
it checks the method's assumptions, enforces the wall-clock limit (in a child process when
asked to, since solvers overrun their own limits and some keep per-process state), recomputes
every objective with the evaluator, and turns every failure into a status instead of an
exception.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from moebench.errors import InputError, NotApplicableError, UnavailableError
from moebench.evaluate import empty_placement, evaluate
from moebench.instance import Instance
from moebench.methods import Method, Solution, SolveRequest, Status, check_conditions, get_method
from moebench.placement import to_triples
from moebench.record import Record, relative_gap
from moebench.registry import import_plugins
from moebench.supervisor import STARTUP_LIMIT, Channel, describe, run_in_child
from moebench.tolerances import OPTIMAL_RTOL, bound_below, proven

#: A solver's own objective may differ from the evaluator's by this much (relative to
#: max(1, |Lat|)) before the result is declared an error.
OBJECTIVE_RTOL = 1e-6
#: Seconds the harness waits beyond the time limit before killing a child.
DEFAULT_GRACE = 5.0


def finalize(
    inst: Instance,
    method_name: str,
    sol: Solution,
    *,
    seed: int,
    wall_time: float,
    time_limit: float | None,
) -> Record:
    """Turn a method's :class:`Solution` into a :class:`Record`, recomputing everything."""
    rec = Record(
        instance=inst.name,
        instance_hash=inst.content_hash,
        method=method_name,
        seed=seed,
        status=Status(sol.status),
        empty_latency=inst.empty_latency,
        solver_latency=sol.solver_latency,
        bound=sol.bound,
        wall_time=wall_time,
        method_time=sol.info.pop("method_time", None) if isinstance(sol.info, dict) else None,
        method_cpu_time=sol.info.pop("method_cpu_time", None) if isinstance(sol.info, dict) else None,
        build_time=sol.build_time,
        solve_time=sol.solve_time,
        time_limit=time_limit,
        solver=sol.solver,
        solver_version=sol.solver_version,
        options=dict(sol.options),
        info=dict(sol.info),
        error=sol.error,
        tolerance=sol.tolerance,
    )
    status = Status(sol.status)
    if not status.has_placement:
        return rec
    x = np.asarray(sol.placement)
    if x.shape != (inst.N, inst.G):
        rec.status = Status.ERROR
        rec.error = f"placement has shape {x.shape}, expected {(inst.N, inst.G)}"
        return rec
    ev = evaluate(inst, x)
    rec.latency, rec.gain, rec.feasible = ev.latency, ev.gain, ev.feasible
    rec.placement = to_triples(inst, x)
    rec.gap = relative_gap(sol.bound, ev.gain)
    tol = OBJECTIVE_RTOL * max(1.0, abs(ev.latency))
    rtol = OPTIMAL_RTOL if sol.tolerance is None else sol.tolerance
    if not ev.feasible:
        rec.status = Status.INVALID
        rec.error = "infeasible placement: " + "; ".join(ev.violations)
    elif sol.solver_latency is not None and not (abs(sol.solver_latency - ev.latency) <= tol):
        rec.status = Status.ERROR
        rec.error = (
            f"objective mismatch: the solver reports latency {sol.solver_latency!r}, "
            f"the evaluator computes {ev.latency!r} for its placement"
        )
    elif sol.bound is not None and (
        not math.isfinite(sol.bound) or bound_below(sol.bound, ev.gain, inst.empty_latency)
    ):
        rec.status = Status.ERROR
        rec.error = (
            f"invalid bound: the claimed upper bound {sol.bound!r} on the gain is below the gain {ev.gain!r} achieved"
        )
    elif (
        status == Status.OPTIMAL and sol.bound is not None and not proven(ev.gain, sol.bound, inst.empty_latency, rtol)
    ):
        # the policy for every method, plugins included: optimal only when its own bound backs it
        rec.status = Status.FEASIBLE
        rec.info["not_proven"] = (
            f"{method_name} reports optimal, but its bound {sol.bound!r} exceeds the gain {ev.gain!r} "
            f"by more than the tolerance {rtol:g} (relative)"
        )
    return rec


def solve_guarded(method: Method, inst: Instance, req: SolveRequest) -> Solution:
    """Call the method, mapping every exception to a status (never raises)."""
    missing = check_conditions(method.info.assumptions, inst)
    if missing:
        return _no_placement(inst, Status.NOT_APPLICABLE, f"{method.name} requires: {', '.join(missing)}")
    unknown = sorted(set(req.options) - set(method.options))
    if unknown:
        accepted = f" (accepted: {', '.join(method.options)})" if method.options else ""
        return _no_placement(
            inst, Status.ERROR, f"{method.name} does not accept option(s) {', '.join(unknown)}{accepted}"
        )
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        sol = method.solve(inst, req)
        sol.info = {**sol.info, "method_time": time.perf_counter() - t0, "method_cpu_time": time.process_time() - c0}
    except NotApplicableError as exc:
        return _no_placement(inst, Status.NOT_APPLICABLE, str(exc))
    except UnavailableError as exc:
        return _no_placement(inst, Status.UNAVAILABLE, str(exc))
    except InputError as exc:
        return _no_placement(inst, Status.ERROR, str(exc))
    except MemoryError:
        return _no_placement(inst, Status.ERROR, "out of memory")
    except Exception as exc:
        return _no_placement(inst, Status.ERROR, describe(exc))
    return sol


def _no_placement(inst: Instance, status: Status, error: str) -> Solution:
    """The empty placement with ``status`` and ``error`` (a run that produced none)."""
    return Solution(empty_placement(inst), status, error=error)


def run_method(
    inst: Instance,
    method: str | Method,
    *,
    time_limit: float | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    isolate: bool | None = None,
    grace: float = DEFAULT_GRACE,
    memory_limit_mb: int | None = None,
    plugins: tuple[str, ...] | list[str] = (),
) -> Record:
    """Run ``method`` on ``inst`` and return its :class:`Record`.

    Parameters
    ----------
    inst
        The instance.
    method
        A method name (``"sgd-levels[dp]+ls"``) or a built :class:`Method`.
    time_limit
        Wall-clock seconds. Methods get it as a hint; with ``isolate`` the harness also kills
        the run at ``time_limit + grace`` and reports the best incumbent streamed so far.
    seed
        Random seed.
    options
        Method options (e.g. ``{"formulation": "cover"}``).
    isolate
        Run in a child process. Default: true for exact methods with a time limit.
    grace
        Seconds beyond ``time_limit`` before the child is killed.
    memory_limit_mb
        Address-space limit of the child (isolated runs only).
    plugins
        Modules an isolated child imports first (methods registered outside the package).

    Returns
    -------
    Record
        Never raises for method failures; raises :class:`InputError` for an unknown name.
    """
    m = get_method(method) if isinstance(method, str) else method
    opts = dict(options or {})
    if isolate is None:
        isolate = m.info.kind == "exact" and time_limit is not None
    t0 = time.perf_counter()
    if not isolate:
        sol = solve_guarded(m, inst, SolveRequest(time_limit=time_limit, seed=seed, options=opts))
    else:
        sol = solve_in_child(
            m.name, inst, time_limit, seed, opts, grace=grace, memory_limit_mb=memory_limit_mb, plugins=tuple(plugins)
        )
    wall = time.perf_counter() - t0
    return finalize(inst, m.name, sol, seed=seed, wall_time=wall, time_limit=time_limit)


# ---- child-process execution -----------------------------------------------------------
def _solve_here(
    channel: Channel,
    name: str,
    inst: Instance,
    time_limit: float | None,
    seed: int,
    opts: dict[str, Any],
    plugins: tuple[str, ...],
) -> Solution:
    """The child's side of :func:`solve_in_child`: build the method and solve, streaming incumbents."""
    try:
        import_plugins(plugins)
    except BaseException as exc:
        return _no_placement(inst, Status.ERROR, f"plugins: {type(exc).__name__}: {exc}")

    def on_incumbent(x: np.ndarray, bound: float | None) -> None:
        channel.send((np.packbits(np.asarray(x, bool)), bound))

    try:
        method = get_method(name)
        req = SolveRequest(time_limit=time_limit, seed=seed, options=opts, on_incumbent=on_incumbent)
        channel.started()
        return solve_guarded(method, inst, req)
    except BaseException as exc:
        return _no_placement(inst, Status.ERROR, f"{type(exc).__name__}: {exc}")


def solve_in_child(
    name: str,
    inst: Instance,
    time_limit: float | None,
    seed: int = 0,
    opts: dict[str, Any] | None = None,
    *,
    grace: float = DEFAULT_GRACE,
    memory_limit_mb: int | None = None,
    plugins: tuple[str, ...] = (),
    quiet: bool = False,
    stop: threading.Event | None = None,
    who: str = "harness",
) -> Solution:
    """Run method ``name`` in a child process (:func:`moebench.supervisor.run_in_child`) and kill
    it at ``time_limit + grace`` seconds after it started.

    Parameters
    ----------
    plugins
        Modules the child imports before building the method (plus ``MOEBENCH_PLUGINS``).
    quiet
        Send the child's stdout and stderr to /dev/null (else its stdout goes to stderr).
    stop
        When set, the child is killed at once (an interrupted suite).
    who
        Named in the time-limit message ("killed by the runner after ...").

    Returns
    -------
    Solution
        The method's own solution; or status ``error`` when the child died or failed to load
        plugins; or ``time-limit`` with the last incumbent streamed through
        ``SolveRequest.on_incumbent`` (the empty placement when none came).
    """
    incumbent: list[tuple[np.ndarray, float | None]] = []

    def on_message(msg: tuple[np.ndarray, float | None]) -> None:
        x = np.unpackbits(msg[0], count=inst.N * inst.G).reshape(inst.N, inst.G).astype(bool)
        incumbent[:] = [(x, msg[1])]

    out = run_in_child(
        _solve_here,
        (name, inst, time_limit, seed, dict(opts or {}), tuple(plugins)),
        limit=None if time_limit is None else time_limit + grace,
        on_message=on_message,
        stop=stop,
        quiet=quiet,
        memory_limit_mb=memory_limit_mb,
    )
    if out.done:
        return out.result
    if out.failure is not None:
        return _no_placement(inst, Status.ERROR, out.failure)
    if not out.timed_out:
        return _no_placement(inst, Status.ERROR, out.death())
    if not out.started:
        return _no_placement(
            inst, Status.ERROR, f"killed by the {who}: the child did not start within {STARTUP_LIMIT:g} s"
        )
    limit = f"killed by the {who} after {time_limit:g} + {grace:g} s"
    if incumbent:
        x, bound = incumbent[0]
        return Solution(x, Status.TIME_LIMIT, bound=bound, error=f"{limit}; best incumbent kept")
    return _no_placement(inst, Status.TIME_LIMIT, f"{limit} without an incumbent")
