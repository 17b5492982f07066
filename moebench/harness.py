"""Running one method on one instance and recording the result honestly.

:func:`run_method` is the only place where a method's output becomes a :class:`Record`:
it checks the method's assumptions, enforces the wall-clock limit (in a child process when
asked to, since solvers overrun their own limits and some keep per-process state), recomputes
every objective with the evaluator, and turns every failure into a status instead of an
exception.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import resource
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moebench.errors import InputError, NotApplicableError, UnavailableError
from moebench.evaluate import empty_placement, evaluate
from moebench.instance import Instance
from moebench.methods import Method, Solution, SolveRequest, Status, check_conditions, get_method
from moebench.placement import to_triples
from moebench.plugins import import_plugins
from moebench.tolerances import OPTIMAL_RTOL, bound_below, proven

#: A solver's own objective may differ from the evaluator's by this much (relative to
#: max(1, |Lat|)) before the result is declared an error.
OBJECTIVE_RTOL = 1e-6
#: Seconds the harness waits beyond the time limit before killing a child.
DEFAULT_GRACE = 5.0


@dataclass
class Record:
    """The tidy result of one (instance, method, seed) run.

    Objectives (``latency``, ``gain``) are always recomputed by the evaluator from the
    placement; the method's own number is kept beside them as ``solver_latency``.
    ``bound`` is an upper bound on the optimal gain R*, and ``gap`` the relative gap
    ``(bound - gain) / bound`` (0 when the bound is 0). ``wall_time`` is what the run cost the
    caller (child process start and supervision included); ``method_time`` is the wall time of
    the method's own ``solve`` call, measured where it ran: the figure to compare methods by.
    ``method_cpu_time`` is the CPU time of the process during that call (all its threads): on a
    loaded machine it stays close to what the method costs, while wall times grow.
    ``tolerance`` is the relative gain tolerance the status and bound hold to
    (:mod:`moebench.tolerances`; None for heuristics).
    """

    instance: str
    instance_hash: str
    method: str
    seed: int
    status: str
    latency: float | None = None
    gain: float | None = None
    empty_latency: float | None = None
    solver_latency: float | None = None
    bound: float | None = None
    gap: float | None = None
    feasible: bool | None = None
    wall_time: float | None = None
    method_time: float | None = None
    method_cpu_time: float | None = None
    build_time: float | None = None
    solve_time: float | None = None
    time_limit: float | None = None
    solver: str | None = None
    solver_version: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    placement: list[list[int]] = field(default_factory=list)
    tolerance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the ``moebench solve`` output)."""
        return asdict(self)


def _relative_gap(bound: float | None, value: float | None) -> float | None:
    if bound is None or value is None:
        return None
    if bound <= 1e-12:
        return 0.0
    return max(0.0, (bound - value) / bound)


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
        status=Status(sol.status).value,
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
        rec.status = Status.ERROR.value
        rec.error = f"placement has shape {x.shape}, expected {(inst.N, inst.G)}"
        return rec
    ev = evaluate(inst, x)
    rec.latency, rec.gain, rec.feasible = ev.latency, ev.gain, ev.feasible
    rec.placement = to_triples(inst, x)
    rec.gap = _relative_gap(sol.bound, ev.gain)
    tol = OBJECTIVE_RTOL * max(1.0, abs(ev.latency))
    rtol = OPTIMAL_RTOL if sol.tolerance is None else sol.tolerance
    if not ev.feasible:
        rec.status = Status.INVALID.value
        rec.error = "infeasible placement: " + "; ".join(ev.violations)
    elif sol.solver_latency is not None and not (abs(sol.solver_latency - ev.latency) <= tol):
        rec.status = Status.ERROR.value
        rec.error = (
            f"objective mismatch: the solver reports latency {sol.solver_latency!r}, "
            f"the evaluator computes {ev.latency!r} for its placement"
        )
    elif sol.bound is not None and (
        not math.isfinite(sol.bound) or bound_below(sol.bound, ev.gain, inst.empty_latency)
    ):
        rec.status = Status.ERROR.value
        rec.error = (
            f"invalid bound: the claimed upper bound {sol.bound!r} on the gain is below the gain {ev.gain!r} achieved"
        )
    elif (
        status == Status.OPTIMAL and sol.bound is not None and not proven(ev.gain, sol.bound, inst.empty_latency, rtol)
    ):
        # the policy for every method, plugins included: optimal only when its own bound backs it
        rec.status = Status.FEASIBLE.value
        rec.info["not_proven"] = (
            f"{method_name} reports optimal, but its bound {sol.bound!r} exceeds the gain {ev.gain!r} "
            f"by more than the tolerance {rtol:g} (relative)"
        )
    return rec


def _solve_guarded(method: Method, inst: Instance, req: SolveRequest) -> Solution:
    """Call the method, mapping every exception to a status (never raises)."""
    missing = check_conditions(method.info.assumptions, inst)
    if missing:
        return Solution(
            empty_placement(inst), Status.NOT_APPLICABLE, error=f"{method.name} requires: {', '.join(missing)}"
        )
    unknown = sorted(set(req.options) - set(method.options))
    if unknown:
        return Solution(
            empty_placement(inst),
            Status.ERROR,
            error=f"{method.name} does not accept option(s) {', '.join(unknown)}"
            + (f" (accepted: {', '.join(method.options)})" if method.options else ""),
        )
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        sol = method.solve(inst, req)
        sol.info = {**sol.info, "method_time": time.perf_counter() - t0, "method_cpu_time": time.process_time() - c0}
    except NotApplicableError as exc:
        return Solution(empty_placement(inst), Status.NOT_APPLICABLE, error=str(exc))
    except UnavailableError as exc:
        return Solution(empty_placement(inst), Status.UNAVAILABLE, error=str(exc))
    except InputError as exc:
        return Solution(empty_placement(inst), Status.ERROR, error=str(exc))
    except MemoryError:
        return Solution(empty_placement(inst), Status.ERROR, error="out of memory")
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        where = f" ({os.path.basename(tb.filename)}:{tb.lineno})" if tb else ""
        return Solution(empty_placement(inst), Status.ERROR, error=f"{type(exc).__name__}: {exc}{where}")
    return sol


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
        sol = _solve_guarded(m, inst, SolveRequest(time_limit=time_limit, seed=seed, options=opts))
    else:
        sol = solve_in_child(
            m.name, inst, time_limit, seed, opts, grace=grace, memory_limit_mb=memory_limit_mb, plugins=tuple(plugins)
        )
    wall = time.perf_counter() - t0
    return finalize(inst, m.name, sol, seed=seed, wall_time=wall, time_limit=time_limit)


# ---- child-process execution -----------------------------------------------------------
def _child_main(
    conn: Any,
    name: str,
    inst: Instance,
    time_limit: float | None,
    seed: int,
    opts: dict[str, Any],
    memory_limit_mb: int | None,
    paths: tuple[str, ...] = (),
    plugins: tuple[str, ...] = (),
    quiet: bool = False,
) -> None:
    if quiet:  # results come through the pipe; solver logs would garble a progress bar
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    else:
        os.dup2(2, 1)  # solver banners must not pollute the parent's stdout (JSON output)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop us
    for p in paths:  # the forkserver may predate the parent's sys.path changes (pytest, PYTHONPATH)
        if p not in sys.path:
            sys.path.append(p)
    if memory_limit_mb:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def on_incumbent(x: np.ndarray, bound: float | None) -> None:
        conn.send(("incumbent", np.packbits(np.asarray(x, bool)), bound))

    try:
        import_plugins(plugins)
    except BaseException as exc:
        conn.send(
            ("done", Solution(empty_placement(inst), Status.ERROR, error=f"plugins: {type(exc).__name__}: {exc}"))
        )
        conn.close()
        return
    try:
        method = get_method(name)
        req = SolveRequest(time_limit=time_limit, seed=seed, options=opts, on_incumbent=on_incumbent)
        sol = _solve_guarded(method, inst, req)
    except BaseException as exc:
        sol = Solution(empty_placement(inst), Status.ERROR, error=f"{type(exc).__name__}: {exc}")
    conn.send(("done", sol))
    conn.close()


def _context() -> mp.context.BaseContext:
    # forkserver: children do not inherit solver thread pools or locks from the parent, and
    # start from a server that already imported moebench
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["moebench.harness"])
        return ctx
    return mp.get_context("spawn")


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
    """Run method ``name`` in a child process and kill it at ``time_limit + grace``.

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
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    args = (
        child,
        name,
        inst,
        time_limit,
        seed,
        dict(opts or {}),
        memory_limit_mb,
        tuple(sys.path),
        tuple(plugins),
        quiet,
    )
    proc = ctx.Process(target=_child_main, args=args, daemon=True)
    proc.start()
    child.close()
    deadline = None if time_limit is None else time.monotonic() + time_limit + grace
    incumbent: tuple[np.ndarray, float | None] | None = None
    result: Solution | None = None
    try:
        while result is None:
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            if not parent.poll(wait):
                if (deadline is not None and time.monotonic() >= deadline) or (stop is not None and stop.is_set()):
                    break
                if not proc.is_alive() and not parent.poll(0):
                    break
                continue
            try:
                msg = parent.recv()
            except (EOFError, OSError):
                break
            if msg[0] == "incumbent":
                x = np.unpackbits(msg[1], count=inst.N * inst.G).reshape(inst.N, inst.G).astype(bool)
                incumbent = (x, msg[2])
            else:
                result = msg[1]
    finally:
        if result is not None:
            proc.join(2)  # let a finished child exit cleanly (it releases its own resources)
        if proc.is_alive():
            proc.terminate()
            proc.join(2)
            if proc.is_alive():
                proc.kill()
        proc.join()
        parent.close()
    if result is not None:
        return result
    timed_out = deadline is not None and time.monotonic() >= deadline
    if not timed_out and proc.exitcode not in (None, 0):
        code = proc.exitcode
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        if code == -signal.SIGKILL:
            why += " (out of memory?)"
        return Solution(empty_placement(inst), Status.ERROR, error=f"child process died: {why}")
    if not timed_out:
        return Solution(empty_placement(inst), Status.ERROR, error="child process exited without a result")
    limit = f"killed by the {who} after {time_limit:g} + {grace:g} s"
    if incumbent is not None:
        return Solution(incumbent[0], Status.TIME_LIMIT, bound=incumbent[1], error=f"{limit}; best incumbent kept")
    return Solution(empty_placement(inst), Status.TIME_LIMIT, error=f"{limit} without an incumbent")
