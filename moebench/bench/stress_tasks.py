"""Stress searches as tasks of a suite: each (``[[stress]]`` entry, seed) is one task.

A search (:func:`moebench.stress.stress`) runs like a method run: on the suite's executor, in
a child process supervised by :func:`moebench.supervisor.run_in_child` (killed when it overruns
its budget by far), and its result is one row of the results store and table (``kind =
"stress"``, the columns of the ``stress`` group of :mod:`moebench.schema.rows`). A search that
crashed is a row with status ``error`` and its error text, like a failed method run; a search
that finished is ``feasible`` (its worst ratio is a value found, not a proven worst case).

The worst instance comes back with the row; the runner writes it to
``<out>/stress/<name>-s<seed>.json.gz`` with the search's outcome in ``meta["stress"]``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from moebench.bench.claims import CLAIM_TOL
from moebench.bench.tasks import Task, TaskResult
from moebench.instance import replace_arrays
from moebench.methods import get_method
from moebench.registry import import_plugins
from moebench.status import Status, check_conditions, checkable, instance_facts
from moebench.stress import stress
from moebench.supervisor import Channel, describe, run_in_child

if TYPE_CHECKING:
    from moebench.bench.suite import StressSearch, Suite

#: A search still running this long past its budget (plus this fraction of it) is killed.
KILL_AFTER = 60.0
KILL_FRACTION = 0.5


def stress_tasks(suite: Suite, plugins: tuple[str, ...]) -> list[Task]:
    """One task per ``[[stress]]`` entry and seed, in suite order."""
    return [
        Task(
            e.unit_id(s),
            None,
            e.method,
            {},
            s,
            0,
            e.budget,
            grace=e.budget * KILL_FRACTION + KILL_AFTER,
            memory_limit_mb=suite.memory_limit_mb,
            plugins=plugins,
            kind="stress",
            search=e,
        )
        for e in suite.stress
        for s in e.seeds
    ]


def stress_row(entry: StressSearch, seed: int) -> dict[str, Any]:
    """The fields every stress row has, whatever the outcome (status ``error`` until it finished)."""
    return {
        "kind": "stress",
        "method": entry.method,
        "family": entry.family,
        "seed": seed,
        "stress_name": entry.name,
        "stress_params": dict(entry.params),
        "budget": entry.budget,
        "reference": entry.reference,
        "steps": entry.steps,
        "claim": entry.claim,
        "claim_source": entry.claim_source or None,
        "claim_conditions": entry.claim_conditions or None,
        "status": Status.ERROR.value,
        "error": None,
    }


def _search(channel: Channel, entry: StressSearch, seed: int, plugins: tuple[str, ...]) -> TaskResult:
    """The child's side: run the search, describe its outcome, return the worst instance."""
    row = stress_row(entry, seed)
    try:
        import_plugins(plugins)
        g = get_method(entry.method).info.guarantee
        channel.started()
        res = stress(
            entry.method,
            entry.family,
            entry.params,
            budget=entry.budget,
            seed=seed,
            reference=entry.reference,
            steps=entry.steps,
            reference_options=entry.reference_options,
        )
    except Exception as exc:  # a crashing search is a row with its error; the suite goes on
        row["error"] = describe(exc)
        return TaskResult(row)
    found = res.instance is not None
    row.update(
        status=Status.FEASIBLE.value,
        worst_ratio=res.ratio if found else None,
        gain_method=res.gain_method if found else None,
        gain_optimum=res.gain_optimum if found else None,
        evaluations=res.evaluations,
        restarts=res.restarts,
        elapsed=res.elapsed,
        history=[[round(t, 3), r] for t, r in res.history],
        guarantee_ratio=None if g is None else g.ratio,
        guarantee_source=None if g is None else g.source,
        guarantee_conditions=None if g is None else ";".join(g.conditions),
        guarantee_applies=res.guarantee_applies if g is not None else None,
        violation=res.violates,
    )
    if res.instance is None:
        row["error"] = "no instance with a positive optimal gain was scored within the budget"
        return TaskResult(row)
    inst = res.instance
    if entry.claim is not None:
        hold = not check_conditions(checkable(entry.claim_conditions), inst)
        row["claim_conditions_hold"] = hold
        row["claim_violated"] = bool(hold and res.ratio < entry.claim - CLAIM_TOL)
    meta = dict(inst.meta)
    claim = {k: row.get(k) for k in ("claim", "claim_source", "claim_conditions", "claim_violated")}
    meta["stress"] = {
        **meta.get("stress", {}),
        "seed": seed,
        "budget": entry.budget,
        "params": dict(entry.params),
        **claim,
    }
    inst = replace_arrays(inst, meta=meta, name=f"stress-{entry.slug(seed)}")
    row.update(instance=inst.name, instance_hash=inst.content_hash, G=inst.G, **instance_facts(inst))
    return TaskResult(row, inst)


def run_stress_task(task: Task, stop: threading.Event, quiet: bool) -> TaskResult:
    """Run a stress task in a child process, killed at ``budget + grace`` after its search started."""
    entry = task.search
    assert entry is not None
    out = run_in_child(
        _search,
        (entry, task.seed, tuple(task.plugins)),
        limit=entry.budget + task.grace,
        stop=stop,
        quiet=quiet,
        memory_limit_mb=task.memory_limit_mb,
    )
    if out.done:
        return out.result
    row = stress_row(entry, task.seed)
    if out.failure is not None:
        row["error"] = out.failure
    elif out.timed_out:
        row["error"] = f"killed after {entry.budget + task.grace:.0f} s (budget {entry.budget:g} s)"
    else:
        row["error"] = f"search process died (exit code {out.exitcode})"
    return TaskResult(row)
