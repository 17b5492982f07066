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
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from moebench.encoding import jsonable
from moebench.errors import InputError
from moebench.instance import Instance, replace_arrays
from moebench.status import WITH_PLACEMENT

#: Row columns written by :func:`holdout_columns`.
HOLDOUT_COLUMNS = ("holdout_latency", "holdout_gain", "holdout_empty_latency")
#: Twins generated in this process, by spec key.
_CACHE: dict[str, Instance] = {}


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


def spec_key(spec: Mapping[str, Any]) -> str:
    """Canonical JSON of a spec (cache key and task-id component)."""
    return json.dumps(spec, sort_keys=True, default=str)


def twin(spec: Mapping[str, Any]) -> Instance:
    """Generate (or fetch from this process's cache) the holdout twin of ``spec``."""
    from moebench.families import generate

    key = spec_key(spec)
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
