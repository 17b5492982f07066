"""Placement files (``moebench-placement/1``) and conversions between triples and arrays."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.instance import Instance
from moebench.instance_file import _int, _list, _obj, _type_name
from moebench.json_io import read_json

FORMAT = "moebench-placement/1"
#: A content hash as written by :attr:`Instance.content_hash` (SHA-256, lower-case hex).
HASH_RE = re.compile(r"[0-9a-f]{64}")
_KEYS = {"format", "instance", "instance_hash", "placement"}


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
    """The JSON document of a placement, tied to its instance by the content hash."""
    return {
        "format": FORMAT,
        "instance": inst.name,
        "instance_hash": inst.content_hash,
        "placement": to_triples(inst, x),
    }


def save_placement(inst: Instance, x: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Write a placement file."""
    Path(path).write_text(json.dumps(placement_to_dict(inst, x)) + "\n")


def _short(h: str) -> str:
    return h[:12] + "…" if len(h) > 12 else h


def check_placement_instance(inst: Instance, doc: dict[str, Any], warn: Callable[[str], None]) -> None:
    """Refuse a placement document made for another instance than ``inst``.

    A placement with ``instance_hash`` must carry the hash of ``inst``. One without (written
    before placements carried it) is accepted only when its ``instance`` name is ``inst``'s,
    and ``warn`` is told that only the name was checked.

    Raises
    ------
    InputError
        At ``instance_hash`` or ``instance``.
    """
    if "instance_hash" in doc:
        h = doc["instance_hash"]
        if not isinstance(h, str) or not HASH_RE.fullmatch(h):
            raise InputError(
                f"expected a SHA-256 content hash (64 hex digits), got {_type_name(h)}", where="instance_hash"
            )
        if h != inst.content_hash:
            raise InputError(
                f"the placement was made for another instance (content hash {_short(h)}, "
                f"but {inst.name} has {_short(inst.content_hash)})",
                where="instance_hash",
            )
        return
    name = doc.get("instance")
    if name is None:
        raise InputError(
            "no instance_hash and no instance name: cannot tell which instance the placement was made for",
            where="instance_hash",
        )
    if name != inst.name:
        raise InputError(
            f"the placement was made for {_type_name(name).removeprefix('the string ')}, not {json.dumps(inst.name)} "
            "(and it carries no instance_hash to compare)",
            where="instance",
        )
    warn("no instance_hash (a placement written before moebench recorded it): only the instance name was checked")


def load_placement(
    inst: Instance, path: str | os.PathLike[str], *, warn: Callable[[str], None] | None = None
) -> np.ndarray:
    """Read and validate a placement file against ``inst``.

    The placement must have been made for ``inst`` (:func:`check_placement_instance`); its
    triples must fit the instance's dimensions.

    Parameters
    ----------
    warn
        Receives a warning (one line, without the file name) when the file has no content
        hash; default :func:`warnings.warn`.

    Raises
    ------
    InputError
        Naming the file, the JSON path and the reason.
    """
    doc = read_json(path)
    name = os.fspath(path)

    def _warn(msg: str) -> None:
        if warn is None:
            warnings.warn(f"{name}: {msg}", stacklevel=3)
        else:
            warn(msg)

    try:
        doc = _obj(doc, "", _KEYS, ("format", "placement"), "a placement")
        if doc["format"] != FORMAT:
            raise InputError(f"expected {json.dumps(FORMAT)}, got {_type_name(doc['format'])}", where="format")
        check_placement_instance(inst, doc, _warn)
        return from_triples(inst, doc["placement"])
    except InputError as err:
        raise err.with_file(name) from None
