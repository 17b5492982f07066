"""Latencies and sizes from physical parameters (SPEC section 2).

For server n and expert (l, e):

    T[n, l, e] = 2 * D / r[n] + delta[n] + flops[l, e] / f[n]

with D = hidden x bytes per activation (the token's hidden state travels there and back),
r the link rate, delta a fixed per-request delay and f the compute speed. The cloud fallback
T0 uses the same formula with the WAN parameters. A SwiGLU expert has three matrices of
hidden x intermediate weights, hence

    size[l, e]  = 3 * hidden * inter[l, e] * bytes_per_weight      (bytes)
    flops[l, e] = 2 * 3 * hidden * inter[l, e]                     (per token)

Defaults are those of DeepSeek-V2-Lite (hidden 2048, expert intermediate 1408, bf16):
17.3 MB and 17.3 MFLOP per expert.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.families import Param
from moebench.instance import Instance, LayerSpec, build_instance
from moebench.regime import capacity_tag_of, fallback_tag_of

#: Parameters shared by every family that builds latencies physically.
PHYSICAL_PARAMS: tuple[Param, ...] = (
    Param("servers", 3, "int", "number of edge servers N", low=1, high=1024),
    Param("capacity", 0.25, "float", "total edge storage as a fraction of the size of all experts", low=0),
    Param(
        "capacity_weights",
        None,
        "floats",
        "relative share of each server in the capacity (default: equal)",
        low=0,
        low_open=True,
    ),
    Param("hidden", 2048, "int", "hidden size of the model", low=1),
    Param("inter", 1408, "int", "expert intermediate (FFN) size", low=1),
    Param(
        "inter_jitter",
        0.0,
        "float",
        "per-expert intermediate size varies uniformly by +-this fraction (0: equal sizes)",
        low=0,
        high=1,
        high_open=True,
    ),
    Param("bytes_weight", 2.0, "float", "bytes per weight (2 = bf16, 0.5 = int4)", low=0, low_open=True),
    Param("bytes_act", 2.0, "float", "bytes per activation element sent over the link", low=0, low_open=True),
    Param(
        "delays",
        None,
        "floats",
        "fixed delay per server in ms (default: evenly spaced from delay_min to delay_max)",
        low=0,
    ),
    Param("delay_min", 2.0, "float", "fixed delay of the fastest server, ms", low=0),
    Param("delay_max", 8.0, "float", "fixed delay of the slowest server, ms", low=0),
    Param(
        "link_rate",
        (100.0,),
        "floats",
        "link rate per server in Mbit/s (one value for all or one per server)",
        low=0,
        low_open=True,
    ),
    Param(
        "compute",
        (100.0,),
        "floats",
        "compute speed per server in GFLOP/s (one value for all or one per server)",
        low=0,
        low_open=True,
    ),
    Param("cloud_delay", 30.0, "float", "fixed WAN delay of the cloud fallback, ms", low=0),
    Param("cloud_rate", (50.0,), "floats", "link rate to the cloud, Mbit/s", low=0, low_open=True),
    Param("cloud_compute", (1000.0,), "floats", "cloud compute speed, GFLOP/s", low=0, low_open=True),
)


@dataclass(frozen=True)
class Hardware:
    """Resolved per-server physical parameters (ms, Mbit/s, GFLOP/s)."""

    delay: tuple[float, ...]
    link_rate: tuple[float, ...]
    compute: tuple[float, ...]
    cloud_delay: float
    cloud_rate: float
    cloud_compute: float
    hidden: int
    bytes_act: float
    bytes_weight: float


def _per_server(values: Any, n: int, name: str) -> tuple[float, ...]:
    """One value per server (a single value is repeated); value ranges are declared in PHYSICAL_PARAMS."""
    vals = tuple(float(v) for v in values)
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n:
        raise InputError(f"{name} needs 1 or {n} values (one per server), got {len(vals)}", where=name)
    return vals


def hardware(p: dict[str, Any]) -> Hardware:
    """Resolve the physical parameters of a family's parameter dict."""
    n = int(p["servers"])
    delays = p.get("delays")
    if delays is None:
        delays = (
            tuple(np.linspace(float(p["delay_min"]), float(p["delay_max"]), n)) if n > 1 else (float(p["delay_min"]),)
        )
    return Hardware(
        delay=_per_server(delays, n, "delays"),
        link_rate=_per_server(p["link_rate"], n, "link_rate"),
        compute=_per_server(p["compute"], n, "compute"),
        cloud_delay=float(p["cloud_delay"]),
        cloud_rate=_per_server(p["cloud_rate"], 1, "cloud_rate")[0],
        cloud_compute=_per_server(p["cloud_compute"], 1, "cloud_compute")[0],
        hidden=int(p["hidden"]),
        bytes_act=float(p["bytes_act"]),
        bytes_weight=float(p["bytes_weight"]),
    )


def expert_inter(p: dict[str, Any], n_layers: int, n_experts: int, rng: np.random.Generator) -> np.ndarray:
    """Intermediate size of every expert, shape (L, E), with the requested jitter."""
    j = float(p["inter_jitter"])
    base = float(p["inter"])
    if j == 0:
        return np.full((n_layers, n_experts), base)
    return np.round(base * rng.uniform(1 - j, 1 + j, size=(n_layers, n_experts)))


def expert_size_mb(hidden: int, inter: np.ndarray, bytes_weight: float) -> np.ndarray:
    """SwiGLU expert size in MB (10^6 bytes)."""
    return 3.0 * hidden * np.asarray(inter, float) * bytes_weight / 1e6


def expert_flops(hidden: int, inter: np.ndarray) -> np.ndarray:
    """FLOPs of one token through one SwiGLU expert."""
    return 6.0 * hidden * np.asarray(inter, float)


def transfer_ms(hidden: int, bytes_act: float, rate_mbps: float) -> float:
    """Round trip of one token's hidden state over a link of ``rate_mbps`` Mbit/s, in ms."""
    bytes_per_ms = rate_mbps * 1e6 / 8 / 1e3
    return 2.0 * hidden * bytes_act / bytes_per_ms


def latencies(hw: Hardware, flops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T[n, ...] and T0[...] in ms for experts with the given FLOPs (any shape)."""
    flops = np.asarray(flops, float)
    t = np.stack(
        [
            transfer_ms(hw.hidden, hw.bytes_act, r) + d + flops / (f * 1e6)
            for r, d, f in zip(hw.link_rate, hw.delay, hw.compute)
        ]
    )
    t0 = transfer_ms(hw.hidden, hw.bytes_act, hw.cloud_rate) + hw.cloud_delay + flops / (hw.cloud_compute * 1e6)
    return t, t0


def capacities(p: dict[str, Any], total_mb: float, n: int) -> np.ndarray:
    """Per-server capacity in MB from the ``capacity`` fraction and ``capacity_weights``."""
    frac = float(p["capacity"])
    w = p.get("capacity_weights")
    w = np.ones(n) if w is None else np.asarray(_per_server(w, n, "capacity_weights"))
    return frac * total_mb * w / w.sum()


#: Parameters naming files on this machine: never stored in instance metadata.
MACHINE_PARAMS = ("data_dir", "file")


def physical_instance(
    family: str,
    name: str,
    k: int,
    p: dict[str, Any],
    seed: int,
    hw: Hardware,
    size: np.ndarray,
    flops: np.ndarray,
    layer_sets: list[tuple[np.ndarray, np.ndarray, bool]],
    model_meta: dict[str, Any],
    extra_meta: dict[str, Any],
) -> Instance:
    """Build an instance from every expert's MB and FLOPs (shape (L, E)) and the physical parameters of ``p``.

    ``layer_sets`` holds per layer ``(sets, weights, weights_are_counts)`` with local ids. The
    metadata records ``p`` (without :data:`MACHINE_PARAMS`) and ``seed``, then ``model_meta``,
    the hardware and the regime tags, then ``extra_meta``.
    """
    nl, e = size.shape
    t, t0 = latencies(hw, flops)  # t: (N, L, E), t0: (L, E)
    cap = capacities(p, float(size.sum()), len(hw.delay))
    specs = [LayerSpec(size[l], t[:, l, :], t0[l], s, w, counts=c) for l, (s, w, c) in enumerate(layer_sets)]
    meta = {
        "family": family,
        "params": {key: (list(v) if isinstance(v, tuple) else v) for key, v in p.items() if key not in MACHINE_PARAMS},
        "seed": seed,
        **model_meta,
        "hardware": asdict(hw),
        # the capacity and fallback tags of moebench.regime, from the arrays before the instance is built
        "regime": [capacity_tag_of(size.ravel(), np.arange(nl + 1) * e, cap), fallback_tag_of(t, t0)],
        **extra_meta,
    }
    return build_instance(name, k, cap, specs, meta=meta)
