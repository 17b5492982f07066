"""Running one task in a child process with its own wall-clock limit.

Every task runs in a fresh child (forkserver where available), so a method that raises,
crashes the interpreter, hangs past its limit or runs out of memory becomes a row with a
status and an error text, and the suite goes on. The child imports the suite's plugin
modules (and those named in ``MOEBENCH_PLUGINS``) before building the method, since
forkserver/spawn children re-import modules and would not see methods registered at run
time. The child side is :func:`moebench.harness._child_main` (incumbent streaming, stdout to
stderr, memory limit); the parent loop mirrors :func:`moebench.harness._solve_in_child`.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

from moebench import harness
from moebench.bench.tasks import Task
from moebench.evaluate import empty_placement
from moebench.instance import Instance
from moebench.methods import Solution, Status

#: Set by an executor that is being interrupted: running children are killed at once (their
#: results are never recorded, since the runner stops reading them).
STOP = threading.Event()


def _child_entry(
    conn: Any,
    paths: list[str],
    plugins: tuple[str, ...],
    name: str,
    inst: Instance,
    time_limit: float | None,
    seed: int,
    opts: dict[str, Any],
    memory_limit_mb: int | None,
) -> None:
    if not os.environ.get("MOEBENCH_CHILD_OUTPUT"):
        # solver banners and logs would garble the progress bar; results come through the pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    # the forkserver may predate the parent's sys.path changes (pytest, PYTHONPATH)
    for p in paths:
        if p not in sys.path:
            sys.path.append(p)
    try:
        from moebench.bench.suite import load_plugins

        load_plugins(plugins)
    except BaseException as exc:
        conn.send(("done", Solution(empty_placement(inst), Status.ERROR, error=f"plugins: {exc}")))
        conn.close()
        return
    harness._child_main(conn, name, inst, time_limit, seed, opts, memory_limit_mb)


def context() -> mp.context.BaseContext:
    """The multiprocessing context of task children (forkserver, preloaded with moebench)."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # only effective before the forkserver starts; children then skip re-importing numpy
        ctx.set_forkserver_preload(["moebench.bench.worker"])
        return ctx
    return mp.get_context("spawn")


def solve_isolated(task: Task) -> Solution:
    """Run the task's method in a child process; kill it at ``time_limit + grace``.

    Returns
    -------
    Solution
        The method's solution, or one with status ``error`` (crash, plugin failure) or
        ``time-limit`` (killed; the last streamed incumbent is kept). The child's stdout and
        stderr go to /dev/null unless the environment variable ``MOEBENCH_CHILD_OUTPUT`` is set.
    """
    inst = task.instance
    ctx = context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child_entry,
        args=(
            child,
            list(sys.path),
            tuple(task.plugins),
            task.method,
            inst,
            task.time_limit,
            task.seed,
            dict(task.options),
            task.memory_limit_mb,
        ),
        daemon=True,
    )
    proc.start()
    child.close()
    deadline = time.monotonic() + task.time_limit + task.grace
    incumbent: tuple[np.ndarray, float | None] | None = None
    result: Solution | None = None
    try:
        while result is None:
            wait = max(0.0, deadline - time.monotonic())
            if not parent.poll(min(wait, 0.5)):
                if time.monotonic() >= deadline or STOP.is_set():
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
        if proc.is_alive():
            proc.terminate()
            proc.join(2)
            if proc.is_alive():
                proc.kill()
        proc.join()
        parent.close()
    if result is not None:
        return result
    timed_out = time.monotonic() >= deadline
    if not timed_out and proc.exitcode not in (None, 0):
        code = proc.exitcode
        why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        if code == -signal.SIGKILL:
            why += " (out of memory?)"
        return Solution(empty_placement(inst), Status.ERROR, error=f"child process died: {why}")
    if not timed_out:
        return Solution(empty_placement(inst), Status.ERROR, error="child process exited without a result")
    limit = f"killed by the runner after {task.time_limit:g} + {task.grace:g} s"
    if incumbent is not None:
        return Solution(incumbent[0], Status.TIME_LIMIT, bound=incumbent[1], error=f"{limit}; best incumbent kept")
    return Solution(empty_placement(inst), Status.TIME_LIMIT, error=f"{limit} without an incumbent")


def execute_task(task: Task, isolate: bool = True) -> dict[str, Any]:
    """Run one task and return its result as a flat dictionary (never raises for method failures).

    Parameters
    ----------
    task
        The task.
    isolate
        Run the method in a child process (always, except where children cannot be started,
        e.g. inside daemonic worker processes; then the run is in-process without a hard kill).

    Returns
    -------
    dict
        The :class:`moebench.harness.Record` fields plus ``method_kind``, ``guarantee_*``,
        ``started_at`` and ``host``.
    """
    import datetime
    import socket

    from moebench.bench.suite import load_plugins
    from moebench.errors import InputError
    from moebench.methods import get_method

    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    inst = task.instance
    extra: dict[str, Any] = {"started_at": started, "host": socket.gethostname()}
    try:
        load_plugins(task.plugins)
        method = get_method(task.method)
    except InputError as exc:
        rec = harness.Record(inst.name, inst.content_hash, task.method, task.seed, Status.ERROR.value, error=str(exc))
        rec.empty_latency = inst.empty_latency
        rec.time_limit = task.time_limit
        return {**rec.to_dict(), **extra, "method_kind": None}
    info = method.info
    g = info.guarantee
    extra.update(
        method_kind=info.kind,
        deterministic=info.deterministic,
        guarantee_ratio=None if g is None else float(g.ratio),
        guarantee_conditions=None if g is None else ";".join(g.conditions),
        guarantee_source=None if g is None else g.source,
        guarantee_applies=None if g is None else bool(g.applies(inst)),
    )
    t0 = time.perf_counter()
    sol: Solution | None = None
    if isolate:
        try:
            sol = solve_isolated(task)
        except AssertionError as exc:  # "daemonic processes are not allowed to have children"
            if "daemonic" not in str(exc):
                raise
    if sol is None:
        sol = harness._solve_guarded(
            method,
            inst,
            harness.SolveRequest(time_limit=task.time_limit, seed=task.seed, options=dict(task.options)),
        )
    wall = time.perf_counter() - t0
    rec = harness.finalize(inst, method.name, sol, seed=task.seed, wall_time=wall, time_limit=task.time_limit)
    rec.method = task.method
    return {**rec.to_dict(), **extra}
