"""The evaluator: the single source of truth for objective values (SPEC section 2).

A placement is a boolean array ``x`` of shape (N, G): ``x[n, g]`` is true when server n caches
global expert g. Everything is vectorized over experts and activation sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from moebench.instance import Instance

#: Relative tolerance of the capacity check (sizes are floats in MB).
CAPACITY_RTOL = 1e-9


def as_placement(inst: Instance, x: np.ndarray) -> np.ndarray:
    """Check the shape of a placement and return it as a boolean (N, G) array."""
    x = np.asarray(x)
    if x.shape != (inst.N, inst.G):
        raise ValueError(f"placement must have shape {(inst.N, inst.G)}, got {x.shape}")
    return x.astype(bool, copy=False)


def empty_placement(inst: Instance) -> np.ndarray:
    """The placement that caches nothing."""
    return np.zeros((inst.N, inst.G), dtype=bool)


def effective_latency(inst: Instance, x: np.ndarray) -> np.ndarray:
    """tau[g] = min(T0[g], min over servers caching g of T[n, g]); shape (G,)."""
    x = as_placement(inst, x)
    cached = np.where(x, inst.latency, np.inf).min(axis=0, initial=np.inf)
    return np.minimum(inst.fallback, cached)


def set_latency(inst: Instance, x: np.ndarray) -> np.ndarray:
    """Latency of every activation set (max over its experts of tau); shape (M,)."""
    return inst.set_max(effective_latency(inst, x))


def latency(inst: Instance, x: np.ndarray) -> float:
    """Expected MoE latency per token, Lat(X) = sum_l sum_S pi_l(S) max_{e in S} tau_e."""
    return float(inst.probs @ set_latency(inst, x))


def gain(inst: Instance, x: np.ndarray) -> float:
    """R(X) = Lat(empty) - Lat(X), computed set by set to avoid cancellation."""
    return float(inst.probs @ (inst.base_set_latency - set_latency(inst, x)))


def server_load(inst: Instance, x: np.ndarray) -> np.ndarray:
    """MB used on every server; shape (N,)."""
    return as_placement(inst, x).astype(np.float64) @ inst.size


def violations(inst: Instance, x: np.ndarray) -> list[str]:
    """Human-readable list of capacity violations (empty when feasible)."""
    load = server_load(inst, x)
    limit = inst.capacity * (1 + CAPACITY_RTOL) + 1e-12
    return [
        f"server {n} ({inst.server_names[n]}): {load[n]:.6g} MB cached > capacity {inst.capacity[n]:.6g} MB"
        for n in np.flatnonzero(load > limit)
    ]


def is_feasible(inst: Instance, x: np.ndarray) -> bool:
    """True when every server's cached experts fit its capacity."""
    return not violations(inst, x)


@dataclass(frozen=True)
class Evaluation:
    """Everything the evaluator says about a placement.

    Attributes
    ----------
    latency : float
        Lat(X) in ms per token (sum over MoE layers).
    gain : float
        R(X) = Lat(empty) - Lat(X).
    empty_latency : float
        Lat(empty).
    per_layer : ndarray, shape (L,)
        Expected latency of each layer under X.
    load : ndarray, shape (N,)
        MB cached on each server.
    feasible : bool
        True when no capacity is exceeded.
    violations : list of str
        One line per violated capacity.
    """

    latency: float
    gain: float
    empty_latency: float
    per_layer: np.ndarray
    load: np.ndarray
    feasible: bool
    violations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return {
            "latency": self.latency,
            "gain": self.gain,
            "empty_latency": self.empty_latency,
            "feasible": self.feasible,
            "violations": list(self.violations),
            "per_layer": [float(v) for v in self.per_layer],
            "load": [float(v) for v in self.load],
        }


def evaluate(inst: Instance, x: np.ndarray) -> Evaluation:
    """Evaluate a placement: latency, gain, per-layer breakdown and feasibility.

    Parameters
    ----------
    inst
        The instance.
    x
        Boolean placement of shape (N, G).

    Returns
    -------
    Evaluation
    """
    x = as_placement(inst, x)
    per_set = set_latency(inst, x)
    weighted = inst.probs * per_set
    per_layer = np.add.reduceat(weighted, inst.set_offset[:-1])
    viol = violations(inst, x)
    return Evaluation(
        latency=float(weighted.sum()),
        gain=float(inst.probs @ (inst.base_set_latency - per_set)),
        empty_latency=inst.empty_latency,
        per_layer=per_layer,
        load=server_load(inst, x),
        feasible=not viol,
        violations=viol,
    )


def latency_many(inst: Instance, xs: np.ndarray) -> np.ndarray:
    """Latency of a batch of placements, shape (B, N, G) -> (B,). Used by exhaustive search."""
    cached = np.where(xs, inst.latency[None], np.inf).min(axis=1, initial=np.inf)
    tau = np.minimum(inst.fallback[None], cached)
    return inst.set_max(tau) @ inst.probs
