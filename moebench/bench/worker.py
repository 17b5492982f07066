"""Running one task (a method run or a stress search) in a child process with its own limit.

Every task runs in a fresh child (forkserver where available), so a method that raises,
crashes the interpreter, hangs past its limit or runs out of memory becomes a row with a
status and an error text, and the suite goes on. The child imports the suite's plugin
modules (and those named in ``MOEBENCH_PLUGINS``) before building the method, since
forkserver/spawn children re-import modules and would not see methods registered at run
time. Children are supervised by :func:`moebench.supervisor.run_in_child` (incumbent
streaming, output redirection, memory limit, hard kill) for both kinds of task.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import time
from typing import Any

from moebench import harness
from moebench.bench.holdout import run_columns
from moebench.bench.stress_tasks import run_stress_task, stress_row
from moebench.bench.suite import load_plugins
from moebench.bench.tasks import Task, TaskResult
from moebench.errors import InputError
from moebench.methods import METHODS, Solution, SolveRequest, get_method
from moebench.record import Record
from moebench.status import Status

#: Set by an executor that is being interrupted: running children are killed at once (their
#: results are never recorded, since the runner stops reading them).
STOP = threading.Event()


def _quiet() -> bool:
    # children's stdout and stderr go to /dev/null unless MOEBENCH_CHILD_OUTPUT is set
    return not os.environ.get("MOEBENCH_CHILD_OUTPUT")


def execute_task(task: Task, isolate: bool = True) -> TaskResult:
    """Run one task and return its result (never raises for method or search failures).

    Parameters
    ----------
    task
        The task.
    isolate
        Run the method in a child process (always, except where children cannot be started,
        e.g. inside daemonic worker processes; then the run is in-process without a hard kill).

    Returns
    -------
    TaskResult
        The row: the :class:`moebench.record.Record` fields plus ``method_kind``,
        ``guarantee_*``, ``started_at`` and ``host`` (a method run), or the stress columns
        (a search, with its worst instance).
    """
    extra = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
    }
    try:
        # every registry filled before the first lookup (a Dask worker runs tasks in threads)
        METHODS.fill()
        load_plugins(task.plugins)
        if task.kind == "stress":
            res = run_stress_task(task, STOP, _quiet())
            return TaskResult({**res.row, **extra}, res.instance)
        method = get_method(task.method)
    except InputError as exc:
        return TaskResult({**failed_row(task, str(exc)), **extra})
    inst = task.instance
    assert inst is not None
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
    if isolate:  # in a child importing the task's plugins, killed at time_limit + grace
        try:
            sol = harness.solve_in_child(
                task.method,
                inst,
                task.time_limit,
                task.seed,
                dict(task.options),
                grace=task.grace,
                memory_limit_mb=task.memory_limit_mb,
                plugins=tuple(task.plugins),
                quiet=_quiet(),
                stop=STOP,
                who="runner",
            )
        except AssertionError as exc:  # "daemonic processes are not allowed to have children"
            if "daemonic" not in str(exc):
                raise
    if sol is None:
        sol = harness.solve_guarded(
            method, inst, SolveRequest(time_limit=task.time_limit, seed=task.seed, options=dict(task.options))
        )
    wall = time.perf_counter() - t0
    rec = harness.finalize(inst, method.name, sol, seed=task.seed, wall_time=wall, time_limit=task.time_limit)
    rec.method = task.method
    # the placement evaluated on the instance's holdout and transfer twins (NaN columns without them)
    return TaskResult({**rec.to_dict(), **extra, **run_columns(inst, rec.status, rec.placement)})


def failed_row(task: Task, error: str) -> dict[str, Any]:
    """The row of a task that could not run at all (status ``error``, no placement)."""
    if task.search is not None:
        return {**stress_row(task.search, task.seed), "error": error}
    inst = task.instance
    assert inst is not None
    rec = Record(
        inst.name,
        inst.content_hash,
        task.method,
        task.seed,
        Status.ERROR,
        empty_latency=inst.empty_latency,
        time_limit=task.time_limit,
        error=error,
    )
    return {**rec.to_dict(), "method_kind": None, **run_columns(inst, rec.status, rec.placement)}
