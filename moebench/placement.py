"""Placement files (``moebench-placement/1``) and conversions between triples and arrays."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.instance import Instance
from moebench.instance_file import _int, _list, _obj, read_json

FORMAT = "moebench-placement/1"


def to_triples(inst: Instance, x: np.ndarray) -> list[list[int]]:
    """Boolean (N, G) placement -> sorted list of ``[server, layer, expert]`` triples."""
    n, g = np.nonzero(np.asarray(x, dtype=bool))
    layer = inst.layer_of[g]
    local = g - inst.expert_offset[layer]
    return [[int(a), int(b), int(c)] for a, b, c in zip(n, layer, local)]


def placement_hash(instance_hash: str, triples: Any) -> str:
    """Content hash of a placement (SPEC section 7): SHA-256 of ``moebench-placement/1``, the
    instance's content hash and the sorted ``server layer expert`` triples, one per line."""
    rows = sorted((int(n), int(layer), int(e)) for n, layer, e in triples)
    text = "\n".join([FORMAT, str(instance_hash), *(f"{n} {layer} {e}" for n, layer, e in rows)]) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()


def from_triples(inst: Instance, triples: Any, where: str = "placement") -> np.ndarray:
    """``[server, layer, expert]`` triples -> boolean (N, G) placement, validated.

    Raises
    ------
    InputError
        When a triple is malformed, out of range or repeated.
    """
    x = np.zeros((inst.N, inst.G), dtype=bool)
    for i, t in enumerate(_list(triples, where)):
        w = f"{where}[{i}]"
        _list(t, w, length=3, what="[server, layer, expert]")
        n = _int(t[0], f"{w}[0]", minimum=0)
        layer = _int(t[1], f"{w}[1]", minimum=0)
        e = _int(t[2], f"{w}[2]", minimum=0)
        if n >= inst.N:
            raise InputError(f"server {n} out of range [0, {inst.N})", where=f"{w}[0]")
        if layer >= inst.L:
            raise InputError(f"layer {layer} out of range [0, {inst.L})", where=f"{w}[1]")
        if e >= inst.n_experts[layer]:
            raise InputError(f"expert {e} out of range [0, {inst.n_experts[layer]})", where=f"{w}[2]")
        g = inst.expert_id(layer, e)
        if x[n, g]:
            raise InputError("duplicate triple", where=w)
        x[n, g] = True
    return x


def placement_to_dict(inst: Instance, x: np.ndarray) -> dict[str, Any]:
    """The JSON document of a placement."""
    return {"format": FORMAT, "instance": inst.name, "placement": to_triples(inst, x)}


def save_placement(inst: Instance, x: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Write a placement file."""
    Path(path).write_text(json.dumps(placement_to_dict(inst, x)) + "\n")


def load_placement(inst: Instance, path: str | os.PathLike[str]) -> np.ndarray:
    """Read and validate a placement file against ``inst``.

    A different ``instance`` name is accepted (files get renamed), but the triples must fit
    the instance's dimensions.
    """
    doc = read_json(path)
    try:
        doc = _obj(doc, "", {"format", "instance", "placement"}, ("format", "placement"), "a placement")
        if doc["format"] != FORMAT:
            raise InputError(f"expected {json.dumps(FORMAT)}, got {doc['format']!r}", where="format")
        return from_triples(inst, doc["placement"])
    except InputError as err:
        raise err.with_file(str(path)) from None
