"""Shared test helpers: random instances built directly (independent of the families)."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import numpy as np

from moebench.instance import Instance, LayerSpec, build_instance

TESTS = Path(__file__).parent
# the tests check numbers of the data folder shipped with moebench, whatever a user's
# environment points the families at
os.environ.pop("MOEBENCH_DATA", None)
sys.path.insert(0, str(TESTS))  # helper modules importable from tests


def random_instance(
    rng: np.random.Generator,
    *,
    servers: int = 2,
    layers: int = 2,
    experts: int = 4,
    K: int = 2,
    sets: int = 4,
    hetero: bool = True,
    capacity: float | None = None,
    name: str = "rand",
) -> Instance:
    """A random instance with heterogeneous sizes and per-expert latencies.

    Latencies are drawn so that some experts are slower on some servers than in the cloud
    (those copies must never help), and set probabilities are random.
    """
    specs = []
    for _ in range(layers):
        size = rng.integers(1, 6, experts).astype(float) if hetero else np.full(experts, 2.0)
        fallback = rng.uniform(5, 10, experts) if hetero else np.full(experts, 8.0)
        lat = (
            rng.uniform(0.5, 11, (servers, experts))
            if hetero
            else np.tile(np.arange(1, servers + 1, dtype=float)[:, None], experts)
        )
        all_sets = list(itertools.combinations(range(experts), K))
        pick = rng.choice(len(all_sets), size=min(sets, len(all_sets)), replace=False)
        s = np.array([all_sets[i] for i in pick])
        w = rng.random(len(s)) + 0.05
        specs.append(LayerSpec(size, lat, fallback, s, w, counts=True))
    total = sum(sp.size.sum() for sp in specs)
    cap = rng.uniform(0.1, 0.6, servers) * total if capacity is None else np.full(servers, capacity)
    return build_instance(name, K, cap, specs)
