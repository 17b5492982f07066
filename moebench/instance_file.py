"""Reading, validating and writing ``moebench-instance/1`` files (SPEC section 7).

Every defect is reported as an :class:`~moebench.errors.InputError` naming the file, the JSON
path of the offending field and the reason, e.g.
``bad.json: layers[0].activations.sets[2]: expected 2 expert ids (K = 2), got 3``.
Nothing is repaired silently; the only normalizations are the documented ones (sorting the ids
inside a set, merging repeated sets, normalizing ``counts``).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from importlib import resources
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.instance import NAME_RULE, Instance, LayerSpec, build_instance, check_name, jsonable, valid_name
from moebench.json_io import (
    MAX_INPUT_ENV,
    MEMORY_FACTOR,
    check_json_numbers,
    fits_float,
    format_mb,
    join_path,
    max_memory_bytes,
    read_json,
    write_atomically,
)

FORMAT = "moebench-instance/1"
PROB_TOL = 1e-6

_TOP_KEYS = {"format", "name", "K", "servers", "layers", "meta"}
_TOP_REQUIRED = ("format", "K", "servers", "layers")
_SERVER_KEYS = {"name", "capacity"}
_LAYER_KEYS = {"experts", "size", "latency", "fallback", "activations"}
_ACT_KEYS = {"sets", "probs", "counts"}


def schema() -> dict[str, Any]:
    """The published JSON Schema of the instance format (shipped in the package)."""
    text = resources.files("moebench.schema").joinpath("instance.schema.json").read_text()
    return json.loads(text)


# ---------------------------------------------------------------------------------------
# validation helpers: each takes the JSON path of the value it checks
# ---------------------------------------------------------------------------------------
def _show(v: Any) -> str:
    """A short spelling of a number for messages (a 5,000-digit integer is not printed)."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**20:
        digits = len(str(abs(v)))
        return f"{float(v):.3g} ({digits} digits)" if fits_float(v) else f"an integer of {digits} digits"
    return repr(v)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return f"the number {_show(v)}"
    if isinstance(v, str):
        return f"the string {json.dumps(v)[:40]}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _number(v: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"expected a number, got {_type_name(v)}", where=where)
    if isinstance(v, int) and not fits_float(v):
        raise InputError(f"must be finite, got {_show(v)} (too large for a float)", where=where)
    f = float(v)
    if not math.isfinite(f):
        raise InputError(f"must be finite, got {v!r}", where=where)
    if positive and f <= 0:
        raise InputError(f"must be > 0, got {_show(v)}", where=where)
    if f < 0:
        raise InputError(f"must be >= 0, got {_show(v)}", where=where)
    return f


def _int(v: Any, where: str, *, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            raise InputError(f"expected an integer, got the number {v!r} (write it without '.0')", where=where)
        raise InputError(f"expected an integer, got {_type_name(v)}", where=where)
    if not fits_float(v):
        raise InputError(f"{_show(v)} does not fit a float", where=where)
    if v < minimum:
        raise InputError(f"must be >= {minimum}, got {_show(v)}", where=where)
    return v


def _obj(v: Any, where: str, allowed: set[str], required: tuple[str, ...], label: str) -> dict:
    if not isinstance(v, dict):
        raise InputError(f"expected an object ({label}), got {_type_name(v)}", where=where or "$")
    for key in v:
        if key not in allowed:
            raise InputError(f"unknown field (allowed: {', '.join(sorted(allowed))})", where=join_path(where, key))
    for key in required:
        if key not in v:
            raise InputError("missing required field", where=join_path(where, key))
    return v


def _list(v: Any, where: str, *, length: int | None = None, what: str = "", nonempty: bool = False) -> list:
    if not isinstance(v, list):
        raise InputError(f"expected a list, got {_type_name(v)}", where=where)
    if length is not None and len(v) != length:
        raise InputError(f"expected {length} entries ({what}), got {len(v)}", where=where)
    if nonempty and not v:
        raise InputError(f"must not be empty ({what})", where=where)
    return v


def _per_expert(v: Any, where: str, e: int, *, positive: bool = False) -> np.ndarray:
    """A number (same for every expert) or a list of E numbers."""
    if isinstance(v, list):
        _list(v, where, length=e, what="one per expert")
        return np.array([_number(x, f"{where}[{i}]", positive=positive) for i, x in enumerate(v)])
    return np.full(e, _number(v, where, positive=positive))


def _parse_sets(v: Any, where: str, k: int, e: int) -> np.ndarray:
    sets = _list(v, where, nonempty=True, what="at least one activation set")
    try:
        arr = np.array(sets)
    except (ValueError, OverflowError):
        arr = None  # ragged or odd: found by the slow path below
    # numpy turns [true, 1] into [1, 1]: the fast path also needs "no boolean anywhere"
    fast = arr is not None and arr.dtype.kind == "i" and arr.ndim == 2 and arr.shape[1] == k
    if fast and bool not in set(map(type, chain.from_iterable(sets))):
        bad_rows = np.flatnonzero((arr < 0).any(axis=1) | (arr >= e).any(axis=1))
        dup_rows = np.flatnonzero((np.diff(np.sort(arr, axis=1), axis=1) == 0).any(axis=1))  # none when K = 1
        first = min([*bad_rows[:1], *dup_rows[:1]], default=None)
        if first is None:
            return arr.astype(np.int64)
        _check_set(sets[int(first)], f"{where}[{first}]", k, e)
    for i, s in enumerate(sets):  # slow path: locate the first defect precisely
        _check_set(s, f"{where}[{i}]", k, e)
    raise AssertionError("unreachable: a defect was expected")  # pragma: no cover


def _check_set(s: Any, where: str, k: int, e: int) -> None:
    _list(s, where)
    if len(s) != k:
        raise InputError(f"expected {k} expert ids (K = {k}), got {len(s)}", where=where)
    seen: set[int] = set()
    for j, x in enumerate(s):
        _int(x, f"{where}[{j}]", minimum=0)
        if x >= e:
            raise InputError(f"expert id {_show(x)} out of range [0, {e})", where=f"{where}[{j}]")
        if x in seen:
            raise InputError(f"duplicate expert id {x} in one set", where=where)
        seen.add(x)


def _parse_weights(act: dict, where: str, m: int) -> tuple[np.ndarray, bool]:
    has_p, has_c = "probs" in act, "counts" in act
    if has_p == has_c:
        raise InputError("give exactly one of 'probs' or 'counts'", where=where)
    key = "probs" if has_p else "counts"
    path = f"{where}.{key}"
    vals = _list(act[key], path, length=m, what="one per set")
    if has_p:
        w = np.array([_number(x, f"{path}[{i}]") for i, x in enumerate(vals)])
        total = float(w.sum())
        if abs(total - 1.0) > PROB_TOL:
            raise InputError(f"probabilities sum to {total:.9g}, expected 1 (within {PROB_TOL:g})", where=path)
        return w, False
    w = np.array([_int(x, f"{path}[{i}]", minimum=0) for i, x in enumerate(vals)], dtype=float)
    total = float(w.sum())
    if not math.isfinite(total):
        raise InputError("counts add up to more than a float holds", where=path)
    if total <= 0:
        raise InputError("counts are all zero", where=path)
    return w, True


def array_bytes(servers: int, experts: int, sets: int, k: int) -> int:
    """Bytes of the arrays an instance of this shape needs while it is built (an upper estimate).

    The latency matrix twice (per layer, then joined), six per-expert arrays, three copies of
    the sets (parsed, sorted, joined) and four per-set arrays, all 8-byte numbers.
    """
    return 8 * (2 * servers * experts + 6 * experts + 3 * sets * k + 4 * sets)


def _check_shape(layers: list, k: int, n: int) -> None:
    """Refuse, before any array is allocated, an instance whose arrays would not fit in memory.

    A 359-byte file may declare ``"experts": 1000000000``: with a scalar ``size`` nothing in the
    file is that large, but the arrays built from it would be.
    """
    budget = max_memory_bytes()
    experts = sets = 0
    for li, layer in enumerate(layers):
        w = f"layers[{li}]"
        layer = _obj(layer, w, _LAYER_KEYS, ("experts", "size", "latency", "fallback", "activations"), "a layer")
        e = _int(layer["experts"], f"{w}.experts", minimum=1)
        if e < k:
            raise InputError(f"{e} experts but K = {k}: every layer needs at least K experts", where=f"{w}.experts")
        experts += e
        act = layer["activations"]
        if isinstance(act, dict) and isinstance(act.get("sets"), list):
            sets += len(act["sets"])
        need = array_bytes(n, experts, sets, k)
        if need > budget:
            raise InputError(
                f"the instance needs about {format_mb(need)} of arrays ({n:,} servers x {experts:,} experts "
                f"and {sets:,} sets of {k} up to this layer), more than the limit of {format_mb(budget)} "
                f"({MEMORY_FACTOR} x {MAX_INPUT_ENV})",
                where=w,
            )


def instance_from_dict(doc: Any, default_name: str = "instance") -> Instance:
    """Validate a parsed JSON document and build the :class:`Instance`.

    The sizes it declares are checked against the memory limit (:func:`array_bytes`) before
    any array is allocated.

    Raises
    ------
    InputError
        With ``where`` set to the JSON path of the first defect found.
    """
    doc = _obj(doc, "", _TOP_KEYS, _TOP_REQUIRED, "a moebench instance")
    if doc["format"] != FORMAT:
        raise InputError(f"expected {json.dumps(FORMAT)}, got {_type_name(doc['format'])}", where="format")
    if "name" in doc:
        name = doc["name"]
        if not isinstance(name, str) or not name:
            raise InputError(f"expected a non-empty string, got {_type_name(name)}", where="name")
        check_name(name)
    else:
        name = default_name
        if not valid_name(name):
            shown = json.dumps(name)[:60]
            raise InputError(
                f'the file name {shown} is not a valid instance name ({NAME_RULE}); give a "name" field',
                where="name",
            )
    k = _int(doc["K"], "K", minimum=1)
    servers = _list(doc["servers"], "servers", nonempty=True, what="at least one server is required")
    caps, names = [], []
    seen: set[str] = set()
    for i, srv in enumerate(servers):
        w = f"servers[{i}]"
        srv = _obj(srv, w, _SERVER_KEYS, ("capacity",), "a server")
        caps.append(_number(srv["capacity"], f"{w}.capacity"))
        sname = srv.get("name", f"edge-{i}")
        if not isinstance(sname, str) or not sname:
            raise InputError(f"expected a non-empty string, got {_type_name(sname)}", where=f"{w}.name")
        if sname in seen:
            raise InputError(f"duplicate server name {json.dumps(sname)[:60]}", where=f"{w}.name")
        seen.add(sname)
        names.append(sname)
    n = len(servers)
    layers = _list(doc["layers"], "layers", nonempty=True, what="at least one layer is required")
    _check_shape(layers, k, n)
    specs = []
    for li, layer in enumerate(layers):
        w = f"layers[{li}]"
        e = layer["experts"]  # checked by _check_shape
        size = _per_expert(layer["size"], f"{w}.size", e, positive=True)
        lat_list = _list(layer["latency"], f"{w}.latency", length=n, what="one per server")
        lat = np.stack([_per_expert(v, f"{w}.latency[{j}]", e) for j, v in enumerate(lat_list)])
        fallback = _per_expert(layer["fallback"], f"{w}.fallback", e)
        act = _obj(layer["activations"], f"{w}.activations", _ACT_KEYS, ("sets",), "activation sets")
        sets = _parse_sets(act["sets"], f"{w}.activations.sets", k, e)
        weights, is_counts = _parse_weights(act, f"{w}.activations", len(sets))
        specs.append(LayerSpec(size, lat, fallback, sets, weights, counts=is_counts))
    _check_totals(specs, caps)
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise InputError(f"expected an object, got {_type_name(meta)}", where="meta")
    check_json_numbers(meta, "meta")
    return build_instance(name, k, caps, specs, server_names=names, meta=meta)


def _check_totals(specs: list[LayerSpec], caps: list[float]) -> None:
    """Refuse numbers so large that the sums every evaluation forms overflow a float.

    Each number may be finite while their total is not (four sizes of 1e308 MB): every later
    latency, load and ratio would then be inf or NaN. Sums of sizes and of capacities must be
    finite, and so must L x the largest latency (a latency is a probability-weighted sum over
    layers of per-layer maxima, probabilities summing to 1 within 1e-6).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total_size = float(sum(float(np.sum(sp.size)) for sp in specs))
        total_cap = float(np.sum(caps))
        worst = max(max(float(sp.latency.max()), float(sp.fallback.max())) for sp in specs)
        total_latency = 2.0 * len(specs) * worst
    limit = "more than a float holds (about 1.8e308)"
    if not math.isfinite(total_size):
        raise InputError(f"the expert sizes add up to {limit}", where="layers")
    if not math.isfinite(total_cap):
        raise InputError(f"the capacities add up to {limit}", where="servers")
    if not math.isfinite(total_latency):
        raise InputError(
            f"latencies up to {worst:.3g} ms over {len(specs)} layer(s) can add up to {limit}", where="layers"
        )


def load_instance(path: str | os.PathLike[str]) -> Instance:
    """Load and validate an instance file (``.json`` or ``.json.gz``).

    Raises
    ------
    InputError
        Naming the file, the JSON path and the reason.
    """
    stem = Path(path).name.removesuffix(".gz").removesuffix(".json")
    doc = read_json(path)
    try:
        return instance_from_dict(doc, default_name=stem)
    except InputError as err:
        raise err.with_file(str(path)) from None


def _compact(values: np.ndarray) -> float | list[float]:
    """A single number when all entries are equal, else the list (the format allows both)."""
    if values.size and np.all(values == values[0]):
        return float(values[0])
    return [float(v) for v in values]


def instance_to_dict(inst: Instance) -> dict[str, Any]:
    """The JSON document of an instance (inverse of :func:`instance_from_dict`)."""
    layers = []
    for layer in range(inst.L):
        lo, hi = inst.expert_offset[layer], inst.expert_offset[layer + 1]
        layers.append(
            {
                "experts": int(hi - lo),
                "size": _compact(inst.size[lo:hi]),
                "latency": [_compact(inst.latency[n, lo:hi]) for n in range(inst.N)],
                "fallback": _compact(inst.fallback[lo:hi]),
                "activations": {
                    "sets": inst.layer_sets(layer).tolist(),
                    "probs": [float(p) for p in inst.layer_probs(layer)],
                },
            }
        )
    return {
        "format": FORMAT,
        "name": inst.name,
        "K": inst.K,
        "servers": [{"name": nm, "capacity": float(c)} for nm, c in zip(inst.server_names, inst.capacity)],
        "layers": layers,
        "meta": jsonable(inst.meta),
    }


def dumps_instance(inst: Instance) -> str:
    """Serialize to JSON text (one layer field per line keeps diffs readable)."""
    return json.dumps(instance_to_dict(inst), separators=(",", ":")) + "\n"


def save_instance(inst: Instance, path: str | os.PathLike[str]) -> None:
    """Write ``inst`` to ``path``; gzipped (reproducibly, mtime 0) when it ends in ``.gz``."""
    data = dumps_instance(inst).encode()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    write_atomically(p, data)
