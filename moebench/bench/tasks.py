"""Tasks: one (instance, method, options, seed, repetition) run, or one stress search, with a stable id.

Both kinds go through the same executor, store, row schema and progress bar. The task id
hashes everything that determines the result (instance content hash and name, method name,
options, seed, repetition, time limit; for a search its whole ``[[stress]]`` entry and seed),
so a resumed run recognizes finished tasks and a changed suite never reuses a stale result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moebench.encoding import jsonable
from moebench.instance import Instance
from moebench.regime import regime_label
from moebench.schema.rows import PARAM_PREFIX
from moebench.status import instance_facts

if TYPE_CHECKING:
    from moebench.bench.suite import StressSearch


@dataclass(frozen=True)
class Task:
    """One run of the benchmark.

    Attributes
    ----------
    task_id : str
        Stable hash (see :func:`task_id`; :meth:`~moebench.bench.suite.StressSearch.unit_id`).
    instance : Instance or None
        The instance (pickled to the worker); None for a stress search.
    method : str
        Method name.
    options : dict
        Method options.
    seed : int
        Seed passed to the method.
    repetition : int
        Repetition index (0-based).
    time_limit : float
        Wall-clock limit in seconds.
    grace : float
        Seconds past the limit before the run is killed.
    memory_limit_mb : int or None
        Address-space limit of the child process.
    role : str
        ``"method"`` or ``"reference"``.
    plugins : tuple of str
        Modules the child imports before building the method.
    kind : str
        ``"method"`` (a method run) or ``"stress"`` (a search; ``search`` says which).
    search : StressSearch or None
        The ``[[stress]]`` entry of a stress task.
    """

    task_id: str
    instance: Instance | None
    method: str
    options: Mapping[str, Any]
    seed: int
    repetition: int
    time_limit: float
    grace: float = 5.0
    memory_limit_mb: int | None = None
    role: str = "method"
    plugins: tuple[str, ...] = field(default_factory=tuple)
    kind: str = "method"
    search: StressSearch | None = None

    @property
    def label(self) -> str:
        """What the progress bar shows for the task."""
        if self.search is not None:
            return f"stress {self.search.slug(self.seed)}"
        return f"{self.instance.name if self.instance is not None else '?'} {self.method}"


@dataclass
class TaskResult:
    """What a task gives back: its row (record, method and worker fields), and for a stress
    search the worst instance found (the runner writes it)."""

    row: dict[str, Any]
    instance: Instance | None = None


def task_id(inst: Instance, method: str, options: Mapping[str, Any], seed: int, repetition: int, limit: float) -> str:
    """The stable id of a task: 16 hex digits of a SHA-256 over its defining fields."""
    key = {
        "instance": inst.name,
        "hash": inst.content_hash,
        "method": method,
        "options": dict(sorted(options.items())),
        "seed": seed,
        "repetition": repetition,
        "time_limit": limit,
    }
    # the holdout twin, transfer twins and replay (moebench.bench.holdout), only where given, so
    # that ids of suites without them stay as they were
    for extra in ("holdout", "shift"):
        if inst.meta.get(extra) is not None:
            key[extra] = inst.meta[extra]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def instance_columns(inst: Instance) -> dict[str, Any]:
    """The instance properties every results row carries, so that reports need only the table.

    ``K``, ``N``, ``L``, ``equal_sizes`` and ``one_size_per_layer`` are the facts the conditions of
    :data:`moebench.status.CONDITIONS` test; family parameters are flattened as ``param_<name>``.
    """
    meta = dict(inst.meta)
    facts = instance_facts(inst)
    row: dict[str, Any] = {
        "instance": inst.name,
        "instance_hash": inst.content_hash,
        "family": str(meta.get("family", "file")),
        "instance_seed": meta.get("seed"),
        "K": facts["K"],
        "N": facts["N"],
        "L": facts["L"],
        "G": inst.G,
        "M": inst.M,
        "E_max": int(inst.n_experts.max()),
        "binaries": inst.N * inst.G,
        "equal_sizes": facts["equal_sizes"],
        "one_size_per_layer": facts["one_size_per_layer"],
        "capacity_fraction": float(inst.capacity.sum() / inst.total_size) if inst.total_size > 0 else None,
        "regime": regime_label(inst),
    }
    params = meta.get("params")
    if isinstance(params, Mapping):
        for k, v in params.items():
            row[PARAM_PREFIX + k] = _scalar(v)
    return row


def _scalar(v: Any) -> Any:
    """Parameter values as table cells: lists become comma-joined strings."""
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return jsonable(v)
