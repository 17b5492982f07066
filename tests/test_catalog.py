"""The model catalog: required rows, derived sizes, and cross-checks against published totals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moebench.errors import InputError
from moebench.families.catalog import _check_row, catalog, get_model
from moebench.families.physical import expert_size_mb
from moebench.families.traces import COUNTS_JSON, ESFT_EXPERTS, ESFT_K, ESFT_LAYERS, shipped_data_dir

REQUIRED = (
    "mixtral-8x7b",
    "deepseek-v2-lite",
    "deepseekmoe-16b",
    "qwen1.5-moe-a2.7b",
    "qwen3-30b-a3b",
    "olmoe-1b-7b",
    "phi-3.5-moe",
    "gpt-oss-20b",
    "moe-llava-phi2",
)

#: Total parameters (billions) as published on each model card; routed experts must be most
#: of them. A transcription error in hidden/intermediate/experts/layers moves the ratio far.
PUBLISHED_TOTAL_B = {
    "mixtral-8x7b": 46.7,
    "deepseek-v2-lite": 15.7,
    "deepseekmoe-16b": 16.4,
    "qwen1.5-moe-a2.7b": 14.3,
    "qwen3-30b-a3b": 30.5,
    "olmoe-1b-7b": 6.9,
    "phi-3.5-moe": 41.9,
    "gpt-oss-20b": 20.9,
}


def test_required_models_present_with_citation() -> None:
    models = catalog()
    assert set(REQUIRED) <= set(models)
    for m in models.values():
        assert m.config_url == f"https://huggingface.co/{m.hf_repo}/blob/main/config.json"
        assert m.config_fields and m.verified
        assert 1 <= m.moe_layers <= m.layers_total and 1 <= m.K <= m.routed_experts


@pytest.mark.parametrize(
    ("name", "bf16", "int4"),
    [
        ("deepseek-v2-lite", 17.301504, 4.325376),  # 3 * 2048 * 1408 * {2, 0.5} / 1e6
        ("mixtral-8x7b", 352.321536, 88.080384),  # 3 * 4096 * 14336
        ("qwen3-30b-a3b", 9.437184, 2.359296),  # 3 * 2048 * 768
        ("moe-llava-phi2", 104.8576, 26.2144),  # 2 matrices (GELU fc1/fc2): 2 * 2560 * 10240
        ("gpt-oss-20b", 49.7664, 12.4416),  # 3 * 2880 * 2880
    ],
)
def test_expert_sizes(name: str, bf16: float, int4: float) -> None:
    m = get_model(name)
    assert m.expert_mb_bf16 == pytest.approx(bf16, rel=1e-12)
    assert m.expert_mb_int4 == pytest.approx(int4, rel=1e-12)


def test_swiglu_sizes_agree_with_physical_formula() -> None:
    for m in catalog().values():
        if m.mlp_matrices == 3:
            assert m.expert_mb(2.0) == pytest.approx(float(expert_size_mb(m.hidden, m.expert_inter, 2.0)), rel=1e-12)


def test_gpt_oss_native_mxfp4_and_shared_experts() -> None:
    gpt = get_model("gpt-oss-20b")
    assert gpt.native_format == "mxfp4"
    assert gpt.native_mb == pytest.approx(3 * 2880 * 2880 * 4.25 / 8 / 1e6)
    ds = get_model("deepseek-v2-lite")
    assert ds.shared_mb(2.0) == pytest.approx(2 * ds.expert_mb_bf16)  # two shared experts of the same size
    assert get_model("qwen1.5-moe-a2.7b").shared_mb(2.0) == pytest.approx(4 * 17.301504)


@pytest.mark.parametrize("name", sorted(PUBLISHED_TOTAL_B))
def test_routed_parameters_are_most_of_the_published_total(name: str) -> None:
    m = get_model(name)
    routed_b = m.moe_layers * m.routed_experts * m.expert_params / 1e9
    assert 0.85 <= routed_b / PUBLISHED_TOTAL_B[name] <= 0.98


def test_table_rows_carry_derived_sizes() -> None:
    rows = {m.name: m.to_row() for m in catalog().values()}
    assert rows["deepseek-v2-lite"]["expert_mb_bf16"] == pytest.approx(17.3015)
    assert rows["deepseek-v2-lite"]["shared_mb_bf16"] == pytest.approx(34.603)
    json.dumps(rows)  # JSON-ready


def test_bad_rows_and_names_are_input_errors() -> None:
    row = {**get_model("olmoe-1b-7b").__dict__}
    with pytest.raises(InputError, match="missing field"):
        _check_row({k: v for k, v in row.items() if k != "K"}, 0)
    with pytest.raises(InputError, match="unknown field"):
        _check_row({**row, "typo": 1}, 0)
    with pytest.raises(InputError, match="K <= routed_experts"):
        _check_row({**row, "K": 65}, 0)
    with pytest.raises(InputError, match="unknown model"):
        get_model("gpt-5")


def test_catalog_agrees_with_trace_data() -> None:
    ds = get_model("deepseek-v2-lite")
    assert (ds.moe_layers, ds.routed_experts, ds.K) == (ESFT_LAYERS, ESFT_EXPERTS, ESFT_K)
    data = json.loads((shipped_data_dir() / COUNTS_JSON).read_text())["models"]
    for key, name in (("olmoe-1b-7b-0924", "olmoe-1b-7b"), ("mixtral-8x7b-v0.1", "mixtral-8x7b")):
        m = get_model(name)
        assert (data[key]["num_experts"], data[key]["top_k"]) == (m.routed_experts, m.K)
        assert max(data[key]["layers"]) < m.moe_layers
    assert np.isfinite(ds.expert_flops)
