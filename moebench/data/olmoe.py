"""The OLMoE routing-count pickles of allenai/OLMoE, read with a restricted unpickler.

Upstream layout (https://github.com/allenai/OLMoE at :data:`OLMOE_COMMIT`), written by
``scripts/run_routing_analysis.py``: ``scripts/routing_output/<run>/<kind>/<domain>.pkl`` with
runs ``olmoe``, ``mistral`` (Mixtral-8x7B), ``olmoe-sft`` and ``olmoe-dpo``. Each file is a
protocol-4 pickle of a ``list`` of ``collections.Counter`` whose keys are ``numpy.int64``
expert ids (or pairs of them):

``expert_counts``, ``expert_counts_top1``
    ``[Counter(layer 0), Counter(layer 7), Counter(layer 15)]``: how often each expert is in a
    token's Top-K (Top-1) at those 0-indexed decoder layers.
``expert_counts_crosslayer``, ``expert_counts_crosslayer_top1``
    ``[Counter((e0, e7)), Counter((e7, e15))]``: the k-th choice at one layer paired with the
    k-th choice at the next recorded layer for the same token (not within-layer co-activation).

Unpickling runs code named by the file; :class:`CountsUnpickler` resolves only
``collections.Counter``, numpy's scalar constructor, ``numpy.dtype`` (numeric kinds only) and
the builtin containers, and rejects every other name. :func:`counts_json` turns the pickles
into ``derived/olmoe_repo_expert_counts.json`` (the same numbers, JSON containers).
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from moebench.errors import InputError

OLMOE_COMMIT = "357454f4f647385839c0ff6b99a688dc7cd9c13f"
#: The derived counts file in a data folder.
OLMOE_COUNTS_JSON = "derived/olmoe_repo_expert_counts.json"
#: Count files are a few hundred KB; anything far larger is not one of them.
MAX_PICKLE_BYTES = 64 * 2**20

#: Upstream run folder -> (key in the JSON, Hugging Face model, routed experts, K); JSON order.
RUNS: dict[str, tuple[str, str, int, int]] = {
    "olmoe": ("olmoe-1b-7b-0924", "allenai/OLMoE-1B-7B-0924", 64, 8),
    "mistral": ("mixtral-8x7b-v0.1", "mistralai/Mixtral-8x7B-v0.1", 8, 2),
    "olmoe-sft": ("olmoe-1b-7b-0924-sft", "allenai/OLMoE-1B-7B-0924-SFT", 64, 8),
    "olmoe-dpo": ("olmoe-1b-7b-0924-instruct", "allenai/OLMoE-1B-7B-0924-Instruct", 64, 8),
}
RECORDED_LAYERS = (0, 7, 15)
#: The count kinds read, in JSON order; other folders (``eid2token``) are not read.
KINDS = ("expert_counts", "expert_counts_top1", "expert_counts_crosslayer", "expert_counts_crosslayer_top1")
CROSS_NAMES = ("0->7", "7->15")

_HEADER: dict[str, str] = {
    "_description": (
        "Derived (re-serialised) copy of the expert-count pickles from allenai/OLMoE scripts/routing_output. "
        "Values are identical to the pickled collections.Counter objects; only the container format changed. "
        "per_layer_counts[layer][expert] = number of (token, top-k slot) selections of that expert at that "
        "0-indexed decoder layer. Layers recorded by the original script: 0, 7, 15. top-k = 8 (OLMoE) / 2 "
        "(Mixtral) for expert_counts, 1 for expert_counts_top1. crosslayer[(li,lj)][ei][ej] counts "
        "zip(exp_ids[:, :, li].flatten(), exp_ids[:, :, lj].flatten()) i.e. the k-th choice at layer li paired "
        "with the k-th choice at layer lj for the same token (NOT an all-pairs co-activation)."
    ),
    "source_repo": "https://github.com/allenai/OLMoE",
    "source_commit": OLMOE_COMMIT,
    "license": "Apache-2.0",
}


class RefusedPickle(pickle.UnpicklingError):
    """A pickle that names something :class:`CountsUnpickler` does not admit."""


def _check_numeric(dt: Any) -> np.dtype:
    """``dt`` if it is a plain numeric dtype (no fields, subarrays or objects)."""
    if not isinstance(dt, np.dtype) or dt.kind not in "biuf" or dt.fields is not None or dt.subdtype is not None:
        raise RefusedPickle(f"numpy dtype {dt!r} (only plain numeric dtypes are admitted)")
    return dt


def _numeric_dtype(*args: Any) -> np.dtype:
    return _check_numeric(np.dtype(*args))


def _numeric_scalar(dt: Any, data: Any) -> Any:
    # the dtype's state arrives after its construction, so it is checked again here
    _check_numeric(dt)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise RefusedPickle("numpy scalar whose data is not the bytes of one value")
    return np.frombuffer(data, dtype=dt)[0]


class CountsUnpickler(pickle.Unpickler):
    """An unpickler that builds only Counters, numeric numpy scalars and builtin containers."""

    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("collections", "Counter"): collections.Counter,
        ("numpy", "dtype"): _numeric_dtype,
        ("builtins", "list"): list,
        ("builtins", "dict"): dict,
        ("builtins", "tuple"): tuple,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
    }
    _SCALAR: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        """Resolve only the admitted names; anything else raises :class:`RefusedPickle`."""
        if (module, name) in self._SCALAR:
            return _numeric_scalar
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise RefusedPickle(
                f"refers to {module}.{name}; only collections.Counter, numpy scalars and dtypes and builtin "
                "containers are admitted"
            ) from None


def load_counts_pickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`CountsUnpickler`.

    Raises
    ------
    InputError
        One line naming the file: too large, not a pickle, or a pickle referring to anything
        but the admitted names.
    """
    size = path.stat().st_size
    if size > MAX_PICKLE_BYTES:
        raise InputError(f"{size} bytes is too large for a routing-count pickle", file=str(path))
    try:
        return CountsUnpickler(io.BytesIO(path.read_bytes())).load()
    except RefusedPickle as exc:
        raise InputError(f"pickle refused: {exc}", file=str(path)) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
    ) as exc:
        raise InputError(f"not a readable pickle ({type(exc).__name__}: {exc})", file=str(path)) from None


def _as_id(key: Any, n_experts: int, path: Path) -> int:
    if not isinstance(key, (int, np.integer)) or isinstance(key, bool) or not 0 <= int(key) < n_experts:
        raise InputError(f"counter key {key!r} is not an expert id in [0, {n_experts})", file=str(path))
    return int(key)


def _counters(obj: Any, n: int, path: Path) -> list[collections.Counter]:
    if not isinstance(obj, list) or len(obj) != n or not all(isinstance(c, collections.Counter) for c in obj):
        raise InputError(f"expected a list of {n} collections.Counter", file=str(path))
    for c in obj:
        for v in c.values():
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise InputError(f"counter value {v!r} is not a count", file=str(path))
    return obj


def layer_counts(path: Path, n_experts: int) -> list[list[int]]:
    """``expert_counts*`` pickle -> counts per recorded layer and expert."""
    out = []
    for c in _counters(load_counts_pickle(path), len(RECORDED_LAYERS), path):
        row = [0] * n_experts
        for k, v in c.items():
            row[_as_id(k, n_experts, path)] += int(v)
        out.append(row)
    return out


def crosslayer_counts(path: Path, n_experts: int) -> list[list[list[int]]]:
    """``expert_counts_crosslayer*`` pickle -> two E x E matrices (0->7, 7->15)."""
    out = []
    for c in _counters(load_counts_pickle(path), len(CROSS_NAMES), path):
        m = [[0] * n_experts for _ in range(n_experts)]
        for k, v in c.items():
            if not isinstance(k, tuple) or len(k) != 2:
                raise InputError(f"counter key {k!r} is not a pair of expert ids", file=str(path))
            m[_as_id(k[0], n_experts, path)][_as_id(k[1], n_experts, path)] += int(v)
        out.append(m)
    return out


def find_routing_output(path: Path) -> Path:
    """``scripts/routing_output`` of an OLMoE clone, or ``path`` itself if it is that folder.

    Raises
    ------
    InputError
        When neither holds any of the run folders of :data:`RUNS`.
    """
    for cand in (path / "scripts" / "routing_output", path):
        if any((cand / run / "expert_counts").is_dir() for run in RUNS):
            return cand
    raise InputError(
        f"no OLMoE routing counts found (expected scripts/routing_output/<{'|'.join(RUNS)}>/expert_counts/*.pkl)",
        file=str(path),
    )


def counts_json(routing_output: Path) -> tuple[dict[str, Any], list[Path]]:
    """The derived counts JSON object built from an OLMoE ``routing_output`` folder.

    Returns
    -------
    data : dict
        Serialized by :func:`moebench.data.esft.dump_json` it is
        ``derived/olmoe_repo_expert_counts.json``.
    read : list of Path
        Every pickle read, in reading order.

    Raises
    ------
    InputError
        When a pickle is refused or malformed, or its counts are not a whole number of tokens.
    """
    out: dict[str, Any] = {**_HEADER, "models": {}}
    read: list[Path] = []
    for run, (key, hf, n_exp, k) in RUNS.items():
        base = routing_output / run
        domains = sorted(p.stem for p in (base / "expert_counts").glob("*.pkl"))
        if not domains:
            continue
        model: dict[str, Any] = {
            "hf_model": hf,
            "num_experts": n_exp,
            "top_k": k,
            "layers": list(RECORDED_LAYERS),
            "domains": {},
        }
        for dom in domains:
            entry: dict[str, Any] = {}
            for kind in KINDS:
                path = base / kind / f"{dom}.pkl"
                if not path.is_file():
                    continue
                read.append(path)
                if "crosslayer" in kind:
                    entry[kind] = dict(zip(CROSS_NAMES, crosslayer_counts(path, n_exp)))
                    continue
                per = layer_counts(path, n_exp)
                top = 1 if kind.endswith("top1") else k
                tokens = {sum(row) / top for row in per}
                if len(tokens) != 1 or not float(next(iter(tokens))).is_integer():
                    raise InputError(
                        f"per-layer counts do not add up to the same whole number of tokens x {top}", file=str(path)
                    )
                entry[kind] = {
                    "top_k": top,
                    "num_tokens": int(next(iter(tokens))),
                    "per_layer_counts": {str(layer): row for layer, row in zip(RECORDED_LAYERS, per)},
                }
            model["domains"][dom] = entry
        out["models"][key] = model
    return out, read
