"""Counts-only routing sources: the ``moebench-counts/1`` format.

Serving systems' expert load balancers keep per-layer counts of how often each expert was
selected, not token paths. Such counts (and, where recorded, within-layer co-activation
counts) go into one JSON file::

    {"format": "moebench-counts/1", "model": "Qwen/Qwen3-30B-A3B", "experts": 128, "K": 8,
     "layers": [0, 1, 2], "catalog_model": "qwen3-30b-a3b",
     "workloads": {"chat": {"tokens": 120000,
                            "expert_counts": [[...128 counts...], [...], [...]],
                            "pair_counts": [[[...128...], ...128 rows...], ...]}}}

The header fields are those of :mod:`moebench.data.trace_format` (``experts``, ``K``,
``layers``, the expert shape through ``hidden``/``expert_inter``/``mlp_matrices`` or
``catalog_model``, optional ``model``, ``source``, ``license``, ``meta``). Each workload has

``expert_counts`` (required)
    L rows of E non-negative integers: how many tokens selected expert e at layer l. Every row
    sums to K x tokens, and no count exceeds ``tokens``.
``tokens`` (optional)
    Number of tokens counted (default: the first row's sum divided by K).
``pair_counts`` (optional)
    L symmetric E x E matrices: how many tokens selected both i and j at layer l; the diagonal
    equals ``expert_counts`` and row i sums to K x ``expert_counts[l][i]``.

The ``counts-surrogate`` family (:mod:`moebench.families.user_traces`) turns a workload into
instances with the OLMoE family's surrogate: Top-K sets drawn from the conditional Poisson
distribution that matches the marginals exactly; ``pair_counts``, when given, measure how far
that surrogate's co-activation is from the real one (stored in the instance metadata).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from moebench.data.source import TokenPaths
from moebench.data.trace_format import ModelHeader
from moebench.errors import InputError
from moebench.json_io import decode_json_bytes, parse_json_text, read_input_bytes

COUNTS_FORMAT = "moebench-counts/1"
_WORKLOAD_KEYS = {"tokens", "expert_counts", "pair_counts"}
#: A counts file is small (a few MB even with pair counts for 128 experts x 48 layers).
MAX_COUNTS_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Workload:
    """Counts of one workload.

    Attributes
    ----------
    name : str
        Workload name.
    tokens : int
        Tokens counted.
    counts : ndarray, shape (L, E)
        Selections per layer and expert.
    pairs : ndarray, shape (L, E, E), or None
        Within-layer co-selections (diagonal = ``counts``).
    """

    name: str
    tokens: int
    counts: np.ndarray
    pairs: np.ndarray | None = None


@dataclass(frozen=True)
class CountsFile:
    """A parsed counts file: header, workloads (in file order) and SHA-256 of its bytes."""

    header: ModelHeader
    workloads: dict[str, Workload]
    sha256: str


def _ints(value: Any, shape: tuple[int, ...], file: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.shape != shape or (arr.size and arr.dtype.kind not in "iu"):
        raise InputError(f"expected integers of shape {' x '.join(map(str, shape))}", file=file, where=where)
    if np.any(arr < 0):
        raise InputError("counts must be >= 0", file=file, where=where)
    return arr.astype(np.int64)


def _workload(name: str, obj: Any, h: ModelHeader, file: str) -> Workload:
    where = f"workloads.{name}"
    if not isinstance(obj, dict):
        raise InputError("a workload must be an object", file=file, where=where)
    unknown = sorted(set(obj) - _WORKLOAD_KEYS)
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r}", file=file, where=where)
    if "expert_counts" not in obj:
        raise InputError("missing expert_counts", file=file, where=where)
    nl, e, k = len(h.layers), h.experts, h.K
    counts = _ints(obj["expert_counts"], (nl, e), file, f"{where}.expert_counts")
    sums = counts.sum(axis=1)
    if "tokens" in obj:
        tokens = obj["tokens"]
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise InputError("tokens must be an integer >= 1", file=file, where=f"{where}.tokens")
    else:
        tokens = int(sums[0]) // k
    bad = np.flatnonzero(sums != k * tokens)
    if tokens < 1 or bad.size:
        layer = int(bad[0]) if bad.size else 0
        raise InputError(
            f"expert_counts sum to {int(sums[layer])}, not K x tokens = {k} x {tokens}",
            file=file,
            where=f"{where}.expert_counts[{layer}]",
        )
    if counts.max() > tokens:
        raise InputError(f"a count exceeds the {tokens} tokens", file=file, where=f"{where}.expert_counts")
    pairs = None
    if obj.get("pair_counts") is not None:
        pw = f"{where}.pair_counts"
        pairs = _ints(obj["pair_counts"], (nl, e, e), file, pw)
        for layer in range(nl):
            m = pairs[layer]
            if not np.array_equal(m, m.T):
                raise InputError("not symmetric", file=file, where=f"{pw}[{layer}]")
            if not np.array_equal(np.diag(m), counts[layer]):
                raise InputError("diagonal differs from expert_counts", file=file, where=f"{pw}[{layer}]")
            if not np.array_equal(m.sum(axis=1), k * counts[layer]):
                raise InputError("row i must sum to K x expert_counts[i]", file=file, where=f"{pw}[{layer}]")
    return Workload(name, int(tokens), counts, pairs)


def read_counts(path: str | os.PathLike[str]) -> CountsFile:
    """Read and validate a ``moebench-counts/1`` file (cached while unchanged).

    Raises
    ------
    InputError
        One line naming the file, the field and the reason.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise InputError("counts file not found", file=str(p)) from None
    if st.st_size > MAX_COUNTS_BYTES:
        raise InputError(f"{st.st_size} bytes is too large for a counts file", file=str(p))
    return _read_counts(str(p.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=4)
def _read_counts(path: str, mtime_ns: int, size: int) -> CountsFile:
    raw = read_input_bytes(path)  # regular files only, within the input cap
    doc = parse_json_text(decode_json_bytes(raw, path), path)
    header = ModelHeader.parse(doc, path, "header", COUNTS_FORMAT, frozenset({"workloads"}))
    wl = doc.get("workloads")
    if not isinstance(wl, dict) or not wl:
        raise InputError("workloads must be a non-empty object", file=path, where="workloads")
    workloads = {name: _workload(name, obj, header, path) for name, obj in wl.items()}
    return CountsFile(header, workloads, hashlib.sha256(raw).hexdigest())


def counts_from_paths(paths: TokenPaths, pairs: bool = True) -> dict[str, Any]:
    """The workload object of a trace task: its expert counts and, if asked, pair counts."""
    out: dict[str, Any] = {
        "tokens": paths.T,
        "expert_counts": [paths.expert_counts(layer).tolist() for layer in range(paths.L)],
    }
    if pairs:
        out["pair_counts"] = [paths.pair_counts(layer).tolist() for layer in range(paths.L)]
    return out


def write_counts(path: str | os.PathLike[str], header: ModelHeader, workloads: dict[str, dict[str, Any]]) -> None:
    """Write a ``moebench-counts/1`` file (compact JSON)."""
    doc = {**header.to_json(COUNTS_FORMAT), "workloads": workloads}
    Path(path).write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
