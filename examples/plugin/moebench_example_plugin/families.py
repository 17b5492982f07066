"""The ``ring`` family: experts on a ring, each token activates K neighbours.

Registered on import (the ``moebench.families`` entry point names this module).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.families import Param, register_family
from moebench.families.generated import STRUCTURE_PARAMS, assemble, to_counts
from moebench.families.physical import PHYSICAL_PARAMS
from moebench.instance import Instance


@register_family(
    "ring",
    params=(
        *STRUCTURE_PARAMS,
        Param("alpha", 1.0, "float", "Zipf exponent of the start position's popularity"),
        *PHYSICAL_PARAMS,
    ),
    summary="(plugin) experts on a ring; a token activates K consecutive experts from a Zipf-popular start",
)
def ring(p: dict[str, Any], seed: int) -> Instance:
    """Each token picks a start s (Zipf over a random order) and activates s, s+1, ..., s+K-1 mod E."""
    nl, e, k, t = int(p["layers"]), int(p["experts"]), int(p["K"]), int(p["tokens"])
    if nl < 1 or k < 1 or e < k or t < 1:
        raise InputError("ring needs layers >= 1, 1 <= K <= experts and tokens >= 1", where="ring")
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(nl):
        w = np.empty(e)
        w[rng.permutation(e)] = 1.0 / np.arange(1, e + 1) ** float(p["alpha"])
        start = rng.choice(e, size=t, p=w / w.sum())
        sets = (start[:, None] + np.arange(k)[None, :]) % e
        s, c = to_counts(sets)
        layers.append((s, c, True))
    return assemble("ring", p, seed, e, k, layers, rng)
