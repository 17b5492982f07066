"""The evaluator against a naive reference implementation, and the properties of SPEC section 2."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import random_instance
from hypothesis import given, settings
from hypothesis import strategies as st

from moebench.evaluate import empty_placement, evaluate, gain, latency
from moebench.instance import LayerSpec, build_instance


def naive_latency(inst, x) -> float:
    """Direct transcription of Lat(X) = sum_l sum_S pi_l(S) max_{e in S} tau_e, with loops."""
    total = 0.0
    for layer in range(inst.L):
        for s, p in zip(inst.layer_sets(layer).tolist(), inst.layer_probs(layer).tolist()):
            worst = 0.0
            for e in s:
                g = inst.expert_id(layer, e)
                tau = inst.fallback[g]
                for n in range(inst.N):
                    if x[n][g]:
                        tau = min(tau, inst.latency[n][g])
                worst = max(worst, tau)
            total += p * worst
    return total


def layer_cake_latency(inst, x) -> float:
    """SPEC's layer-cake identity: v_0 + sum_k (v_{k+1} - v_k) [some e in S not available within v_k]."""
    levels = np.unique(np.concatenate([inst.latency.ravel(), inst.fallback]))
    total = 0.0
    for m in range(inst.M):
        s = inst.sets[m]
        value = levels[0]
        for k in range(len(levels) - 1):
            v = levels[k]
            available = [
                (inst.fallback[g] <= v) or any(x[n, g] and inst.latency[n, g] <= v for n in range(inst.N)) for g in s
            ]
            if not all(available):
                value += levels[k + 1] - levels[k]
        total += inst.probs[m] * value
    return total


instance_params = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "servers": st.integers(1, 3),
        "layers": st.integers(1, 3),
        "experts": st.integers(3, 6),
        "K": st.integers(1, 3),
        "sets": st.integers(1, 8),
        "hetero": st.booleans(),
    }
)


@settings(max_examples=150, deadline=None)
@given(instance_params, st.floats(0.0, 1.0))
def test_evaluator_matches_naive(params, density):
    rng = np.random.default_rng(params.pop("seed"))
    inst = random_instance(rng, **params)
    # random placement, duplicates across servers allowed (and likely)
    x = rng.random((inst.N, inst.G)) < density
    ev = evaluate(inst, x)
    ref = naive_latency(inst, x)
    assert ev.latency == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert ev.gain == pytest.approx(naive_latency(inst, empty_placement(inst)) - ref, rel=1e-9, abs=1e-9)
    assert ev.per_layer.sum() == pytest.approx(ev.latency, rel=1e-12)
    assert layer_cake_latency(inst, x) == pytest.approx(ref, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(instance_params)
def test_gain_properties(params):
    rng = np.random.default_rng(params.pop("seed"))
    inst = random_instance(rng, **params)
    assert gain(inst, empty_placement(inst)) == 0.0
    # monotone: adding any element never lowers the gain
    x = rng.random((inst.N, inst.G)) < 0.3
    base = gain(inst, x)
    for n, g in itertools.product(range(inst.N), range(inst.G)):
        if not x[n, g]:
            y = x.copy()
            y[n, g] = True
            assert gain(inst, y) >= base - 1e-12


@settings(max_examples=100, deadline=None)
@given(instance_params)
def test_submodular_at_k1(params):
    params["K"] = 1
    rng = np.random.default_rng(params.pop("seed"))
    inst = random_instance(rng, **params)
    b = rng.random((inst.N, inst.G)) < 0.5
    a = b & (rng.random(b.shape) < 0.5)  # A subset of B
    for n, g in itertools.product(range(inst.N), range(inst.G)):
        if b[n, g]:
            continue
        ya, yb = a.copy(), b.copy()
        ya[n, g] = yb[n, g] = True
        assert gain(inst, ya) - gain(inst, a) >= gain(inst, yb) - gain(inst, b) - 1e-12


def pair_instance():
    """SPEC section 2's example: two experts always activated together (K = 2)."""
    spec = LayerSpec(
        np.array([1.0, 1.0]), np.array([[1.0, 1.0]]), np.array([10.0, 10.0]), np.array([[0, 1]]), np.array([1.0])
    )
    return build_instance("pair", 2, [2.0], [spec])


def test_co_activation_breaks_submodularity():
    inst = pair_instance()
    none = empty_placement(inst)
    one = none.copy()
    one[0, 0] = True
    both = one.copy()
    both[0, 1] = True
    only_second = none.copy()
    only_second[0, 1] = True
    # marginal of expert 1 is 0 on the empty set but 9 once expert 0 is there: not submodular
    assert gain(inst, only_second) - gain(inst, none) == 0.0
    assert gain(inst, both) - gain(inst, one) == pytest.approx(9.0)
    assert latency(inst, both) == pytest.approx(1.0)


def test_feasibility_and_violations():
    inst = pair_instance()
    x = np.ones((1, 2), dtype=bool)
    assert evaluate(inst, x).feasible
    tight = inst.with_capacity([1.5])
    ev = evaluate(tight, x)
    assert not ev.feasible
    assert ev.violations == ["server 0 (edge-0): 2 MB cached > capacity 1.5 MB"]
    assert math.isclose(ev.load[0], 2.0)


def test_wrong_shape_rejected():
    inst = pair_instance()
    with pytest.raises(ValueError, match="shape"):
        evaluate(inst, np.zeros((2, 2), bool))


@settings(max_examples=60, deadline=None)
@given(instance_params, st.integers(1, 4))
def test_set_max_matches_row_loop(params, batch):
    """The (K, M) gather used by the evaluator equals a loop over the sets, single and batched."""
    rng = np.random.default_rng(params.pop("seed"))
    inst = random_instance(rng, **params)
    values = rng.random((batch, inst.G))
    expected = np.array([[max(v[g] for g in s) for s in inst.sets.tolist()] for v in values])
    np.testing.assert_array_equal(inst.set_max(values), expected)
    np.testing.assert_array_equal(inst.set_max(values[0]), expected[0])
