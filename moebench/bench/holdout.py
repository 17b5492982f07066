"""Holdout evaluation (SPEC section 6): optimize on one instance, report latency on its twin.

A suite's ``[[instances]]`` entry may name parameter overrides that give the *holdout twin* of
every instance it generates: the same family, parameters and seed with the overrides applied,
e.g. ``holdout = { which = "test" }`` for the test tokens of a trace family. The twin must
share everything a placement depends on — servers, capacities, expert counts and sizes,
latencies, fallbacks and K — so that a placement of the instance is a placement of the twin;
only the activation sets may differ. The suite checks this when it materializes its instances
(a bad twin is an :class:`~moebench.errors.InputError`, exit 2, before anything runs).

The holdout spec travels with the instance in ``meta["holdout"]`` (the content hash ignores
``meta``; the task id includes the spec, see :func:`moebench.bench.tasks.task_id`). After a
run with a placement, the worker regenerates the twin (cached per process) and evaluates the
placement on it with :func:`moebench.evaluate.evaluate`: row columns ``holdout_latency``,
``holdout_gain`` and ``holdout_empty_latency`` (NaN without a placement or a holdout).

Workload shift (issue 16)
    An entry may also name *transfer twins* on other tasks, ``holdout_tasks = ["intent", ...]`` or
    ``"all"``: the twin with the overrides ``{"task": T}`` (same layers, servers, capacities and
    latency model; the other task's tokens of the same split part). Their specs travel in
    ``meta["shift"]`` (:func:`attach_shift`), with ``replay = true`` when the real token paths of
    every scored token set are to be replayed (:class:`moebench.replay.Replayer`). Such a run's row
    carries the JSON column ``token_sets`` (:func:`token_set_scores`): one object per token set the
    placement was scored on — the instance itself (``kind`` ``instance``), its holdout twin
    (``holdout``) and each transfer twin (``transfer``) — with the evaluator's latency, gain and
    empty latency, the scored instance's content hash (so a report can find the other task's
    reference) and, with ``replay``, the per-token latency statistics and quantile function of the
    replayed tokens: every sequence of the twin's split part (``which``) of its task. The fields
    are declared in :data:`moebench.schema.rows.TOKEN_SET_FIELDS`.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from moebench.encoding import jsonable
from moebench.errors import InputError
from moebench.instance import Instance, replace_arrays
from moebench.schema.rows import CDF_POINTS
from moebench.status import WITH_PLACEMENT

if TYPE_CHECKING:
    from moebench.replay import Replayer

#: Row columns written by :func:`holdout_columns`.
HOLDOUT_COLUMNS = ("holdout_latency", "holdout_gain", "holdout_empty_latency")
#: Twins generated in this process, by spec key.
_CACHE: dict[str, Instance] = {}
#: Meta key of the workload-shift spec (transfer twins, replay).
SHIFT_KEY = "shift"
#: Replayers of this process, by instance content hash and name (they cache token streams).
_REPLAYERS: dict[tuple[str, str], Replayer] = {}
_LOCK = threading.Lock()


def holdout_spec(family: str, params: Mapping[str, Any], seed: int, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready spec of a twin: ``{"family", "params", "seed", "overrides"}``.

    ``params`` are the instance's own parameters; the twin's are ``{**params, **overrides}``.
    """
    params = {**dict(params), **dict(overrides)}
    return {
        "family": family,
        "params": jsonable(params),
        "seed": int(seed),
        "overrides": jsonable(dict(overrides)),
    }


def twin(spec: Mapping[str, Any]) -> Instance:
    """Generate (or fetch from this process's cache) the holdout twin of ``spec``."""
    from moebench.families import generate

    key = json.dumps(spec, sort_keys=True, default=str)
    inst = _CACHE.get(key)
    if inst is None:
        inst = generate(str(spec["family"]), dict(spec["params"]), int(spec["seed"]))
        _CACHE[key] = inst
    return inst


def twin_mismatch(inst: Instance, other: Instance) -> str | None:
    """Why ``other`` is not a holdout twin of ``inst`` (None when it is).

    Twins have the same K, server names, capacities, experts per layer, expert sizes,
    latencies and fallbacks; only the activation sets may differ.
    """
    if inst.K != other.K:
        return f"K differs ({inst.K} vs {other.K})"
    if tuple(inst.server_names) != tuple(other.server_names):
        return f"servers differ ({inst.N} vs {other.N})"
    if not np.array_equal(inst.n_experts, other.n_experts):
        return f"experts per layer differ ({inst.L} layers of {inst.n_experts.tolist()[:3]}... vs {other.L} layers)"
    for what, a, b in (
        ("capacities", inst.capacity, other.capacity),
        ("expert sizes", inst.size, other.size),
        ("latencies", inst.latency, other.latency),
        ("fallbacks", inst.fallback, other.fallback),
    ):
        if a.shape != b.shape or not np.allclose(a, b, rtol=1e-12, atol=0.0):
            return f"{what} differ"
    return None


def attach_holdout(
    inst: Instance, family: str, params: Mapping[str, Any], seed: int, overrides: Mapping[str, Any]
) -> Instance:
    """``inst`` with ``meta["holdout"]`` set, after checking that the twin is one.

    Raises
    ------
    InputError
        When the twin cannot be generated or differs in anything but its activation sets
        (``where`` is ``"holdout"``; the suite loader adds file and entry).
    """
    spec = holdout_spec(family, params, seed, overrides)
    try:
        other = twin(spec)
    except InputError as exc:
        raise InputError(f"the holdout twin cannot be generated: {exc.reason}", where="holdout") from None
    why = twin_mismatch(inst, other)
    if why is not None:
        raise InputError(
            f"overrides {spec['overrides']} do not give a holdout twin of {inst.name}: {why} "
            "(a placement of the instance must be a placement of its twin; only the activation sets may differ)",
            where="holdout",
        )
    return replace_arrays(inst, meta={**dict(inst.meta), "holdout": spec})


def holdout_columns(inst: Instance, status: str | None, placement: Any) -> dict[str, float]:
    """The holdout columns of one run: the placement evaluated on the instance's twin.

    Parameters
    ----------
    inst
        The instance the method ran on (its ``meta["holdout"]`` names the twin, if any).
    status
        The run's status; only runs with a placement (optimal, feasible, time-limit) are evaluated.
    placement
        The run's ``[server, layer, expert]`` triples.

    Returns
    -------
    dict
        ``holdout_latency``, ``holdout_gain`` (Lat_twin(∅) − Lat_twin(X)) and
        ``holdout_empty_latency``; NaN where there is no holdout or no placement.
    """
    out = dict.fromkeys(HOLDOUT_COLUMNS, math.nan)
    spec = inst.meta.get("holdout") if isinstance(inst.meta, Mapping) else None
    if not isinstance(spec, Mapping) or status not in WITH_PLACEMENT:
        return out
    from moebench.evaluate import evaluate
    from moebench.placement import from_triples

    other = twin(spec)
    x = from_triples(other, placement or [])
    ev = evaluate(other, x)
    out["holdout_latency"] = float(ev.latency)
    out["holdout_gain"] = float(ev.gain)
    out["holdout_empty_latency"] = float(other.empty_latency)
    return out


def run_columns(inst: Instance, status: str | None, placement: Any) -> dict[str, Any]:
    """Every column the holdout machinery adds to a run's row.

    The holdout columns (:func:`holdout_columns`) and, for an instance with a workload-shift spec,
    ``token_sets`` (:func:`token_set_scores`; None without a placement).
    """
    out: dict[str, Any] = dict(holdout_columns(inst, status, placement))
    if isinstance(inst.meta, Mapping) and isinstance(inst.meta.get(SHIFT_KEY), Mapping):
        out["token_sets"] = token_set_scores(inst, placement) if status in WITH_PLACEMENT else None
    return out


# ---- workload shift: transfer twins on other tasks, replayed token paths -------------------------------
def attach_shift(
    inst: Instance,
    family: str,
    params: Mapping[str, Any],
    seed: int,
    tasks: Sequence[str],
    replay: bool,
) -> Instance:
    """``inst`` with ``meta["shift"]`` set: its transfer twins on ``tasks`` (its own task left out)
    and whether token paths are replayed.

    Parameters
    ----------
    inst
        The generated instance.
    family, params, seed
        What generated it (``params`` as the suite gave them).
    tasks
        The tasks whose twins score every placement (the instance's own task is skipped).
    replay
        Replay the real token paths of every scored token set (trace families only).

    Raises
    ------
    InputError
        At ``holdout_tasks`` when a twin cannot be generated or is not a twin; at ``replay`` when
        the instance has no token paths (the suite loader adds file and entry).
    """
    from moebench.families import get_family
    from moebench.replay import TraceOrigin

    full = get_family(family).resolve(params)
    own = full.get("task")
    specs = []
    for task in tasks:
        if task == own:
            continue
        spec = holdout_spec(family, params, seed, {"task": task})
        try:
            other = twin(spec)
        except InputError as exc:
            raise InputError(
                f"the twin on task {task!r} cannot be generated: {exc.reason}", where="holdout_tasks"
            ) from None
        why = twin_mismatch(inst, other)
        if why is not None:
            raise InputError(
                f"task {task!r} does not give a twin of {inst.name}: {why} (only the activation sets may differ)",
                where="holdout_tasks",
            )
        specs.append(spec)
    if replay:
        try:
            TraceOrigin.of(inst)
        except InputError as exc:
            raise InputError(f"cannot replay: {exc.where}: {exc.reason}", where="replay") from None
    shift = {
        "task": own,
        "which": full.get("which"),
        "transfer": specs,
        "replay": bool(replay),
        "replay_source": _replay_source(full),
    }
    return replace_arrays(inst, meta={**dict(inst.meta), SHIFT_KEY: jsonable(shift)})


def _replay_source(full: Mapping[str, Any]) -> dict[str, Any]:
    """Where the token paths are read: the ESFT data folder or the trace file (machine paths)."""
    if full.get("file") is not None:
        return {"trace": str(full["file"])}
    return {"data_dir": None if full.get("data_dir") is None else str(full["data_dir"])}


def replayer(inst: Instance) -> Replayer:
    """The :class:`~moebench.replay.Replayer` of ``inst`` in this process (built once)."""
    from moebench.replay import Replayer

    key = (inst.content_hash, inst.name)
    with _LOCK:
        rp = _REPLAYERS.get(key)
        if rp is None:
            src = dict(inst.meta[SHIFT_KEY].get("replay_source") or {})
            rp = Replayer(inst, data_dir=src.get("data_dir"), trace=src.get("trace"))
            _REPLAYERS[key] = rp
    return rp


def token_set_scores(inst: Instance, placement: Any) -> list[dict[str, Any]]:
    """The placement scored on every token set of the instance's workload-shift spec.

    Parameters
    ----------
    inst
        The instance the method ran on (with ``meta["shift"]``, :func:`attach_shift`).
    placement
        The run's ``[server, layer, expert]`` triples.

    Returns
    -------
    list of dict
        One object per token set (fields :data:`moebench.schema.rows.TOKEN_SET_FIELDS`): the
        instance itself, its holdout twin (if any), then each transfer twin.
    """
    from moebench.evaluate import evaluate
    from moebench.placement import from_triples

    shift = inst.meta[SHIFT_KEY]
    x = from_triples(inst, placement or [])
    scored: list[tuple[str, Instance, Any, Any]] = [("instance", inst, shift.get("task"), shift.get("which"))]
    spec = inst.meta.get("holdout")
    if isinstance(spec, Mapping):
        p = spec["params"]
        scored.append(("holdout", twin(spec), p.get("task", shift.get("task")), p.get("which", shift.get("which"))))
    for spec in shift.get("transfer", []):
        scored.append(("transfer", twin(spec), spec["params"]["task"], spec["params"].get("which", shift.get("which"))))
    rp = replayer(inst) if shift.get("replay") else None
    grid = np.linspace(0.0, 1.0, CDF_POINTS)
    out = []
    for kind, other, task, which in scored:
        ev = evaluate(other, x)
        entry: dict[str, Any] = {
            "kind": kind,
            "task": task,
            "which": which,
            "instance_hash": other.content_hash,
            "latency": float(ev.latency),
            "gain": float(ev.gain),
            "empty_latency": float(other.empty_latency),
        }
        if rp is not None:
            r = rp.replay(x, task, which)
            lat = r.token_latency
            entry.update(
                replay_tokens=int(lat.size),
                replay_sequences=int(r.sequences.size),
                replay_mean=r.per_token.mean,
                replay_empty_mean=r.empty_mean,
                **{f"p{q}": v for q, v in r.per_token.percentiles.items()},
                replay_max=r.per_token.max,
                # the quantile function at CDF_POINTS even steps: the CDF figure without the tokens
                quantiles=[round(float(v), 6) for v in np.quantile(lat, grid)],
            )
        out.append(entry)
    return out
