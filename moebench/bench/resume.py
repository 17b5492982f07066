"""What ``--resume`` may keep: the store records that check out against the suite's tasks.

A store line is kept only when it is a record of a task of this suite whose every declared
column has its declared type (:mod:`moebench.schema.rows`), whose task id, suite, method and
instance hash agree with the task, whose status is a :class:`~moebench.status.Status`, and —
for a run with a placement — whose latency, gain and feasibility are what the evaluator
computes for that placement on the task's instance (so a forged gain never reaches a report).
Every other line is damaged: its task runs again, and the run says how many in one warning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moebench.bench.store import ResultStore
from moebench.bench.tasks import Task
from moebench.errors import InputError
from moebench.json_io import write_atomically
from moebench.status import WITH_PLACEMENT, Status

#: Where damaged store lines go (beside the store).
DAMAGED = "results.jsonl.damaged"
_STATUSES = frozenset(s.value for s in Status)
#: Relative tolerance between a stored objective and the evaluator's (both are the evaluator's
#: own float64 results, written with full precision; this only absorbs a decimal round trip).
RTOL = 1e-9


@dataclass
class Resumed:
    """The records a resumed run keeps, and what it found damaged."""

    kept: dict[str, dict[str, Any]] = field(default_factory=dict)
    damaged: int = 0
    rerun: set[str] = field(default_factory=set)
    unknown: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    good_lines: list[bytes] = field(default_factory=list)
    bad_lines: list[bytes] = field(default_factory=list)

    def warning(self) -> str | None:
        """One warning line, or None when every line checked out."""
        if not self.damaged:
            return None
        why = ", ".join(f"{n} {r}" for r, n in sorted(self.reasons.items(), key=lambda kv: -kv[1])[:3])
        return (
            f"moebench: warning: {self.damaged} damaged store line(s) skipped ({why}) and moved to "
            f"{DAMAGED}; their tasks run again ({len(self.rerun)} identified)"
        )


def set_aside_damage(store: Path, resumed: Resumed) -> None:
    """Append the damaged lines to ``<store>.damaged`` (kept as evidence) and rewrite the store
    without them (atomically), so that the next resume starts from a clean store."""
    if not resumed.bad_lines:
        return
    with open(store.with_name(DAMAGED), "ab") as fh:
        fh.writelines(resumed.bad_lines)
    write_atomically(store, b"".join(resumed.good_lines))


def _typed(value: Any, dtype: str) -> bool:
    if value is None:
        return True
    if dtype == "str":
        return isinstance(value, str)
    if dtype == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if dtype == "float":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if dtype == "bool":
        return isinstance(value, bool)
    return True  # json: any JSON value


def check_record(rec: Any, task: Task | None, suite_name: str) -> str | None:
    """Why ``rec`` cannot be kept for ``task`` (None: it can).

    Parameters
    ----------
    rec
        A parsed store line.
    task
        The suite's task with the record's task id (None: the suite has no such task).
    suite_name
        The suite's name.
    """
    from moebench.schema.rows import BY_NAME

    if not isinstance(rec, dict) or not isinstance(rec.get("task_id"), str):
        return "not a record"
    if task is None:
        return "task not in this suite"
    required = ("suite", "method", "status") + (("instance", "instance_hash") if task.instance is not None else ())
    if any(rec.get(k) is None for k in required):
        return "missing columns"
    for name, value in rec.items():
        col = BY_NAME.get(name)
        if col is not None and not _typed(value, col.dtype):
            return f"bad {name}"
    if rec.get("suite") != suite_name:
        return "other suite"
    if rec.get("method") != task.method or rec.get("kind", "method") != task.kind:
        return "wrong method"
    if rec.get("status") not in _STATUSES:
        return "bad status"
    if task.instance is None:
        return None  # a stress search: nothing to recompute from the row
    inst = task.instance
    if rec.get("instance_hash") != inst.content_hash or rec.get("instance") != inst.name:
        return "wrong instance"
    if rec["status"] in WITH_PLACEMENT and rec.get("placement") is not None:
        return _check_objective(rec, inst)
    return None


def _check_objective(rec: dict[str, Any], inst: Any) -> str | None:
    from moebench.evaluate import evaluate
    from moebench.placement import from_triples

    try:
        x = from_triples(inst, rec["placement"])
    except InputError:
        return "bad placement"
    ev = evaluate(inst, x)
    for name, value in (("latency", ev.latency), ("gain", ev.gain)):
        stored = rec.get(name)
        if stored is None or abs(stored - value) > RTOL * max(1.0, abs(ev.empty_latency)):
            return f"{name} differs from the evaluator"
    if bool(rec.get("feasible")) != ev.feasible:
        return "feasible differs from the evaluator"
    return None


def resume_records(store: Path, tasks: Iterable[Task], suite_name: str) -> Resumed:
    """Read ``store`` and keep, for each task, its first record that checks out.

    A torn last line (no newline: the writer was killed mid-record) is not counted as damage;
    :meth:`moebench.bench.store.ResultStore.open` cuts it off.
    """
    by_id = {t.task_id: t for t in tasks}
    out = Resumed()
    for raw, rec in ResultStore(store).lines():
        if not raw.strip():
            continue
        tid = rec.get("task_id") if isinstance(rec, dict) else None
        if isinstance(tid, str) and tid in out.kept:
            out.good_lines.append(raw)
            continue  # a task's first valid record wins
        why = check_record(rec, by_id.get(tid) if isinstance(tid, str) else None, suite_name)
        if why is None:
            out.kept[tid] = rec
            out.rerun.discard(tid)
            out.good_lines.append(raw)
            continue
        if why in ("task not in this suite", "other suite"):
            out.unknown += 1  # not damage: results of tasks this suite no longer has
            out.good_lines.append(raw)
            continue
        out.bad_lines.append(raw)
        out.damaged += 1
        out.reasons[why] = out.reasons.get(why, 0) + 1
        if isinstance(tid, str) and tid in by_id:
            out.rerun.add(tid)
    return out
