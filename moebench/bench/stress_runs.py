"""Stress searches inside benchmark suites: the ``[[stress]]`` entries.

A suite may list adversarial searches (:func:`moebench.stress.stress`) beside its tasks::

    [[stress]]
    name = "paper-k1-multi"         # optional: file stem of the worst instance (default: derived)
    method = "greedy-enum[2]"
    family = "uniform"
    params = { K = 1, servers = 2, layers = 2, experts = 4, inter_jitter = 0.5 }
    budget = 120                    # seconds per seed
    seeds = [0, 1]                  # or seed = 0; each seed is one independent search
    reference = "bruteforce"        # exact method giving the optimum (default)
    steps = 200                     # hill-climbing steps per restart (default)
    claim = 0.6321205588            # a claim the method does NOT declare itself (optional)
    claim_source = "paper: greedy, (1 - 1/e)"
    claim_conditions = "K = 1; one knapsack per server"

``claim_conditions`` is free text split at ``;``: the parts that are condition names of
:data:`moebench.methods.CONDITIONS` are checked on the instances; the rest is what the suite's
author asserts about the family and parameters (here: every server is its own knapsack, which
holds in this model by construction).

The runner calls :func:`run_stress` after the tasks. Each (entry, seed) is one *unit*, run in
its own child process (``jobs`` at a time, killed when it overruns its budget by far). Its
result is appended to ``<out>/stress.jsonl`` (resume skips units already there; a unit that
crashed is recorded with its error, like a failed task), the worst instance is written to
``<out>/stress/<slug>-s<seed>.json.gz`` with the search's outcome in ``meta["stress"]``, and
``<out>/stress.csv`` lists the units of the current suite in suite order.
"""

from __future__ import annotations

import datetime
import json
import math
import multiprocessing as mp
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from moebench.bench.suite import StressSearch, Suite

#: A unit still running this long past its budget (plus this fraction of it) is killed.
KILL_AFTER = 60.0
KILL_FRACTION = 0.5
#: Ratios below a claim by more than this count as violations.
CLAIM_TOL = 1e-9


# ---- running ----------------------------------------------------------------------------------
def _instance_fields(inst: Any) -> dict[str, Any]:
    return {
        "instance": inst.name,
        "instance_hash": inst.content_hash,
        "K": inst.K,
        "N": inst.N,
        "L": inst.L,
        "G": inst.G,
        "equal_sizes": bool(np.all(inst.size == inst.size[0])),
    }


def run_unit(entry: StressSearch, seed: int, out_dir: Path, plugins: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run one search in this process and write its worst instance.

    Returns
    -------
    dict
        The record appended to ``stress.jsonl`` (status ``ok`` or ``error``).
    """
    from moebench.bench.suite import load_plugins
    from moebench.instance import replace_arrays
    from moebench.instance_file import save_instance
    from moebench.methods import check_conditions, get_method
    from moebench.status import checkable
    from moebench.stress import stress

    rec = base_record(entry, seed)
    try:
        load_plugins(plugins)
        g = get_method(entry.method).info.guarantee
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
    except Exception as exc:  # a crashing search is recorded, the suite goes on
        rec.update(status="error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=5))
        return rec
    rec.update(
        status="ok",
        worst_ratio=res.ratio if res.instance is not None else None,
        gain_method=res.gain_method if res.instance is not None else None,
        gain_optimum=res.gain_optimum if res.instance is not None else None,
        evaluations=res.evaluations,
        restarts=res.restarts,
        elapsed=res.elapsed,
        history=[[round(t, 3), r] for t, r in res.history],
        guarantee=None if g is None else g.ratio,
        guarantee_source=None if g is None else g.source,
        guarantee_conditions=None if g is None else ";".join(g.conditions),
        guarantee_applies=res.guarantee_applies if g is not None else None,
        violation=res.violates,
    )
    if res.instance is None:
        rec["error"] = "no instance with a positive optimal gain was scored within the budget"
        return rec
    inst = res.instance
    rec.update(_instance_fields(inst))
    claim_hold = None
    if entry.claim is not None:
        claim_hold = not check_conditions(checkable(entry.claim_conditions), inst)
        rec["claim_conditions_hold"] = claim_hold
        rec["claim_violated"] = bool(claim_hold and res.ratio < entry.claim - CLAIM_TOL)
    meta = dict(inst.meta)
    meta["stress"] = {
        **meta.get("stress", {}),
        "seed": seed,
        "budget": entry.budget,
        "params": dict(entry.params),
        "claim": entry.claim,
        "claim_source": entry.claim_source or None,
        "claim_conditions": entry.claim_conditions or None,
        "claim_violated": rec.get("claim_violated"),
    }
    inst = replace_arrays(inst, meta=meta, name=f"stress-{entry.slug(seed)}")
    rel = Path("stress") / f"{entry.slug(seed)}.json.gz"
    save_instance(inst, out_dir / rel)
    rec.update(instance=inst.name, instance_hash=inst.content_hash, instance_file=rel.as_posix())
    return rec


def base_record(entry: StressSearch, seed: int) -> dict[str, Any]:
    """The fields every stress record has, whatever the outcome."""
    return {
        "task_id": entry.unit_id(seed),
        "kind": "stress",
        "name": entry.name,
        "slug": entry.slug(seed),
        "method": entry.method,
        "family": entry.family,
        "params": dict(entry.params),
        "budget": entry.budget,
        "seed": seed,
        "reference": entry.reference,
        "steps": entry.steps,
        "claim": entry.claim,
        "claim_source": entry.claim_source or None,
        "claim_conditions": entry.claim_conditions or None,
        "status": "error",
        "error": None,
    }


def _child(entry: StressSearch, seed: int, out_dir: str, plugins: tuple[str, ...], conn: Any) -> None:
    try:
        rec = run_unit(entry, seed, Path(out_dir), plugins)
    except BaseException as exc:  # even a failure to record must reach the parent
        rec = base_record(entry, seed)
        rec["error"] = f"{type(exc).__name__}: {exc}"
    conn.send(rec)
    conn.close()


def run_stress(
    suite: Suite,
    out_dir: str | os.PathLike[str],
    *,
    jobs: int = 1,
    resume: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Run the suite's ``[[stress]]`` entries (the runner's hook, called after the tasks).

    Parameters
    ----------
    suite
        The loaded suite.
    out_dir
        The output folder.
    jobs
        Searches at a time (each in its own process).
    resume
        Keep the records already in ``stress.jsonl``; without it the file is moved to
        ``stress.jsonl.prev`` and every search runs again.
    progress
        One line per finished search on stderr.

    Returns
    -------
    list of Path
        Files written (``stress.jsonl``, ``stress.csv`` and the worst instances).
    """
    from moebench.bench.store import ResultStore
    from moebench.registry import plugin_modules

    entries: list[StressSearch] = list(getattr(suite, "stress", []) or [])
    if not entries:
        return []
    out = Path(out_dir)
    store = ResultStore(out / "stress.jsonl")
    finished = store.finished() if resume else {}
    units = [(e, s) for e in entries for s in e.seeds]
    todo = [(e, s) for e, s in units if e.unit_id(s) not in finished]
    plugins = tuple(plugin_modules(suite.plugins))
    records = dict(finished)
    store.open(fresh=not resume)
    ctx = mp.get_context("forkserver")
    running: list[tuple[Any, Any, StressSearch, int, float]] = []
    t_start = time.monotonic()
    done = len(units) - len(todo)

    def finish(rec: dict[str, Any]) -> None:
        nonlocal done
        rec.setdefault("finished_at", datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
        store.append(rec)
        records[rec["task_id"]] = rec
        done += 1
        if progress:
            what = (
                f"worst ratio {rec['worst_ratio']:.4f} after {rec.get('evaluations')} evaluations"
                if rec.get("worst_ratio") is not None
                else f"error: {rec.get('error')}"
            )
            print(
                f"stress {done}/{len(units)} [{time.monotonic() - t_start:6.0f} s] {rec['slug']}: {what}",
                file=sys.stderr,
            )

    try:
        queue = list(todo)
        while queue or running:
            while queue and len(running) < max(1, jobs):
                e, s = queue.pop(0)
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(e, s, str(out), plugins, child), daemon=True)
                proc.start()
                child.close()
                running.append((proc, parent, e, s, time.monotonic()))
            still = []
            for proc, conn, e, s, t0 in running:
                rec = None
                if conn.poll():
                    try:
                        rec = conn.recv()
                    except EOFError:
                        rec = None
                    if rec is not None:
                        proc.join(10)
                        finish(rec)
                        conn.close()
                        continue
                limit = e.budget * (1 + KILL_FRACTION) + KILL_AFTER
                if not proc.is_alive() or time.monotonic() - t0 > limit:
                    alive = proc.is_alive()
                    if alive:
                        proc.kill()
                    proc.join(10)
                    rec = base_record(e, s)
                    rec["error"] = (
                        f"killed after {time.monotonic() - t0:.0f} s (budget {e.budget:g} s)"
                        if alive
                        else f"search process died (exit code {proc.exitcode})"
                    )
                    finish(rec)
                    conn.close()
                    continue
                still.append((proc, conn, e, s, t0))
            running = still
            if running:
                time.sleep(0.1)
    finally:
        for proc, conn, *_ in running:  # interrupted: leave no search running
            proc.kill()
            proc.join(10)
            conn.close()
        store.close()
    current = [records[e.unit_id(s)] for e, s in units if e.unit_id(s) in records]
    files = [store.path, write_stress_table(current, out / "stress.csv")]
    files += [out / r["instance_file"] for r in current if r.get("instance_file")]
    return files


#: Columns of ``stress.csv``, in order.
TABLE_COLUMNS = (
    "task_id",
    "name",
    "method",
    "family",
    "params",
    "seed",
    "budget",
    "reference",
    "status",
    "worst_ratio",
    "gain_method",
    "gain_optimum",
    "evaluations",
    "restarts",
    "elapsed",
    "guarantee",
    "guarantee_applies",
    "violation",
    "claim",
    "claim_source",
    "claim_conditions",
    "claim_conditions_hold",
    "claim_violated",
    "instance",
    "instance_hash",
    "K",
    "N",
    "L",
    "G",
    "equal_sizes",
    "instance_file",
    "error",
    "finished_at",
)


def write_stress_table(records: list[dict[str, Any]], path: Path) -> Path:
    """Write the stress records of the current suite as CSV (params as JSON text)."""
    import pandas as pd

    rows = []
    for r in records:
        row = {c: r.get(c) for c in TABLE_COLUMNS}
        row["params"] = json.dumps(r.get("params") or {}, sort_keys=True)
        rows.append(row)
    pd.DataFrame(rows, columns=list(TABLE_COLUMNS)).to_csv(path, index=False)
    return path


def read_stress(results_dir: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    """The stress records of a results folder.

    Reads ``stress.jsonl``; when ``stress.csv`` (the current suite's units) exists, only the
    records it lists are kept, in its order, so a resumed run with a changed suite shows no
    stale searches.
    """
    from moebench.bench.store import ResultStore

    if results_dir is None:
        return []
    base = Path(results_dir)
    recs = ResultStore(base / "stress.jsonl").finished()
    if not recs:
        return []
    table = base / "stress.csv"
    if table.exists():
        import pandas as pd

        try:
            ids = pd.read_csv(table, usecols=["task_id"], dtype=str)["task_id"].tolist()
        except (ValueError, OSError):
            ids = list(recs)
        return [recs[i] for i in ids if i in recs]
    return list(recs.values())


def ratio_or_nan(v: Any) -> float:
    """A record's ratio as float (NaN when missing)."""
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan
