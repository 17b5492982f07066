"""Issue 13 point 4: one expert size per layer (int4 / bf16 mixes). The chain model with prefix
budgets in units of the smallest size is a relaxation: its bound must cover the optimum (brute
force, milp-highs), the placement must be feasible, and ``optimal`` only where it is."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import moebench.exact.chain.method  # noqa: F401  (registers exact-sets / bound-levels)
from moebench.errors import InputError, NotApplicableError
from moebench.evaluate import gain
from moebench.exact.bruteforce import search_space, solve_bruteforce
from moebench.exact.chain.model import chain_model
from moebench.families.traces import default_data_dir
from moebench.harness import run_method
from moebench.instance import Instance, LayerSpec, build_instance
from moebench.tolerances import bound_below
from moebench.tolerances import proven as within_tolerance


def mixed_instance(rng: np.random.Generator, name: str, *, tiny: bool = True):
    """Chain-reducible but for the sizes: one size per layer from {1, 2, 4} x 1.5 MB."""
    n = int(rng.integers(1, 4))
    nl = int(rng.integers(1, 3)) if tiny else int(rng.integers(2, 4))
    k = int(rng.integers(1, 3))
    base = rng.choice([1.0, 2.0, 3.0, 5.0, 12.0], n)
    specs = []
    for layer in range(nl):
        e = int(rng.integers(k + 1, 6 if tiny else 9))
        m = int(rng.integers(1, 10))
        sets = np.array([rng.choice(e, k, replace=False) for _ in range(m)])
        size = 1.5 * float(rng.choice([1, 2, 4]))
        specs.append(
            LayerSpec(
                size=np.full(e, size),
                latency=np.repeat((base * (1 + 0.5 * layer))[:, None], e, axis=1),
                fallback=np.full(e, 10.0 + layer),
                sets=sets,
                weights=rng.integers(1, 5, m).astype(float),
                counts=True,
            )
        )
    cap = 1.5 * rng.integers(0, 7, n) + rng.choice([0.0, 0.7], n)
    return build_instance(name, k, cap, specs)


def mixed_with_optimum(rng: np.random.Generator, prefix: str, count: int) -> Iterator[tuple[Instance, float]]:
    """``count`` tiny instances with at least two sizes, each with its brute-force optimal gain."""
    made = 0
    while made < count:
        inst = mixed_instance(rng, f"{prefix}{made}")
        if len(np.unique(inst.size)) < 2 or search_space(inst) > 100_000:
            continue
        x, _ = solve_bruteforce(inst)
        yield inst, gain(inst, x)
        made += 1


def test_units_of_the_model() -> None:
    rng = np.random.default_rng(4)
    for i in range(30):
        inst = mixed_instance(rng, f"u{i}")
        model = chain_model(inst)
        unit = float(inst.size.min())
        for layer in range(inst.L):
            assert model.units[layer] * unit == pytest.approx(inst.size[inst.expert_offset[layer]])
        assert np.array_equal(model.slots, np.floor(inst.capacity[model.order] / unit + 1e-9).astype(int))
        assert model.exact_packing == bool(np.all(inst.size == inst.size[0]))
    # sizes that are not whole multiples of the smallest are outside the model
    spec = LayerSpec(np.full(3, 1.0), np.ones((1, 3)), np.full(3, 5.0), np.array([[0, 1]]), np.ones(1))
    spec2 = LayerSpec(np.full(3, 1.5), np.ones((1, 3)), np.full(3, 5.0), np.array([[0, 1]]), np.ones(1))
    with pytest.raises(NotApplicableError, match="whole multiples"):
        chain_model(build_instance("frac", 2, [3.0], [spec, spec2]))


@pytest.mark.parametrize("method", ["exact-sets", "bound-levels", "bound-levels[nodes=1]"])
def test_mixed_sizes_against_bruteforce(method: str) -> None:
    """>= 100 instances with several sizes and a brute-force optimum: bound >= optimum >= gain,
    feasible placements, ``optimal`` only at the optimum; exact-sets proves most of them."""
    rng = np.random.default_rng(2027)
    proven = 0
    for inst, opt in mixed_with_optimum(rng, "mx", 110):
        rec = run_method(inst, method, time_limit=30, isolate=False)
        assert rec.status in ("optimal", "feasible", "time-limit"), rec.error
        assert not bound_below(rec.bound, opt, inst.empty_latency), (inst.name, rec.bound, opt)
        assert rec.gain <= opt + 1e-9
        # optimal exactly when the safe bound proves the gain within the policy's tolerance
        assert (rec.status == "optimal") == within_tolerance(rec.gain, rec.bound, inst.empty_latency)
        if rec.status == "optimal":
            assert rec.gain == pytest.approx(opt, abs=1e-9)
            proven += 1
    if method == "exact-sets":
        assert proven >= 50  # the relaxation is usually tight on these sizes: proofs where possible


def test_mixed_sizes_against_milp() -> None:
    """Larger instances: every milp-highs optimum lies under the chain bound, and where exact-sets
    says optimal the two agree."""
    from moebench.methods import registered

    if "milp-highs" not in {r.base for r in registered()}:
        pytest.skip("milp-highs is not registered")
    rng = np.random.default_rng(5)
    compared = 0
    for i in range(12):
        inst = mixed_instance(rng, f"mm{i}", tiny=False)
        milp = run_method(inst, "milp-highs", time_limit=30, isolate=False)
        if milp.status != "optimal":
            continue
        for method in ("exact-sets", "bound-levels"):
            ours = run_method(inst, method, time_limit=30, isolate=False)
            assert ours.status in ("optimal", "feasible", "time-limit"), ours.error  # "invalid" if infeasible
            assert ours.bound >= milp.gain - 1e-6 * max(1.0, milp.gain), (inst.name, method)
            assert ours.gain <= milp.gain + 1e-6 * max(1.0, milp.gain)
            if ours.status == "optimal":
                assert ours.gain == pytest.approx(milp.gain, abs=1e-6 * max(1.0, milp.gain))
        compared += 1
    assert compared >= 5


DATA = default_data_dir()


@pytest.mark.skipif(not DATA.is_dir(), reason=f"trace data folder {DATA} not present")
def test_trace_family_layer_precisions() -> None:
    from moebench.families import generate

    p = {"layers": 2, "tokens": 30, "servers": 2, "capacity": 0.25}
    bf16 = generate("deepseek-v2-lite-esft", p, seed=0)
    mixed = generate("deepseek-v2-lite-esft", {**p, "layer_bytes_weight": (0.5, 2.0)}, seed=0)
    e = bf16.expert_offset[1]
    assert np.allclose(mixed.size[e:], bf16.size[e:]) and np.allclose(mixed.size[:e], bf16.size[:e] / 4)
    assert np.allclose(mixed.latency, bf16.latency)  # precision changes bytes, not FLOPs
    assert mixed.capacity.sum() == pytest.approx(0.25 * mixed.size.sum())
    assert list(chain_model(mixed).units) == [1, 4]
    with pytest.raises(InputError, match="one per layer"):
        generate("deepseek-v2-lite-esft", {**p, "layer_bytes_weight": (0.5,)}, seed=0)


def test_mixed_sizes_python_fallback_equals_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit-indexed DPs and enumeration give the same bound and gain without numba."""
    from moebench.exact.chain import kernel

    rng = np.random.default_rng(61)
    for inst, opt in mixed_with_optimum(rng, "py", 25):
        compiled = run_method(inst, "exact-sets", time_limit=30, isolate=False)
        with monkeypatch.context() as m:
            m.setattr(kernel, "HAVE_NUMBA", False)
            python = run_method(inst, "exact-sets", time_limit=30, isolate=False)
        assert python.status == compiled.status
        assert python.gain == pytest.approx(compiled.gain, abs=1e-9)
        assert python.bound == pytest.approx(compiled.bound, abs=1e-9) and python.bound >= opt - 1e-9
