"""Small suite files for the bench and report tests (fast: baselines and bruteforce only)."""

from __future__ import annotations

from pathlib import Path

SMALL_SUITE = """
[suite]
name = "small"
time_limit = 5.0
grace = 1.0
seed = 3
plugins = ["helpers_faulty_methods"]

[[instances]]
family = "uniform"
params = {{ layers = 2, experts = 4, servers = 2, tokens = 100 }}
grid = {{ K = [1, 2], capacity = [0.25, 0.5] }}

[[instances]]
family = "clustered"
params = {{ layers = 2, experts = 4, servers = 2, tokens = 100, K = 2 }}
seeds = [0, 1]

[[references]]
name = "bruteforce"

{methods}
"""

BASELINES = ("none", "popularity", "whole-layer", "layer-uniform", "random")


def write_suite(folder: Path, methods: tuple[str, ...] = BASELINES, extra: str = "") -> Path:
    """Write the small suite (6 instances) with ``methods`` into ``folder/suite.toml``."""
    body = "\n".join(f'[[methods]]\nname = "{m}"\n' for m in methods)
    path = folder / "suite.toml"
    path.write_text(SMALL_SUITE.format(methods=body) + extra)
    return path
