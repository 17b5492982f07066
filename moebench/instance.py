"""The problem instance: an immutable bundle of numpy arrays (SPEC section 2).

Experts of all layers are numbered globally, ``g = expert_offset[l] + e``, so that every
per-expert quantity is one flat array and the evaluator needs no Python loop over layers.
Activation sets are stored as rows of global expert ids, grouped by layer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np

from moebench.encoding import jsonable as jsonable  # re-exported (instance_file imports it from here)
from moebench.errors import InputError

#: Instance names (SPEC section 7, [ours]): a letter or digit, then up to 199 letters, digits or
#: ``. _ + = , : @ % ( ) [ ] -``. No spaces, quotes, slashes or control characters, so a name is
#: safe as one token of a line-based file (``references.solu``) and as a file name. Match it with
#: ``re.fullmatch`` (``$`` alone also matches before a final newline).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+=,:@%()\[\]-]{0,199}$"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "1-200 characters: letters, digits and . _ + = , : @ % ( ) [ ] -, starting with a letter or digit"


def valid_name(name: object) -> bool:
    """True when ``name`` is a string matching :data:`NAME_PATTERN`."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def check_name(name: object, where: str = "name") -> str:
    """Return ``name`` if it is a valid instance name.

    Raises
    ------
    InputError
        At ``where``, quoting (a shortened, escaped copy of) the name and the rule.
    """
    if valid_name(name):
        return name  # type: ignore[return-value]
    shown = json.dumps(name)[:60] if isinstance(name, str) else type(name).__name__
    raise InputError(f"invalid instance name {shown} (allowed: {NAME_RULE})", where=where)


#: The array fields and their dtypes, in the order the content hash reads them.
_ARRAYS = {
    "capacity": np.float64,
    "n_experts": np.int64,
    "size": np.float64,
    "latency": np.float64,
    "fallback": np.float64,
    "sets": np.int64,
    "probs": np.float64,
    "set_offset": np.int64,
}


def _frozen(a: Any, dtype: Any) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Instance:
    """An expert-placement instance.

    Attributes
    ----------
    name : str
        Instance name (also the key of its reference solution).
    K : int
        Experts activated per token per layer (Top-K).
    server_names : tuple of str
        One name per edge server, length N.
    capacity : ndarray, shape (N,)
        Storage capacity Q[n] of each server in MB.
    n_experts : ndarray, shape (L,)
        Number of experts E_l of each layer.
    size : ndarray, shape (G,)
        Storage size s of every expert in MB, G = sum(n_experts).
    latency : ndarray, shape (N, G)
        T[n, g]: latency in ms when expert g is served from server n.
    fallback : ndarray, shape (G,)
        T0[g]: latency in ms when expert g is cached on no server (cloud).
    sets : ndarray, shape (M, K)
        Activation sets as sorted global expert ids, grouped by layer.
    probs : ndarray, shape (M,)
        Probability of each set within its layer (each layer sums to 1).
    set_offset : ndarray, shape (L + 1,)
        Rows ``set_offset[l]:set_offset[l+1]`` of ``sets`` belong to layer l.
    meta : Mapping
        Free-form metadata (family, parameters, seed, provenance).
    """

    name: str
    K: int
    server_names: tuple[str, ...]
    capacity: np.ndarray
    n_experts: np.ndarray
    size: np.ndarray
    latency: np.ndarray
    fallback: np.ndarray
    sets: np.ndarray
    probs: np.ndarray
    set_offset: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sets", np.asarray(self.sets).reshape(-1, self.K))
        for name, dtype in _ARRAYS.items():
            set_(self, name, _frozen(getattr(self, name), dtype))
        set_(self, "server_names", tuple(self.server_names))
        # meta is kept exactly as it reads back from JSON (tuples become lists, numpy scalars floats)
        set_(self, "meta", MappingProxyType(json.loads(json.dumps(jsonable(self.meta)))))
        self._check()

    def _check(self) -> None:
        """Internal consistency; files are validated earlier with JSON paths."""
        n, g, m, layers = len(self.server_names), int(self.n_experts.sum()), len(self.probs), len(self.n_experts)

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise InputError(msg, where=self.name)

        check_name(self.name)
        need(self.K >= 1, "K must be >= 1")
        need(n >= 1, "at least one server is required")
        need(layers >= 1, "at least one layer is required")
        need(bool(np.all(self.n_experts >= self.K)), "every layer needs at least K experts")
        need(self.capacity.shape == (n,), "capacity must have one entry per server")
        need(self.size.shape == (g,), "size must have one entry per expert")
        need(self.latency.shape == (n, g), "latency must have shape (servers, experts)")
        need(self.fallback.shape == (g,), "fallback must have one entry per expert")
        need(self.sets.shape == (m, self.K), "sets must have shape (M, K)")
        need(self.set_offset.shape == (layers + 1,), "set_offset must have L + 1 entries")
        need(self.set_offset[0] == 0 and self.set_offset[-1] == m, "set_offset must span all sets")
        need(bool(np.all(np.diff(self.set_offset) >= 1)), "every layer needs at least one set")
        for what in ("capacity", "size", "latency", "fallback", "probs"):
            arr = getattr(self, what)
            need(bool(np.all(np.isfinite(arr))) and bool(np.all(arr >= 0)), f"{what} must be finite and >= 0")
        lo = self.expert_offset[self.set_layer][:, None]
        hi = self.expert_offset[self.set_layer + 1][:, None]
        need(bool(np.all((self.sets >= lo) & (self.sets < hi))), "set ids out of their layer's range")
        if self.K > 1:
            need(bool(np.all(np.diff(self.sets, axis=1) > 0)), "set ids must be sorted and distinct")
        sums = np.add.reduceat(self.probs, self.set_offset[:-1])
        need(bool(np.all(np.abs(sums - 1.0) <= 1e-6)), "probabilities of each layer must sum to 1")

    def __reduce__(self) -> tuple[Any, ...]:
        # mappingproxy is not picklable; rebuild from plain fields (derived caches recompute)
        return (Instance, tuple(_plain_fields(self).values()))

    # ---- sizes -------------------------------------------------------------------------
    @property
    def N(self) -> int:
        """Number of servers."""
        return len(self.server_names)

    @property
    def L(self) -> int:
        """Number of MoE layers."""
        return len(self.n_experts)

    @property
    def G(self) -> int:
        """Total number of experts over all layers."""
        return int(self.size.shape[0])

    @property
    def M(self) -> int:
        """Total number of activation sets over all layers."""
        return int(self.probs.shape[0])

    # ---- derived index arrays (computed once, read-only) -------------------------------
    @cached_property
    def expert_offset(self) -> np.ndarray:
        """Global id of expert 0 of each layer, plus G at the end; shape (L + 1,)."""
        return _frozen(np.concatenate([[0], np.cumsum(self.n_experts)]), np.int64)

    @cached_property
    def layer_of(self) -> np.ndarray:
        """Layer of every global expert id; shape (G,)."""
        return _frozen(np.repeat(np.arange(self.L), self.n_experts), np.int64)

    @cached_property
    def set_layer(self) -> np.ndarray:
        """Layer of every activation set; shape (M,)."""
        return _frozen(np.repeat(np.arange(self.L), np.diff(self.set_offset)), np.int64)

    @cached_property
    def marginals(self) -> np.ndarray:
        """Marginal activation rate p[g] = sum of probs of the sets containing g; shape (G,).

        Per layer the marginals sum to K.
        """
        p = np.bincount(self.sets.ravel(), weights=np.repeat(self.probs, self.K), minlength=self.G)
        return _frozen(p, np.float64)

    @cached_property
    def active(self) -> np.ndarray:
        """Experts that occur in some set with positive probability; bool, shape (G,)."""
        return _frozen(self.marginals > 0, bool)

    @cached_property
    def sets_by_position(self) -> np.ndarray:
        """The activation sets transposed, contiguous: row k holds the k-th expert of every set; shape (K, M).

        One gather into this layout followed by a maximum over axis 0 reduces K contiguous rows;
        ``values[sets].max(axis=1)`` on the (M, K) layout runs a K-long inner loop per set and is
        several times slower (benchmarks/evaluate_speed.py).
        """
        return _frozen(np.ascontiguousarray(self.sets.T), np.int64)

    def set_max(self, values: np.ndarray) -> np.ndarray:
        """Maximum of a per-expert quantity over every activation set.

        Parameters
        ----------
        values : ndarray, shape (G,) or (B, G)
            One value per global expert id (or a batch of such vectors).

        Returns
        -------
        ndarray, shape (M,) or (B, M)
            ``out[..., i] = max over g in sets[i] of values[..., g]``.
        """
        values = np.asarray(values)
        if values.ndim == 1:  # plain fancy indexing: ~2x faster than the Ellipsis form
            return values[self.sets_by_position].max(axis=0)
        return values[..., self.sets_by_position].max(axis=-2)

    @cached_property
    def base_set_latency(self) -> np.ndarray:
        """Latency of every set with nothing cached: max of T0 over the set; shape (M,)."""
        return _frozen(self.set_max(self.fallback), np.float64)

    @cached_property
    def empty_latency(self) -> float:
        """Lat(empty placement), the reference point of the gain R."""
        return float(self.probs @ self.base_set_latency)

    @property
    def total_size(self) -> float:
        """Size of all experts in MB."""
        return float(self.size.sum())

    def layer_sets(self, layer: int) -> np.ndarray:
        """Activation sets of ``layer`` as local expert ids, shape (M_l, K)."""
        lo, hi = self.set_offset[layer], self.set_offset[layer + 1]
        return self.sets[lo:hi] - self.expert_offset[layer]

    def layer_probs(self, layer: int) -> np.ndarray:
        """Probabilities of the activation sets of ``layer``."""
        return self.probs[self.set_offset[layer] : self.set_offset[layer + 1]]

    def expert_id(self, layer: int, expert: int) -> int:
        """Global id of local expert ``expert`` of ``layer``."""
        return int(self.expert_offset[layer] + expert)

    def latency_padded(self) -> np.ndarray:
        """T as a dense tensor T[n, l, e] of shape (N, L, max E_l), NaN where e >= E_l."""
        emax = int(self.n_experts.max())
        out = np.full((self.N, self.L, emax), np.nan)
        local = np.arange(self.G) - self.expert_offset[self.layer_of]
        out[:, self.layer_of, local] = self.latency
        return out

    def with_capacity(self, capacity: Sequence[float] | np.ndarray, name: str | None = None) -> Instance:
        """A copy with other server capacities (e.g. for capacity sweeps)."""
        return replace_arrays(self, capacity=np.asarray(capacity, float), name=name or self.name)

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the numerical content (not the name or meta); stable across runs."""
        h = hashlib.sha256()
        h.update(f"K={self.K};N={self.N};L={self.L};".encode())
        for name in _ARRAYS:
            h.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        return h.hexdigest()


def _plain_fields(inst: Instance) -> dict[str, Any]:
    """The constructor arguments of ``inst`` in field order (meta as a plain dict)."""
    return {f.name: getattr(inst, f.name) for f in fields(Instance)} | {"meta": dict(inst.meta)}


def replace_arrays(inst: Instance, **changes: Any) -> Instance:
    """Return a copy of ``inst`` with some fields replaced (derived caches are rebuilt)."""
    return Instance(**{**_plain_fields(inst), **changes})


@dataclass
class LayerSpec:
    """One layer, as families and file readers describe it (local expert ids).

    Attributes
    ----------
    size : ndarray, shape (E,)
        Expert sizes in MB.
    latency : ndarray, shape (N, E)
        T[n, e] for this layer.
    fallback : ndarray, shape (E,)
        T0[e] for this layer.
    sets : ndarray, shape (M, K)
        Activation sets (local ids, any order inside a set; repeats are merged).
    weights : ndarray, shape (M,)
        Probabilities of the sets, or counts when ``counts`` is true.
    counts : bool
        If true, ``weights`` are counts and are normalized to probabilities; if false they are
        kept exactly as given (so that files round-trip bit for bit).
    """

    size: np.ndarray
    latency: np.ndarray
    fallback: np.ndarray
    sets: np.ndarray
    weights: np.ndarray
    counts: bool = False


def canonical_sets(sets: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort ids inside each set, merge repeated sets (summing weights), drop zero weights.

    Merged sets keep the order of their first occurrence so that files round-trip unchanged.
    """
    sets = np.sort(np.asarray(sets, dtype=np.int64), axis=1)
    weights = np.asarray(weights, dtype=np.float64)
    uniq, first, inverse = np.unique(sets, axis=0, return_index=True, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=weights, minlength=len(uniq))
    order = np.argsort(first, kind="stable")
    uniq, summed = uniq[order], summed[order]
    keep = summed > 0
    return uniq[keep], summed[keep]


def build_instance(
    name: str,
    K: int,
    capacity: Sequence[float] | np.ndarray,
    layers: Sequence[LayerSpec],
    server_names: Sequence[str] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Instance:
    """Assemble an :class:`Instance` from per-layer descriptions.

    Parameters
    ----------
    name
        Instance name.
    K
        Top-K.
    capacity
        Server capacities in MB, shape (N,).
    layers
        One :class:`LayerSpec` per layer, with local expert ids.
    server_names
        Optional server names; default ``edge-0 .. edge-{N-1}``.
    meta
        Metadata stored with the instance.

    Returns
    -------
    Instance
    """
    capacity = np.asarray(capacity, dtype=np.float64)
    n = capacity.shape[0]
    names = tuple(server_names) if server_names is not None else tuple(f"edge-{i}" for i in range(n))
    nexp = [len(spec.size) for spec in layers]
    canon = [canonical_sets(spec.sets, spec.weights) for spec in layers]
    if any(not w.sum() > 0 for _, w in canon):
        raise InputError("a layer has no activation set with positive weight", where=name)
    return Instance(
        name=name,
        K=K,
        server_names=names,
        capacity=capacity,
        n_experts=np.array(nexp),
        size=np.concatenate([np.asarray(spec.size, float) for spec in layers]),
        latency=np.concatenate(
            [np.asarray(spec.latency, float).reshape(n, e) for spec, e in zip(layers, nexp)], axis=1
        ),
        fallback=np.concatenate([np.asarray(spec.fallback, float) for spec in layers]),
        sets=np.concatenate([s + off for (s, _), off in zip(canon, np.cumsum([0, *nexp]))]).reshape(-1, K),
        probs=np.concatenate([w / w.sum() if spec.counts else w for spec, (_, w) in zip(layers, canon)]),
        set_offset=np.concatenate([[0], np.cumsum([len(w) for _, w in canon])]),
        meta=dict(meta or {}),
    )
