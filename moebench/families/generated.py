"""Generated families: ``uniform``, ``zipf`` and ``clustered`` (SPEC section 6).

All three share the physical parameters of :mod:`moebench.families.physical` and the
structure parameters ``layers``, ``experts``, ``K`` and ``tokens``. Activation sets are
sampled per token (``tokens`` tokens per layer) and stored as counts, like a routing trace;
``uniform`` with ``tokens=0`` instead lists every K-subset with equal probability.
Everything is drawn from ``numpy.random.default_rng(seed)`` in a fixed order, so parameters
and seed determine the instance bit for bit.
"""

from __future__ import annotations

from itertools import combinations
from math import comb
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.families import Param, register_family
from moebench.families.physical import (
    PHYSICAL_PARAMS,
    expert_flops,
    expert_inter,
    expert_size_mb,
    hardware,
    physical_instance,
)
from moebench.instance import Instance, canonical_sets

#: Largest number of K-subsets ``uniform`` lists exhaustively.
MAX_ALL_SETS = 50_000
#: Largest tokens x experts of one layer's sampling (a float per cell: 400 MB).
MAX_SAMPLE_CELLS = 50_000_000
#: Largest servers x experts of all layers (the latency matrix, a float per cell: 160 MB).
MAX_LATENCY_CELLS = 20_000_000

STRUCTURE_PARAMS: tuple[Param, ...] = (
    Param("layers", 4, "int", "number of MoE layers L", low=1, high=1024),
    Param("experts", 16, "int", "routed experts per layer E", low=1, high=4096),
    Param("K", 2, "int", "experts activated per token (Top-K)", low=1, high=256),
    Param(
        "tokens", 2000, "int", "tokens sampled per layer (their Top-K sets become the activation sets)", low=0, high=1e7
    ),
)

#: Parameters the generated names spell (``zipf-L4-E16-K2-N3-s0``); ``servers`` is N unless
#: ``delays`` (spelled when given) sets it.
NAMED = ("layers", "experts", "K", "servers")


def _check_structure(p: dict[str, Any], sampled: str = "") -> tuple[int, int, int, int]:
    """The structure parameters (ranges are declared in STRUCTURE_PARAMS) and what they imply together.

    ``sampled`` names a family that needs tokens >= 1.
    """
    nl, e, k, t = int(p["layers"]), int(p["experts"]), int(p["K"]), int(p["tokens"])
    if sampled and t < 1:
        raise InputError(f"{sampled} needs tokens >= 1", where="tokens")
    if e < k:
        raise InputError(f"experts ({e}) must be >= K ({k})", where="experts")
    if t * e > MAX_SAMPLE_CELLS:
        raise InputError(f"tokens x experts = {t * e} exceeds {MAX_SAMPLE_CELLS} (sample fewer tokens)", where="tokens")
    servers = int(p.get("servers") or 1)
    if servers * nl * e > MAX_LATENCY_CELLS:
        raise InputError(
            f"servers x layers x experts = {servers * nl * e} exceeds {MAX_LATENCY_CELLS} (the latency matrix)",
            where="layers",
        )
    return nl, e, k, t


def sample_topk(rng: np.random.Generator, weights: np.ndarray, k: int, tokens: int) -> np.ndarray:
    """Sample ``tokens`` sets of ``k`` distinct experts, without replacement, proportionally to ``weights``.

    Uses the Gumbel-top-k trick (equivalent to successive sampling without replacement),
    vectorized over tokens. Returns shape (tokens, k).
    """
    logw = np.log(np.asarray(weights, float))
    keys = logw[None, :] + rng.gumbel(size=(tokens, len(weights)))
    return np.argpartition(-keys, k - 1, axis=1)[:, :k]


def all_sets(e: int, k: int) -> np.ndarray:
    """Every K-subset of ``e`` experts in lexicographic order; shape (C(e, k), k)."""
    if comb(e, k) > MAX_ALL_SETS:
        raise InputError(f"C({e},{k}) = {comb(e, k)} sets is too many to list; give tokens=N to sample", where="tokens")
    return np.array(list(combinations(range(e), k)), dtype=np.int64)


def zipf_weights(n: int, alpha: float) -> np.ndarray:
    """Weights 1/rank^alpha for ranks 1..n (rank 1 first)."""
    return 1.0 / np.arange(1, n + 1) ** alpha


def zipf_ranks(rng: np.random.Generator, n: int, alpha: float) -> np.ndarray:
    """:func:`zipf_weights` of ``n`` items whose ranks are a random permutation drawn from ``rng``."""
    w = np.empty(n)
    w[rng.permutation(n)] = zipf_weights(n, alpha)
    return w


def to_counts(sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge sampled sets into (unique sorted sets, counts), in first-occurrence order."""
    return canonical_sets(sets, np.ones(len(sets)))


def assemble(
    family: str,
    p: dict[str, Any],
    seed: int,
    n_experts: int,
    k: int,
    layer_sets: list[tuple[np.ndarray, np.ndarray, bool]],
    rng: np.random.Generator,
    extra_meta: dict[str, Any] | None = None,
) -> Instance:
    """Build the instance from sampled sets and the physical parameters.

    Parameters
    ----------
    layer_sets
        Per layer ``(sets, weights, weights_are_counts)`` with local ids.
    rng
        Generator used for the expert-size jitter (drawn after the sets).
    """
    nl = len(layer_sets)
    hw = hardware(p)
    inter = expert_inter(p, nl, n_experts, rng)
    size = expert_size_mb(hw.hidden, inter, hw.bytes_weight)
    name = f"{family}-L{nl}-E{n_experts}-K{k}-N{len(hw.delay)}-s{seed}"
    flops = expert_flops(hw.hidden, inter)
    return physical_instance(family, name, k, p, seed, hw, size, flops, layer_sets, {}, extra_meta or {})


@register_family(
    "uniform",
    params=(*STRUCTURE_PARAMS, *PHYSICAL_PARAMS),
    name_params=NAMED,
    summary="every token's Top-K set uniform over all K-subsets (tokens=0: all subsets listed, equal probability)",
)
def uniform(p: dict[str, Any], seed: int) -> Instance:
    """Uniform activation: no popularity, no co-activation structure."""
    nl, e, k, t = _check_structure(p)
    rng = np.random.default_rng(seed)
    if t == 0:
        sets = all_sets(e, k)
        layers = [(sets, np.full(len(sets), 1.0 / len(sets)), False) for _ in range(nl)]
    else:
        layers = [(*to_counts(sample_topk(rng, np.ones(e), k, t)), True) for _ in range(nl)]
    return assemble("uniform", p, seed, e, k, layers, rng)


@register_family(
    "zipf",
    params=(
        *STRUCTURE_PARAMS,
        Param("alpha", 1.0, "float", "Zipf exponent of expert popularity (0 = uniform)", low=0),
        *PHYSICAL_PARAMS,
    ),
    summary="skewed popularity: expert weights 1/rank^alpha (random ranks per layer), K drawn without replacement",
    name_params=NAMED,
)
def zipf(p: dict[str, Any], seed: int) -> Instance:
    """Zipf popularity, independent draws within a token (weak co-activation structure)."""
    nl, e, k, t = _check_structure(p, "zipf")
    alpha = float(p["alpha"])
    rng = np.random.default_rng(seed)
    layers = [(*to_counts(sample_topk(rng, zipf_ranks(rng, e, alpha), k, t)), True) for _ in range(nl)]
    return assemble("zipf", p, seed, e, k, layers, rng)


@register_family(
    "clustered",
    params=(
        *STRUCTURE_PARAMS,
        Param("block", 0, "int", "experts per block (0: K, i.e. each block is one activation set)", low=0),
        Param("coherence", 0.8, "float", "probability that a token draws all K experts from one block", low=0, high=1),
        Param("alpha", 1.0, "float", "Zipf exponent of block popularity"),
        *PHYSICAL_PARAMS,
    ),
    summary="blocks of experts that fire together (co-activation matters); the rest uniform noise",
    name_params=NAMED,
)
def clustered(p: dict[str, Any], seed: int) -> Instance:
    """Clustered co-activation: the regime where per-expert popularity is misleading."""
    nl, e, k, t = _check_structure(p, "clustered")
    block = int(p["block"]) or k
    if block < k or block > e:
        raise InputError(f"block must be in [K, experts] = [{k}, {e}], got {block}", where="block")
    coherence = float(p["coherence"])
    alpha = float(p["alpha"])
    n_blocks = e // block
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(nl):
        perm = rng.permutation(e)
        blocks = perm[: n_blocks * block].reshape(n_blocks, block)
        bw = zipf_ranks(rng, n_blocks, alpha)
        coherent = rng.random(t) < coherence
        which = rng.choice(n_blocks, size=t, p=bw / bw.sum())
        inside = sample_topk(rng, np.ones(block), k, t)  # positions inside the chosen block
        noise = sample_topk(rng, np.ones(e), k, t)
        sets = np.where(coherent[:, None], blocks[which[:, None], inside], noise)
        layers.append((*to_counts(sets), True))
    return assemble("clustered", p, seed, e, k, layers, rng, {"n_blocks": n_blocks, "block": block})
