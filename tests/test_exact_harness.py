"""Exact back ends under the harness: injected faults become errors; time limits are honoured."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_exact_differential import tiny_instance

from moebench.exact import cpsat, formulations
from moebench.families import generate
from moebench.harness import run_method


def _instance_with_gain() -> object:
    rng = np.random.default_rng(3)
    while True:
        inst = tiny_instance(rng, K=2, N=2)
        rec = run_method(inst, "milp-highs")
        if rec.gain > 1e-3 and rec.placement:
            return inst


def test_decode_fault_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    inst = _instance_with_gain()
    original = formulations.SparseModel.decode

    def faulty(self: formulations.SparseModel, v: np.ndarray) -> np.ndarray:
        x = original(self, v)
        x[np.unravel_index(np.argmax(x), x.shape)] = False  # drop one cached expert
        return x

    monkeypatch.setattr(formulations.SparseModel, "decode", faulty)
    rec = run_method(inst, "milp-highs", options={"formulation": "cover"})
    assert rec.status == "error"
    assert "objective mismatch" in rec.error


def test_cpsat_objective_fault_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    inst = _instance_with_gain()
    original = cpsat.scaled_latency
    monkeypatch.setattr(cpsat, "scaled_latency", lambda m, i, obj: original(m, i, obj) + 1e-3)
    rec = run_method(inst, "cpsat")
    assert rec.status == "error"
    assert "objective mismatch" in rec.error


def test_unfaulted_solve_is_optimal() -> None:
    inst = _instance_with_gain()
    for backend in ("milp-highs", "cpsat", "milp-pyomo"):
        rec = run_method(inst, backend)
        assert rec.status == "optimal", rec.error


def test_unknown_pyomo_solver_is_unavailable() -> None:
    inst = _instance_with_gain()
    rec = run_method(inst, "milp-pyomo", options={"solver": "no-such-solver-xyz"})
    assert rec.status == "unavailable"
    assert "no-such-solver-xyz" in rec.error


@pytest.mark.parametrize("backend", ["milp-highs", "cpsat"])
def test_time_limit_returns_incumbent_and_bound(backend: str) -> None:
    # DeepSeek-like: 6 layers x 64 experts, K = 6, 5 servers, capacity below one layer per server
    inst = generate("zipf", {"K": 6, "experts": 64, "layers": 6, "servers": 5, "tokens": 1000, "capacity": 0.1}, seed=1)
    rec = run_method(inst, backend, time_limit=5, isolate=True)
    assert rec.status == "time-limit", (rec.status, rec.error)
    assert rec.feasible
    assert rec.bound is not None and math.isfinite(rec.bound)
    assert rec.bound >= rec.gain - 1e-6 * max(1.0, rec.latency)
