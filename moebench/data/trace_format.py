"""Users' own routing traces: the ``moebench-trace/1`` format and the router-logit conversion.

A trace file is JSON Lines (one JSON object per line), optionally gzip-compressed (name ending
in ``.gz``). The first line is the **header**; every further line is one **sequence**::

    {"format": "moebench-trace/1", "model": "allenai/OLMoE-1B-7B-0924", "experts": 64, "K": 8,
     "layers": [0, 1, 2, 3], "hidden": 2048, "expert_inter": 1024}
    {"task": "c4", "ids": [[[5, 17, ...], ...], ...], "weights": [[[0.21, 0.12, ...], ...], ...]}

Header fields
    ``format`` (required) ``"moebench-trace/1"``; ``experts`` routed experts per MoE layer;
    ``K`` experts per token; ``layers`` the model's layer number of each recorded MoE layer
    (its length is the number of layers L of every sequence); the expert shape, either
    ``hidden`` and ``expert_inter`` (``hidden_size`` and the expert ``intermediate_size`` of
    the model's config.json) with optional ``mlp_matrices`` (3 for SwiGLU experts, the
    default; 2 for a plain MLP), or ``catalog_model`` naming a row of moebench's model catalog;
    optional ``model`` (e.g. the Hugging Face repository), ``source`` and ``license`` (free
    text, copied into instance metadata) and ``meta`` (any JSON object, ignored).
Sequence fields
    ``task`` (required) the workload the sequence belongs to; ``ids`` (required) nested lists
    of shape L x T x K: at layer l, token t (in the order the model saw the tokens) was routed
    to experts ``ids[l][t]`` (K distinct ids in [0, experts), any order); optional ``weights``
    of the same shape (the gate weights, finite and >= 0); optional ``id`` (a string).

Unknown fields are errors. A task's sequences are numbered in file order.
:class:`TraceFileSource` reads a file into :class:`~moebench.data.source.TokenPaths` (one per
task); :class:`TraceWriter` writes one; :func:`routing_from_router_logits` turns the router
logits a Hugging Face MoE model returns with ``output_router_logits=True`` into the ``ids`` and
``weights`` of each sequence (docs/data.md has the whole recipe).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import numpy as np

from moebench.data.source import TokenPaths, check_routing
from moebench.errors import InputError
from moebench.json_io import decode_json_bytes, read_input_bytes

TRACE_FORMAT = "moebench-trace/1"
_HEADER_KEYS = {
    "format",
    "model",
    "experts",
    "K",
    "layers",
    "hidden",
    "expert_inter",
    "mlp_matrices",
    "catalog_model",
    "source",
    "license",
    "meta",
}
_SEQUENCE_KEYS = {"task", "ids", "weights", "id"}


def _int(obj: dict[str, Any], key: str, file: str, where: str, low: int = 1) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise InputError(f"{key} must be an integer >= {low}, got {v!r}", file=file, where=where)
    return v


@dataclass(frozen=True)
class ModelHeader:
    """The model description shared by trace and counts files.

    Attributes
    ----------
    experts, K : int
        Routed experts per MoE layer, experts per token.
    layers : tuple of int
        Model layer number of each recorded MoE layer.
    hidden, expert_inter, mlp_matrices : int or None
        Expert shape (None when ``catalog_model`` gives it).
    catalog_model : str or None
        A moebench catalog row giving the expert shape.
    model, source, license : str
        Free text.
    """

    experts: int
    K: int
    layers: tuple[int, ...]
    hidden: int | None = None
    expert_inter: int | None = None
    mlp_matrices: int = 3
    catalog_model: str | None = None
    model: str = ""
    source: str = ""
    license: str = ""

    @classmethod
    def parse(cls, obj: Any, file: str, where: str, fmt: str, extra: frozenset[str] = frozenset()) -> ModelHeader:
        """Validate a header object of format ``fmt`` (``extra``: further allowed keys).

        Raises
        ------
        InputError
            Naming the file, ``where`` and the field.
        """
        if not isinstance(obj, dict) or obj.get("format") != fmt:
            raise InputError(f'expected a header object with "format": "{fmt}"', file=file, where=where)
        unknown = sorted(set(obj) - _HEADER_KEYS - extra)
        if unknown:
            raise InputError(f"unknown header field {unknown[0]!r}", file=file, where=where)
        experts, k = _int(obj, "experts", file, where), _int(obj, "K", file, where)
        if k > experts:
            raise InputError(f"K={k} exceeds experts={experts}", file=file, where=where)
        layers = obj.get("layers")
        if (
            not isinstance(layers, list)
            or not layers
            or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in layers)
            or len(set(layers)) != len(layers)
        ):
            raise InputError("layers must be a non-empty list of distinct layer numbers >= 0", file=file, where=where)
        for key in ("model", "source", "license", "catalog_model"):
            if key in obj and not isinstance(obj[key], str):
                raise InputError(f"{key} must be a string", file=file, where=where)
        if "meta" in obj and not isinstance(obj["meta"], dict):
            raise InputError("meta must be an object", file=file, where=where)
        shape = [key for key in ("hidden", "expert_inter", "mlp_matrices") if key in obj]
        if ("catalog_model" in obj) == bool(shape):
            raise InputError(
                "give either catalog_model or hidden and expert_inter (and optionally mlp_matrices)",
                file=file,
                where=where,
            )
        if shape:
            hidden, inter = _int(obj, "hidden", file, where), _int(obj, "expert_inter", file, where)
            matrices = _int(obj, "mlp_matrices", file, where) if "mlp_matrices" in obj else 3
        else:
            hidden, inter, matrices = None, None, 3
        return cls(
            experts=experts,
            K=k,
            layers=tuple(layers),
            hidden=hidden,
            expert_inter=inter,
            mlp_matrices=matrices,
            catalog_model=obj.get("catalog_model"),
            model=obj.get("model", ""),
            source=obj.get("source", ""),
            license=obj.get("license", ""),
        )

    def to_json(self, fmt: str) -> dict[str, Any]:
        """The header object of format ``fmt``."""
        out: dict[str, Any] = {"format": fmt}
        if self.model:
            out["model"] = self.model
        out.update(experts=self.experts, K=self.K, layers=list(self.layers))
        if self.catalog_model is not None:
            out["catalog_model"] = self.catalog_model
        else:
            out.update(hidden=self.hidden, expert_inter=self.expert_inter, mlp_matrices=self.mlp_matrices)
        for key in ("source", "license"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


def _array(value: Any, kinds: str, shape: tuple[int, ...], file: str, where: str, what: str) -> np.ndarray:
    """``value`` as an array of shape (shape[0], T, shape[2]) whose numbers are of the dtype ``kinds``."""
    noun = "integers" if kinds == "iu" else "numbers"
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is None or (arr.size and arr.dtype.kind not in kinds):
        raise InputError(f"{what} must be nested lists of {noun} of shape L x T x K", file=file, where=where)
    if arr.ndim != 3 or arr.shape[0] != shape[0] or arr.shape[2] != shape[2] or arr.shape[1] < 1:
        raise InputError(
            f"{what} has shape {'x'.join(map(str, arr.shape))}; expected {shape[0]} x T x {shape[2]} (T >= 1)",
            file=file,
            where=where,
        )
    return arr


@dataclass(frozen=True)
class TraceFile:
    """A parsed trace file.

    Attributes
    ----------
    header : ModelHeader
        The model.
    tasks : dict
        Task name -> :class:`TokenPaths` (in the order tasks first appear).
    sha256 : str
        SHA-256 of the file's uncompressed bytes.
    sequence_ids : dict
        Task name -> the ``id`` of each sequence ("" where none was given).
    """

    header: ModelHeader
    tasks: dict[str, TokenPaths]
    sha256: str
    sequence_ids: dict[str, list[str]] = field(default_factory=dict)


def read_trace(path: str | os.PathLike[str]) -> TraceFile:
    """Read and validate a ``moebench-trace/1`` file (cached while the file is unchanged).

    Raises
    ------
    InputError
        One line naming the file, the line and the reason.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise InputError("trace file not found", file=str(p)) from None
    return _read_trace(str(p.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=4)
def _read_trace(path: str, mtime_ns: int, size: int) -> TraceFile:
    # regular files only, within the input cap (gzip inflated as a capped stream), nesting bounded
    raw = read_input_bytes(path)
    text = decode_json_bytes(raw, path)
    sha = hashlib.sha256(raw).hexdigest()
    del raw
    header: ModelHeader | None = None
    per_task: dict[str, list[tuple[np.ndarray, np.ndarray | None, str]]] = {}
    for n, line in enumerate(io.StringIO(text, newline=""), start=1):  # lines as open(newline="") splits them
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg})", file=path, where=where) from None
        if header is None:
            header = ModelHeader.parse(obj, path, where, TRACE_FORMAT)
            continue
        task, ids, w, sid = _parse_sequence(obj, header, path, where)
        per_task.setdefault(task, []).append((ids, w, sid))
    if header is None:
        raise InputError("empty trace file (no header line)", file=path)
    if not per_task:
        raise InputError("the trace has a header but no sequence", file=path)
    tasks, seq_ids = {}, {}
    for task, seqs in per_task.items():
        ids, weights, sids = zip(*seqs)
        has_w = [w is not None for w in weights]
        if any(has_w) and not all(has_w):
            raise InputError(f"task {task!r}: give weights for every sequence or for none", file=path)
        lens = [a.shape[1] for a in ids]
        dtype = np.int8 if header.experts <= 127 else np.int16 if header.experts <= 32767 else np.int32
        tasks[task] = TokenPaths(
            task=task,
            ids=np.concatenate(ids, axis=1).astype(dtype),
            seq=np.repeat(np.arange(len(lens)), lens),
            n_seq=len(lens),
            n_experts=header.experts,
            layers=header.layers,
            sha256=sha,
            weights=np.concatenate(weights, axis=1) if all(has_w) else None,
        )
        seq_ids[task] = list(sids)
    return TraceFile(header, tasks, sha, seq_ids)


def _parse_sequence(
    obj: Any, header: ModelHeader, file: str, where: str
) -> tuple[str, np.ndarray, np.ndarray | None, str]:
    if not isinstance(obj, dict):
        raise InputError("a sequence line must be a JSON object", file=file, where=where)
    unknown = sorted(set(obj) - _SEQUENCE_KEYS)
    if unknown:
        raise InputError(f"unknown sequence field {unknown[0]!r}", file=file, where=where)
    task = obj.get("task")
    if not isinstance(task, str) or not task:
        raise InputError("task must be a non-empty string", file=file, where=where)
    sid = obj.get("id", "")
    if not isinstance(sid, str):
        raise InputError("id must be a string", file=file, where=where)
    if "ids" not in obj:
        raise InputError("missing ids", file=file, where=where)
    shape = (len(header.layers), 0, header.K)
    ids = _array(obj["ids"], "iu", shape, file, f"{where}: ids", "ids").astype(np.int64)
    bad = check_routing(ids, header.experts)
    if bad:
        layer, tok = _first_bad(ids, header.experts)
        raise InputError(bad, file=file, where=f"{where}: ids[{layer}][{tok}]")
    w = None
    if obj.get("weights") is not None:
        w = _array(obj["weights"], "iuf", shape, file, f"{where}: weights", "weights").astype(np.float64)
        if w.shape != ids.shape:
            raise InputError("weights must have the shape of ids", file=file, where=f"{where}: weights")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise InputError("weights must be finite and >= 0", file=file, where=f"{where}: weights")
    return task, ids, w, sid


def _first_bad(ids: np.ndarray, n_experts: int) -> tuple[int, int]:
    """(layer, token) of the first token whose ids are out of range or repeated."""
    srt = np.sort(ids, axis=-1)
    bad = (ids < 0).any(-1) | (ids >= n_experts).any(-1) | (np.diff(srt, axis=-1) == 0).any(-1)
    layer, tok = np.argwhere(bad)[0]
    return int(layer), int(tok)


class TraceFileSource:
    """A ``moebench-trace/1`` file as a :class:`~moebench.data.source.TraceSource`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def file(self) -> TraceFile:
        """The parsed file (cached)."""
        return read_trace(self.path)

    def load(self, task: str) -> TokenPaths:
        """Token paths of ``task``."""
        tasks = self.file.tasks
        if task not in tasks:
            raise InputError(f"no task {task!r} in the trace (tasks: {', '.join(tasks)})", file=str(self.path))
        return tasks[task]


class TraceWriter:
    """Write a ``moebench-trace/1`` file, one sequence at a time.

    Parameters
    ----------
    path
        Output file; gzip-compressed (with mtime 0, so the same content gives the same bytes)
        when the name ends in ``.gz``.
    header
        The model description.

    Examples
    --------
    >>> with TraceWriter("my.jsonl.gz", ModelHeader(experts=64, K=8, layers=(0, 1), hidden=2048,
    ...                  expert_inter=1024, model="allenai/OLMoE-1B-7B-0924")) as w:  # doctest: +SKIP
    ...     w.add("c4", ids, weights)
    """

    def __init__(self, path: str | os.PathLike[str], header: ModelHeader) -> None:
        self.path = Path(path)
        self.header = header
        self._raw: IO[bytes] = open(self.path, "wb")  # closed in close()
        self._out: IO[bytes] = (
            gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0, filename="")
            if self.path.suffix == ".gz"
            else self._raw
        )
        self._line(header.to_json(TRACE_FORMAT))

    def _line(self, obj: dict[str, Any]) -> None:
        self._out.write(json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n")

    def add(self, task: str, ids: np.ndarray, weights: np.ndarray | None = None, seq_id: str = "") -> None:
        """Append one sequence: ``ids`` (and ``weights``) of shape (L, T, K).

        Raises
        ------
        InputError
            When the sequence does not fit the header (checked as the reader checks it).
        """
        obj: dict[str, Any] = {"task": task, "ids": np.asarray(ids).tolist()}
        if weights is not None:
            obj["weights"] = np.asarray(weights, dtype=np.float64).tolist()
        if seq_id:
            obj["id"] = seq_id
        _parse_sequence(obj, self.header, str(self.path), f"sequence of task {task!r}")
        self._line(obj)

    def close(self) -> None:
        """Finish the file."""
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def routing_from_router_logits(
    router_logits: Sequence[Any],
    k: int,
    *,
    attention_mask: Any = None,
    norm_topk_prob: bool = False,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[int]]:
    """Top-K routing of every sequence of a batch from a model's router logits.

    Parameters
    ----------
    router_logits
        One array per decoder layer, as Hugging Face MoE models return it with
        ``output_router_logits=True`` (``outputs.router_logits``): shape (B * S, E), or
        (B, S, E); ``None`` entries (layers without a router) are skipped. Torch tensors must be
        converted first (``t.float().cpu().numpy()``).
    k
        Experts per token (``config.num_experts_per_tok``).
    attention_mask
        Optional (B, S) array of 0/1 (the tokenizer's mask): tokens with 0 (padding) are
        dropped. Without it B = 1 for 2-D logits and every position is a token.
    norm_topk_prob
        Renormalize the K gate weights of a token to sum to 1 (the model config's
        ``norm_topk_prob``); otherwise they are the softmax probabilities over all E experts.

    Returns
    -------
    sequences : list of (ids, weights)
        Per sequence of the batch, arrays of shape (L, T, K): the K experts with the largest
        logits in decreasing order (ties: the lower id first) and their gate weights.
    layers : list of int
        Positions in ``router_logits`` of the L layers kept (the header's ``layers`` when the
        tuple has one entry per decoder layer).

    Notes
    -----
    This is the routing of routers that take the Top-K of a softmax over the logits (Mixtral,
    OLMoE, Qwen-MoE, DeepSeek-V2's greedy mode). Routers that add a bias before the Top-K or
    restrict it to expert groups (DeepSeek-V3, ``topk_method="group_limited_greedy"``) choose
    other experts than the Top-K of their logits: record their chosen ids instead.
    """
    kept = [i for i, x in enumerate(router_logits) if x is not None]
    if not kept:
        raise InputError("no router logits (was the model run with output_router_logits=True?)", where="router_logits")
    mask = None if attention_mask is None else np.asarray(attention_mask).astype(bool)
    layers = []
    for i in kept:
        arr = np.asarray(router_logits[i], dtype=np.float64)
        if arr.ndim == 2:
            b = 1 if mask is None else mask.shape[0]
            if arr.shape[0] % b:
                raise InputError(
                    f"layer {i}: {arr.shape[0]} rows do not split into {b} sequences", where="router_logits"
                )
            arr = arr.reshape(b, arr.shape[0] // b, arr.shape[1])
        if arr.ndim != 3:
            raise InputError(f"layer {i}: expected (B*S, E) or (B, S, E) logits", where="router_logits")
        layers.append(arr)
    shape = layers[0].shape
    if any(a.shape != shape for a in layers):
        raise InputError("router logits of different shapes across layers", where="router_logits")
    b, s, e = shape
    if not 1 <= k <= e:
        raise InputError(f"k={k} must be in [1, {e}]", where="k")
    if mask is not None and mask.shape != (b, s):
        raise InputError(f"attention_mask has shape {mask.shape}, the logits {b} x {s}", where="attention_mask")
    logits = np.stack(layers)  # (L, B, S, E)
    ids = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
    z = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=-1, keepdims=True)
    w = np.take_along_axis(probs, ids, axis=-1)
    if norm_topk_prob:
        w /= w.sum(axis=-1, keepdims=True)
    out = []
    for j in range(b):
        keep = slice(None) if mask is None else mask[j]
        out.append((ids[:, j, keep, :], w[:, j, keep, :]))
    return out, kept
