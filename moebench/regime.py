"""Which regime of SPEC section 6 an instance is in, computed from the instance alone.

SPEC section 6 names the regimes that change which method wins: total edge capacity below
one layer (a densest-subhypergraph search where co-activation decides everything), capacity
of several whole layers (caching whole layers is nearly optimal), a fallback close to the edge
latencies, and small K. The label has three tags joined by ``;``:

capacity (total capacity Q = Σ_n Q[n] against the MB of one layer, S_l = Σ_e s[l,e]):
    ``capacity-below-one-layer`` when Q < min_l S_l; ``capacity-several-layers`` when
    Q ≥ 2 · max_l S_l; ``capacity-about-one-layer`` otherwise.
fallback (median fallback T0 against the slowest edge latency max T):
    ``fallback-near-edge`` when median(T0) < 2 · max(T); ``fallback-far`` otherwise.
K:
    ``K=1`` (submodular; the K = 1 greedy family applies), ``small-K`` for K = 2, ``large-K``
    for K ≥ 3 (co-activation of many experts: one slow expert slows the whole layer).

The generators' ``meta["regime"]`` tags (:func:`moebench.families.physical.physical_instance`) are the
capacity and fallback tags of this module, computed from the arrays before the instance is
built; this module also labels instance files without metadata and adds the K tag.
"""

from __future__ import annotations

import numpy as np

from moebench.instance import Instance

#: Capacity of at least this many of the largest layers counts as "several layers".
SEVERAL_LAYERS = 2.0
#: A median fallback below this multiple of the slowest edge latency counts as "near the edge".
NEAR_EDGE = 2.0


def capacity_tag_of(size: np.ndarray, expert_offset: np.ndarray, capacity: np.ndarray) -> str:
    """The capacity tag from the arrays: flat expert sizes, layer offsets into them, capacities."""
    size = np.asarray(size, float).ravel()
    layer_mb = np.add.reduceat(size, np.asarray(expert_offset)[:-1]) if size.size else np.zeros(1)
    # relative slack: "25% of 4 layers" is one layer, whatever the rounding of the capacities
    total = float(np.sum(capacity)) * (1.0 + 1e-9)
    if total < float(layer_mb.min()):
        return "capacity-below-one-layer"
    if total >= SEVERAL_LAYERS * float(layer_mb.max()):
        return "capacity-several-layers"
    return "capacity-about-one-layer"


def fallback_tag_of(latency: np.ndarray, fallback: np.ndarray) -> str:
    """The fallback tag from the edge latencies (any shape) and the fallbacks (any shape)."""
    if np.size(latency) == 0 or np.size(fallback) == 0:
        return "fallback-far"
    near = float(np.median(fallback)) < NEAR_EDGE * float(np.max(latency))
    return "fallback-near-edge" if near else "fallback-far"


def regime_tags(inst: Instance) -> tuple[str, str, str]:
    """The capacity, fallback and K tags of ``inst`` (see the module docstring)."""
    k = "K=1" if inst.K == 1 else "small-K" if inst.K == 2 else "large-K"
    return (
        capacity_tag_of(inst.size, inst.expert_offset, inst.capacity),
        fallback_tag_of(inst.latency, inst.fallback),
        k,
    )


def regime_label(inst: Instance) -> str:
    """The tags joined by ``;``, e.g. ``capacity-below-one-layer;fallback-far;large-K``."""
    return ";".join(regime_tags(inst))
