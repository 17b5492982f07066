"""Generated families: deterministic, valid, and with the documented physical latencies."""

from __future__ import annotations

import numpy as np
import pytest

from moebench.errors import InputError
from moebench.families import families, generate, get_family
from moebench.families.physical import transfer_ms


@pytest.mark.parametrize("family", ["uniform", "zipf", "clustered"])
def test_deterministic_from_params_and_seed(family):
    p = {"K": 2, "layers": 2, "experts": 8, "tokens": 200, "inter_jitter": 0.2}
    a, b, c = generate(family, p, seed=3), generate(family, p, seed=3), generate(family, p, seed=4)
    assert a.content_hash == b.content_hash
    assert a.content_hash != c.content_hash
    assert np.allclose(np.add.reduceat(a.marginals, a.expert_offset[:-1]), 2.0)


def test_physical_latency_formula():
    inst = generate(
        "uniform",
        {
            "K": 1,
            "layers": 1,
            "experts": 4,
            "servers": 2,
            "tokens": 0,
            "delays": "2,8",
            "link_rate": "100,50",
            "compute": 100,
            "cloud_delay": 30,
        },
        seed=0,
    )
    flops = 6 * 2048 * 1408
    assert inst.size[0] == pytest.approx(3 * 2048 * 1408 * 2 / 1e6)  # 17.3 MB, DeepSeek-V2-Lite expert
    assert inst.latency[0, 0] == pytest.approx(2 * 2048 * 2 / (100e6 / 8 / 1e3) + 2 + flops / 100e6)
    assert inst.latency[1, 0] == pytest.approx(transfer_ms(2048, 2, 50) + 8 + flops / 100e6)
    assert inst.fallback[0] == pytest.approx(transfer_ms(2048, 2, 50) + 30 + flops / 1000e6)
    assert inst.capacity.sum() == pytest.approx(0.25 * inst.total_size)


def test_uniform_all_sets():
    inst = generate("uniform", {"K": 2, "layers": 1, "experts": 5, "tokens": 0}, seed=0)
    assert inst.M == 10 and np.allclose(inst.probs, 0.1)


def test_clustered_concentrates_on_blocks():
    inst = generate("clustered", {"K": 2, "layers": 1, "experts": 16, "tokens": 2000, "coherence": 1.0}, seed=1)
    assert inst.M <= 8  # only the 8 blocks of size K occur
    assert inst.meta["n_blocks"] == 8


def test_bad_parameters_are_input_errors():
    with pytest.raises(InputError, match="unknown parameter"):
        generate("zipf", {"colour": 1})
    with pytest.raises(InputError, match="expects int"):
        generate("zipf", {"K": "two"})
    with pytest.raises(InputError, match=r"experts \(2\) must be >= K \(3\)"):
        generate("zipf", {"K": 3, "experts": 2})
    with pytest.raises(InputError, match="unknown family"):
        get_family("nope")


def test_registry_lists_builtins():
    names = {f.name for f in families()}
    assert {"uniform", "zipf", "clustered"} <= names


def test_regime_tags():
    small = generate("uniform", {"K": 2, "layers": 8, "experts": 8, "tokens": 50, "capacity": 0.05}, seed=0)
    big = generate("uniform", {"K": 2, "layers": 8, "experts": 8, "tokens": 50, "capacity": 0.5}, seed=0)
    assert "capacity-below-one-layer" in small.meta["regime"]
    assert "capacity-several-layers" in big.meta["regime"]
