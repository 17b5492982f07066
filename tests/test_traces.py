"""Trace-derived and surrogate families against the shipped data and independent computations."""

from __future__ import annotations

import gzip
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moebench.errors import InputError
from moebench.families import generate
from moebench.families.catalog import catalog, get_model
from moebench.families.traces import (
    ACTIVATION_COUNTS,
    ACTIVATION_REAL,
    ESFT_TASKS,
    ZIPF_ALPHA_DEEPSEEK,
    cps_exact,
    cps_inclusion,
    cps_sample,
    deepseek_train_test,
    fit_cps,
    fit_zipf_alpha,
    resolve_data_dir,
    shipped_data_dir,
)
from moebench.instance_file import load_instance, save_instance

DATA = shipped_data_dir()
PAIRS = "derived/deepseek-v2-lite-esft_expert_and_pair_counts.json"


@pytest.fixture(scope="module")
def esft_counts() -> dict:
    return json.loads((DATA / PAIRS).read_text())["tasks"]


def layer_counts(inst, n_tokens: int) -> np.ndarray:
    """Integer selection counts per (layer, expert) reconstructed from the instance."""
    return np.rint(inst.marginals * n_tokens).reshape(inst.L, -1).astype(np.int64)


def raw_esft(task: str) -> list[list[np.ndarray]]:
    """Independent reader: per layer, per sequence, the (tokens, 6) id arrays."""
    out = []
    for layer in range(1, 27):
        text = gzip.decompress(
            (DATA / f"deepseek-v2-lite-esft/expert_scores/{task}/expert_weights_{layer}.txt.gz").read_bytes()
        )
        out.append(
            [np.array(ln.split("\t\t")[0].split("\t"), int).reshape(-1, 6) for ln in text.decode().splitlines() if ln]
        )
    return out


# ---- DeepSeek-V2-Lite ESFT ----------------------------------------------------------------------
@pytest.mark.parametrize("task", ESFT_TASKS)
def test_all_tokens_reproduce_expert_counts_exactly(task: str, esft_counts: dict) -> None:
    """Acceptance 1: tokens=0 and split=1 give exactly the derived JSON's expert_counts."""
    inst = generate("deepseek-v2-lite-esft", {"task": task, "tokens": 0, "split": 1.0}, seed=3)
    ref = esft_counts[task]
    n = ref["num_tokens"]
    assert inst.meta["provenance"]["tokens_used"] == n
    assert np.array_equal(layer_counts(inst, n), np.array(ref["expert_counts"]))
    assert np.max(np.abs(inst.marginals * n - np.ravel(ref["expert_counts"]))) < 1e-6
    assert (inst.K, inst.L, inst.G) == (6, 26, 26 * 64)


def test_all_tokens_reproduce_pair_counts(esft_counts: dict) -> None:
    """Real co-activation: within-layer pair counts of the sets equal the derived JSON's."""
    inst = generate("deepseek-v2-lite-esft", {"task": "law", "tokens": 0, "split": 1.0}, seed=0)
    ref = esft_counts["law"]
    n = ref["num_tokens"]
    for layer in range(inst.L):
        sets, w = inst.layer_sets(layer), inst.layer_probs(layer) * n
        i, j = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")  # all ordered pairs, diagonal included
        flat = (sets[:, i.ravel()] * 64 + sets[:, j.ravel()]).ravel()
        pairs = np.bincount(flat, weights=np.repeat(w, 36), minlength=64 * 64).reshape(64, 64)
        assert np.array_equal(np.rint(pairs).astype(int), np.array(ref["pair_counts"][layer])), layer


def test_cli_generate_law_matches_counts(tmp_path: Path, esft_counts: dict) -> None:
    out = tmp_path / "law.json.gz"
    cmd = [sys.executable, "-m", "moebench.cli", "instances", "generate", "deepseek-v2-lite-esft"]
    cmd += ["--param", "task=law", "--param", "tokens=0", "--param", "split=1", "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    inst = load_instance(out)
    assert np.array_equal(
        layer_counts(inst, esft_counts["law"]["num_tokens"]), np.array(esft_counts["law"]["expert_counts"])
    )
    same = generate("deepseek-v2-lite-esft", {"task": "law", "tokens": 0, "split": 1.0}, seed=0)
    assert inst.content_hash == same.content_hash
    assert "data_dir" not in inst.meta["params"]


def test_train_test_share_everything_but_sets(esft_counts: dict) -> None:
    params = {"task": "law", "servers": 5, "delays": "2,3,4,6,8", "capacity": 0.25}
    train, test = deepseek_train_test(params, seed=7)
    for field in ("capacity", "n_experts", "size", "latency", "fallback"):
        assert np.array_equal(getattr(train, field), getattr(test, field)), field
    assert train.server_names == test.server_names
    ptr, pte = train.meta["provenance"], test.meta["provenance"]
    assert ptr["train_sequences"] == pte["train_sequences"] and ptr["test_sequences"] == pte["test_sequences"]
    assert sorted(ptr["train_sequences"] + ptr["test_sequences"]) == list(range(33))
    assert len(ptr["train_sequences"]) == round(0.8 * 33)
    # the two splits partition the tokens: their counts add up to the full counts
    ref = esft_counts["law"]
    total = layer_counts(train, ptr["tokens_used"]) + layer_counts(test, pte["tokens_used"])
    assert ptr["tokens_used"] + pte["tokens_used"] == ref["num_tokens"]
    assert np.array_equal(total, np.array(ref["expert_counts"]))
    assert train.meta["activation_model"] == ACTIVATION_REAL
    assert train.meta["provenance"]["commit"] == "579a7711e4b332b4c57b47e378a0cf240d85caa6"
    assert train.meta["provenance"]["license"].startswith("MIT")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_sampled_token_follows_one_real_path(seed: int) -> None:
    """tokens=1: the 26 layer sets are those of one real token (same index in every layer)."""
    inst = generate("deepseek-v2-lite-esft", {"task": "summary", "tokens": 1}, seed=seed)
    assert inst.M == 26 and np.all(inst.probs == 1.0)
    raw = raw_esft("summary")
    flat = np.stack([np.sort(np.concatenate(layer), axis=1) for layer in raw])  # (26, T, 6)
    mine = np.stack([inst.layer_sets(layer)[0] for layer in range(26)])  # (26, 6)
    hits = np.flatnonzero(np.all(flat == mine[:, None, :], axis=(0, 2)))
    assert hits.size >= 1
    train = set(inst.meta["provenance"]["train_sequences"])
    seq_of = np.repeat(np.arange(len(raw[0])), [len(s) for s in raw[0]])
    assert any(seq_of[h] in train for h in hits)


def test_sampling_is_seeded_and_sized() -> None:
    a = generate("deepseek-v2-lite-esft", {"task": "intent", "tokens": 300, "layers": 4}, seed=5)
    b = generate("deepseek-v2-lite-esft", {"task": "intent", "tokens": 300, "layers": 4}, seed=5)
    c = generate("deepseek-v2-lite-esft", {"task": "intent", "tokens": 300, "layers": 4}, seed=6)
    assert a.content_hash == b.content_hash != c.content_hash
    assert a.L == 4 and a.meta["provenance"]["tokens_used"] == 300
    counts = a.marginals.reshape(4, 64) * 300
    assert np.allclose(counts, np.rint(counts)) and np.allclose(counts.sum(axis=1), 300 * 6)
    assert a.size[0] == pytest.approx(17.301504)
    small = generate(
        "deepseek-v2-lite-esft", {"task": "intent", "tokens": 300, "layers": 4, "bytes_weight": 0.5}, seed=5
    )
    assert small.size[0] == pytest.approx(4.325376)


def test_instance_file_round_trip(tmp_path: Path) -> None:
    inst = generate("deepseek-v2-lite-esft", {"task": "translation", "tokens": 200, "layers": 3}, seed=1)
    save_instance(inst, tmp_path / "t.json")
    assert load_instance(tmp_path / "t.json").content_hash == inst.content_hash


def test_data_folder_resolution_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="not found"):
        generate("deepseek-v2-lite-esft", {"data_dir": str(tmp_path / "nope")})
    # an incomplete copy: layer 26 of law missing
    part = tmp_path / "partial" / "deepseek-v2-lite-esft" / "expert_scores" / "law"
    part.mkdir(parents=True)
    for layer in range(1, 26):
        name = f"expert_weights_{layer}.txt.gz"
        (part / name).symlink_to(DATA / "deepseek-v2-lite-esft/expert_scores/law" / name)
    with pytest.raises(InputError, match=r"expert_weights_26\.txt\.gz"):
        generate("deepseek-v2-lite-esft", {"data_dir": str(tmp_path / "partial")})
    with pytest.raises(InputError, match=r"olmoe_repo_expert_counts\.json"):
        generate("olmoe-counts", {"data_dir": str(tmp_path / "partial")})
    # the environment variable is the default; the parameter overrides it
    monkeypatch.setenv("MOEBENCH_DATA", str(tmp_path / "partial"))
    assert resolve_data_dir() == tmp_path / "partial"
    with pytest.raises(InputError, match="expert_weights_26"):
        generate("deepseek-v2-lite-esft", {"task": "law"})
    inst = generate("deepseek-v2-lite-esft", {"task": "law", "tokens": 50, "layers": 2, "data_dir": str(DATA)})
    assert inst.L == 2
    with pytest.raises(InputError, match="no test sequence"):
        generate("deepseek-v2-lite-esft", {"task": "law", "split": 1.0, "which": "test", "data_dir": str(DATA)})


# ---- conditional Poisson sampling (no data needed) ------------------------------------------------
def brute_inclusion(w: np.ndarray, k: int) -> np.ndarray:
    sets = list(itertools.combinations(range(len(w)), k))
    p = np.array([np.prod(w[list(s)]) for s in sets])
    p /= p.sum()
    out = np.zeros(len(w))
    for s, q in zip(sets, p):
        out[list(s)] += q
    return out


@pytest.mark.parametrize(("e", "k"), [(5, 1), (6, 3), (7, 2), (8, 5)])
def test_cps_inclusion_matches_enumeration(e: int, k: int) -> None:
    rng = np.random.default_rng(e * 10 + k)
    w = rng.gamma(0.7, size=e)
    w[0] = 0.0  # a never-drawn expert
    assert np.allclose(cps_inclusion(w, k), brute_inclusion(w, k), atol=1e-13)
    fitted, err = fit_cps(brute_inclusion(w, k), k)
    assert err < 1e-11
    assert np.allclose(cps_inclusion(fitted, k), brute_inclusion(w, k), atol=1e-11)


def test_cps_sampler_frequencies_match_exact_distribution() -> None:
    rng = np.random.default_rng(0)
    w = np.array([3.0, 1.0, 0.5, 2.0, 0.2, 1.5])
    sets, probs = cps_exact(w, 3)
    n = 200_000
    drawn = np.sort(cps_sample(rng, w, 3, n), axis=1)
    assert np.all(np.diff(drawn, axis=1) > 0)
    freq = np.array([np.mean(np.all(drawn == s, axis=1)) for s in sets])
    # 5 standard deviations of a binomial proportion
    assert np.all(np.abs(freq - probs) <= 5 * np.sqrt(probs * (1 - probs) / n))


# ---- counts families ----------------------------------------------------------------------------
def test_mixtral_exact_distribution_matches_counts() -> None:
    inst = generate("mixtral-counts", {"domain": "github"}, seed=0)
    data = json.loads((DATA / "derived/olmoe_repo_expert_counts.json").read_text())
    d = data["models"]["mixtral-8x7b-v0.1"]["domains"]["github"]["expert_counts"]
    target = np.array([d["per_layer_counts"][str(layer)] for layer in (0, 7, 15)]) / d["num_tokens"]
    assert np.max(np.abs(inst.marginals.reshape(3, 8) - target)) < 1e-9
    assert inst.M == 3 * 28 and inst.K == 2
    assert inst.size[0] == pytest.approx(get_model("mixtral-8x7b").expert_mb_bf16)
    assert inst.meta["activation_model"] == ACTIVATION_COUNTS
    assert inst.meta["fit_max_marginal_error"] < 1e-9


def test_olmoe_sampled_marginals_within_sampling_noise() -> None:
    n = 20_000
    inst = generate("olmoe-counts", {"domain": "arxiv", "tokens": n}, seed=4)
    data = json.loads((DATA / "derived/olmoe_repo_expert_counts.json").read_text())
    d = data["models"]["olmoe-1b-7b-0924"]["domains"]["arxiv"]["expert_counts"]
    target = np.array([d["per_layer_counts"][str(layer)] for layer in (0, 7, 15)]) / d["num_tokens"]
    sd = np.sqrt(target * (1 - target) / n)
    assert np.all(np.abs(inst.marginals.reshape(3, 64) - target) <= 5 * sd + 1e-12)
    assert inst.meta["sample_max_marginal_error"] == pytest.approx(
        np.max(np.abs(inst.marginals.reshape(3, 64) - target))
    )
    assert inst.meta["activation_model"].startswith("surrogate")
    with pytest.raises(InputError, match="tulu only"):
        generate("olmoe-counts", {"model": "sft", "domain": "c4"})
    dpo = generate("olmoe-counts", {"model": "dpo", "domain": "tulu", "tokens": 100, "layers": 1}, seed=0)
    assert dpo.meta["provenance"]["counts_model"] == "olmoe-1b-7b-0924-instruct"


# ---- catalog surrogate --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(catalog()))
def test_catalog_surrogate_uses_catalog_architecture(name: str) -> None:
    m = get_model(name)
    inst = generate("catalog-surrogate", {"model": name, "layers": 2, "tokens": 300}, seed=1)
    assert (inst.K, inst.L, inst.G) == (m.K, 2, 2 * m.routed_experts)
    assert np.allclose(inst.size, m.expert_mb_bf16)
    assert np.allclose(inst.marginals.reshape(2, -1).sum(axis=1), m.K)
    assert "surrogate" in inst.meta["activation_model"] and inst.meta["zipf_alpha"] == ZIPF_ALPHA_DEEPSEEK
    full = generate("catalog-surrogate", {"model": name, "tokens": 10}, seed=1)
    assert full.L == m.moe_layers


def test_catalog_surrogate_exact_distribution_is_zipf_cps() -> None:
    inst = generate("catalog-surrogate", {"model": "moe-llava-phi2", "tokens": 0, "layers": 1, "alpha": 1.0}, seed=2)
    probs = np.sort(inst.marginals)[::-1]
    assert np.allclose(probs, np.sort(brute_inclusion(1.0 / np.arange(1, 5), 2))[::-1], atol=1e-12)


def test_zipf_constant_is_the_fit_to_the_traces() -> None:
    alpha, err = fit_zipf_alpha()
    assert alpha == pytest.approx(ZIPF_ALPHA_DEEPSEEK, abs=1e-4)
    assert err < 0.05


def test_zipf_fit_names_an_unknown_task() -> None:
    with pytest.raises(
        InputError, match=r"task: unknown ESFT task 'poetry' \(known: intent, law, summary, translation\)"
    ):
        fit_zipf_alpha(task="poetry")
    alpha, _ = fit_zipf_alpha(task="law")  # one task alone is a valid fit
    assert 0.0 < alpha < 4.0
