"""The harness: every failure of a method becomes a status, objectives are always recomputed."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import random_instance

from moebench.evaluate import empty_placement, evaluate
from moebench.harness import run_method
from moebench.methods import Method, MethodInfo, Solution, Status

INST = random_instance(np.random.default_rng(0), servers=2, layers=2, experts=4, K=2, sets=4)
PLUGINS = ("helpers_faulty_methods",)


@pytest.fixture()
def faulty():
    """Register the test-only methods here too (the parent resolves the name before the child runs)."""
    import helpers_faulty_methods  # noqa: F401


def _method(solve, **info) -> Method:
    return Method(MethodInfo("test", "heuristic", "test", **info), solve)


def test_objective_is_recomputed_and_mismatch_is_an_error():
    x = empty_placement(INST)
    x[0, INST.sets[0]] = True
    x = x & (np.cumsum(INST.size) <= INST.capacity[0])[None, :]
    true = evaluate(INST, x).latency
    ok = run_method(INST, _method(lambda i, r: Solution(x, solver_latency=true)))
    assert ok.status == "feasible" and ok.latency == true
    bad = run_method(INST, _method(lambda i, r: Solution(x, solver_latency=true + 1.0)))
    assert bad.status == "error" and "objective mismatch" in bad.error
    assert bad.latency == true  # the recomputed number is kept for diagnosis


def test_bound_below_achieved_gain_is_an_error():
    x = empty_placement(INST)
    g = int(np.argmin(INST.size))
    x[0, g] = True
    gain = evaluate(INST, x).gain
    rec = run_method(INST, _method(lambda i, r: Solution(x, bound=gain - 1.0)))
    assert rec.status == "error" and "invalid bound" in rec.error


def test_assumptions_give_not_applicable():
    rec = run_method(INST, _method(lambda i, r: Solution(empty_placement(i)), assumptions=("K = 1",)))
    assert rec.status == "not-applicable" and "K = 1" in rec.error


@pytest.mark.parametrize(
    ("method", "status", "text"),
    [
        ("test-raise", "error", "RuntimeError"),
        ("test-infeasible", "invalid", "infeasible placement"),
        ("test-crash", "error", "child process died"),
    ],
)
def test_isolated_failures_become_statuses(method, status, text, faulty):
    rec = run_method(INST, method, time_limit=10, isolate=True, plugins=PLUGINS)
    assert rec.status == status and text in rec.error


def test_isolated_hang_is_killed_within_the_grace(faulty):
    t0 = time.monotonic()
    rec = run_method(INST, "test-hang", time_limit=1, isolate=True, grace=1, plugins=PLUGINS)
    assert time.monotonic() - t0 < 8
    assert rec.status == Status.TIME_LIMIT.value and "killed by the harness" in rec.error
    assert rec.gain == 0.0  # no incumbent: the empty placement, honestly evaluated
