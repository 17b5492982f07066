"""Adversarial search for instances on which a method's gain ratio is lowest.

A claimed guarantee is only tested seriously by looking for counterexamples, not by averaging
over random instances. :func:`stress` alternates random restarts (fresh instances of a family,
small enough for an exact reference) with hill climbing on multiplicative perturbations of
sizes, capacities, latencies and activation probabilities, always keeping the instance with
the lowest ratio R(method) / R(optimum) found. The optimum comes from an exact method
(``bruteforce`` by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.families import get_family
from moebench.harness import run_method
from moebench.instance import Instance, replace_arrays
from moebench.methods import Status, get_method

#: Family parameters used unless the user overrides them: small enough for brute force.
SMALL_DEFAULTS: dict[str, Any] = {"layers": 1, "experts": 6, "servers": 1, "K": 1, "tokens": 0, "inter_jitter": 0.5}
#: Instances whose optimal gain is below this are skipped (ratios are meaningless there).
MIN_GAIN = 1e-9


@dataclass
class StressResult:
    """Outcome of a stress search."""

    method: str
    reference: str
    family: str
    ratio: float = 1.0
    gain_method: float = 0.0
    gain_optimum: float = 0.0
    instance: Instance | None = None
    evaluations: int = 0
    restarts: int = 0
    elapsed: float = 0.0
    guarantee: float | None = None
    guarantee_applies: bool = False
    history: list[tuple[float, float]] = field(default_factory=list)

    @property
    def violates(self) -> bool:
        """True when the worst ratio found is below a guarantee that applies to that instance."""
        return bool(self.guarantee_applies and self.guarantee is not None and self.ratio < self.guarantee - 1e-9)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "method": self.method,
            "reference": self.reference,
            "family": self.family,
            "worst_ratio": self.ratio,
            "gain_method": self.gain_method,
            "gain_optimum": self.gain_optimum,
            "instance": None if self.instance is None else self.instance.name,
            "evaluations": self.evaluations,
            "restarts": self.restarts,
            "elapsed": self.elapsed,
            "guarantee": self.guarantee,
            "guarantee_applies": self.guarantee_applies,
            "violation": self.violates,
        }


def perturb(inst: Instance, rng: np.random.Generator, scale: float = 0.4) -> Instance:
    """One random multiplicative perturbation of sizes, a capacity, latencies or probabilities.

    The structure (servers, layers, sets) is kept; every value stays valid (sizes > 0,
    latencies >= 0, probabilities of each layer summing to 1).
    """
    kind = rng.integers(5)
    arrays = {k: getattr(inst, k).copy() for k in ("size", "capacity", "latency", "fallback", "probs")}
    factor = float(np.exp(rng.normal(0.0, scale)))
    if kind < 4:  # one entry of the sizes, capacities, latencies or fallbacks
        target = arrays[("size", "capacity", "latency", "fallback")[kind]]
        target[tuple(rng.integers(n) for n in target.shape)] *= factor
    else:
        probs = arrays["probs"]
        m = rng.integers(inst.M)
        probs[m] *= factor
        layer = inst.set_layer[m]
        lo, hi = inst.set_offset[layer], inst.set_offset[layer + 1]
        probs[lo:hi] /= probs[lo:hi].sum()
    return replace_arrays(inst, **arrays)


def _ratio(
    inst: Instance, method: str, reference: str, options: Mapping[str, Any]
) -> tuple[float, float, float] | None:
    ref = run_method(inst, reference, options=dict(options))
    if ref.status != Status.OPTIMAL.value or ref.gain is None or ref.gain <= MIN_GAIN:
        return None
    got = run_method(inst, method)
    if got.status not in (Status.FEASIBLE.value, Status.OPTIMAL.value) or got.gain is None:
        raise InputError(f"{method} returned status {got.status} on a stress instance: {got.error}", where="method")
    return got.gain / ref.gain, got.gain, ref.gain


def stress(
    method: str,
    family: str,
    params: Mapping[str, Any] | None = None,
    *,
    budget: float = 60.0,
    seed: int = 0,
    reference: str = "bruteforce",
    steps: int = 200,
    reference_options: Mapping[str, Any] | None = None,
    progress: Callable[[StressResult], None] | None = None,
) -> StressResult:
    """Search for the instance with the lowest gain ratio of ``method`` within ``budget`` seconds.

    Parameters
    ----------
    method
        Method under test (any registered name).
    family
        Family that provides starting instances.
    params
        Family parameters (over :data:`SMALL_DEFAULTS`).
    budget
        Wall-clock seconds.
    seed
        Seed of the search (restarts and perturbations).
    reference
        Exact method giving the optimum.
    steps
        Hill-climbing steps per restart.
    """
    m = get_method(method)
    fam = get_family(family)
    known = {p.name for p in fam.params}
    base = {k: v for k, v in SMALL_DEFAULTS.items() if k in known}
    base.update(params or {})
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    best = StressResult(method, reference, family, guarantee=m.info.guarantee.ratio if m.info.guarantee else None)
    opts = dict(reference_options or {})
    while time.perf_counter() - t0 < budget:
        best.restarts += 1
        inst = fam.generate(base, seed=int(rng.integers(2**31)), name=f"stress-{family}")
        for _ in range(int(rng.integers(0, 6))):  # start from a shaken instance
            inst = perturb(inst, rng, 0.8)
        scored = _ratio(inst, method, reference, opts)
        best.evaluations += 1
        if scored is None:
            continue
        cur_ratio = scored[0]
        for step in range(steps + 1):
            if step > 0:  # step 0 only records the restart's own instance
                if time.perf_counter() - t0 >= budget:
                    break
                cand = perturb(inst, rng, 0.6 if step <= steps // 2 else 0.2)
                s = _ratio(cand, method, reference, opts)
                best.evaluations += 1
                if s is not None and s[0] <= cur_ratio:
                    inst, cur_ratio, scored = cand, s[0], s
            if cur_ratio < best.ratio or best.instance is None:  # keep a scored instance even at ratio 1
                best.ratio, best.gain_method, best.gain_optimum, best.instance = cur_ratio, scored[1], scored[2], inst
                best.history.append((time.perf_counter() - t0, cur_ratio))
                if progress:
                    progress(best)
    best.elapsed = time.perf_counter() - t0
    if best.instance is not None:
        g = m.info.guarantee
        best.guarantee_applies = bool(g is not None and g.applies(best.instance))
        meta = dict(best.instance.meta)
        meta["stress"] = {k: v for k, v in best.to_dict().items() if k != "instance"}
        best.instance = replace_arrays(best.instance, meta=meta, name=f"stress-{method}-{family}-s{seed}")
    return best
