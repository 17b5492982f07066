"""Model-derived families: real routing traces and documented surrogates (SPEC section 6).

Families
--------
``deepseek-v2-lite-esft`` (kind ``trace``)
    The real per-token Top-6 sets of DeepSeek-V2-Lite's 26 MoE layers, recorded by the ESFT
    repository on four tasks. A token's sets in all layers come from the same position of the
    same sequence (line i of every layer file is sequence i). Sequences are split into train
    and test at random (``split`` = train fraction, seeded); ``which`` picks the tokens whose
    sets form the instance. Train and test instances of the same parameters and seed differ
    only in their sets, so a placement optimized on train can be evaluated on test
    (:func:`deepseek_train_test`).
``olmoe-counts``, ``mixtral-counts`` (kind ``surrogate``)
    The OLMoE paper's per-layer selection counts (layers 0, 7 and 15) give the marginal
    activation rate of each expert; the Top-K sets are drawn from the *conditional Poisson*
    distribution (the maximum-entropy distribution over K-sets), P(S) proportional to
    prod_{e in S} w_e, with weights fitted so that its inclusion probabilities equal the
    measured marginals. It has no co-activation beyond what the marginals force.
``catalog-surrogate`` (kind ``surrogate``)
    Any catalog model (:mod:`moebench.families.catalog`) with the same conditional Poisson
    model and Zipf weights w_e = rank_e^-alpha (random ranks per layer), alpha fitted to the
    DeepSeek-V2-Lite traces (:data:`ZIPF_ALPHA_DEEPSEEK`, :func:`fit_zipf_alpha`).

Data
----
Data files are read at generation time from the data folder (:mod:`moebench.data`): the
``data_dir`` parameter, else the environment variable ``MOEBENCH_DATA``, else the folder
shipped inside the package. A missing or incomplete folder raises
:class:`~moebench.errors.InputError` naming the missing files. The folder path is not stored
in the instance metadata, so the same parameters and seed give the same instance file on
every machine. Real traces are read into :class:`moebench.data.source.TokenPaths` (token
paths and the train/test split by sequence), shared with the ``trace`` family of
:mod:`moebench.families.user_traces`.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

# default_data_dir, shipped_data_dir: re-exported for callers that import them from here
from moebench.data import ENV_VAR, default_data_dir, require_files, resolve_data_dir, shipped_data_dir  # noqa: F401
from moebench.data.esft import (
    ESFT_COUNTS_JSON,
    ESFT_EXPERTS,
    ESFT_K,
    ESFT_LAYERS,
    ESFT_SOURCE,
    ESFT_TASKS,
    EsftSource,
    check_task,
)
from moebench.data.olmoe import OLMOE_COMMIT, RECORDED_LAYERS
from moebench.data.olmoe import OLMOE_COUNTS_JSON as COUNTS_JSON
from moebench.data.source import TokenPaths, select_tokens
from moebench.errors import InputError
from moebench.families import Param, register_family
from moebench.families.catalog import ModelSpec, catalog, get_model
from moebench.families.generated import all_sets, to_counts, zipf_ranks, zipf_weights
from moebench.families.physical import PHYSICAL_PARAMS, hardware, physical_instance
from moebench.instance import Instance

OLMOE_SOURCE: dict[str, str] = {
    "repo": "https://github.com/allenai/OLMoE",
    "commit": OLMOE_COMMIT,
    "license": "Apache-2.0",
    "source_paths": "scripts/routing_output/<model>/expert_counts/<domain>.pkl (via derived/olmoe_repo_expert_counts.json)",
}

#: Zipf exponent of the catalog surrogate: weights rank^-alpha under conditional Poisson
#: sampling, least-squares fit of the sorted inclusion probabilities to the mean sorted
#: per-layer marginal profile of the DeepSeek-V2-Lite ESFT traces (4 tasks x 26 layers).
#: Recomputed by :func:`fit_zipf_alpha`; tests check that the constant matches the data. The
#: fit is rough in the tail (max abs error 0.042 over the 64 sorted marginals: the real traces'
#: least used experts are rarer than Zipf says); per task the exponent ranges from 0.52 (law)
#: to 0.92 (translation).
ZIPF_ALPHA_DEEPSEEK = 0.6722

ACTIVATION_REAL = "real per-token Top-K sets"
ACTIVATION_COUNTS = "surrogate: independent sampling matched to real marginals (no real co-activation)"

#: Physical parameters of model-derived families: the architecture (hidden size, expert
#: intermediate size) comes from the model, so those three are not parameters here.
TRACE_PHYSICAL_PARAMS: tuple[Param, ...] = (
    *(p for p in PHYSICAL_PARAMS if p.name not in ("hidden", "inter", "inter_jitter")),
    Param(
        "layer_bytes_weight",
        None,
        "floats",
        "bytes per weight of each layer, one value per layer (e.g. 0.5,2,... mixes int4 and bf16 layers; "
        "default: bytes_weight everywhere)",
    ),
)
DATA_DIR_PARAM = Param(
    "data_dir", None, "str", f"data folder (default: ${ENV_VAR}, else the one shipped with moebench)"
)


#: The token-selection parameters of every real-trace family (:func:`moebench.data.source.select_tokens`).
SPLIT_PARAMS: tuple[Param, ...] = (
    Param(
        "tokens",
        0,
        "int",
        "tokens sampled from the chosen split, same tokens in every layer (0 or more than the split has = all)",
    ),
    Param("split", 0.8, "float", "fraction of the sequences in the train split (random, seeded)"),
    Param("which", "train", "str", "which split's tokens give the activation sets", choices=("train", "test")),
)


def real_trace_sets(
    paths: TokenPaths, p: dict[str, Any], seed: int, layers: int, source: dict[str, Any], layers_key: str
) -> tuple[list[tuple[np.ndarray, np.ndarray, bool]], dict[str, Any]]:
    """The activation sets and metadata of a real-trace instance (``deepseek-v2-lite-esft``, ``trace``).

    Parameters
    ----------
    paths
        The task's token paths.
    p, seed
        Family parameters (``tokens``, ``split``, ``which`` as in :data:`SPLIT_PARAMS`) and seed.
    layers
        The first ``layers`` recorded layers are used.
    source
        Provenance of the data (copied first into ``meta.provenance``).
    layers_key
        Provenance key of the used layers' model layer numbers (read back by :mod:`moebench.replay`).

    Returns
    -------
    layer_sets : list
        Per layer ``(sets, counts, True)`` of the selected tokens.
    meta : dict
        ``activation_model`` and ``provenance`` (source, task, split, token selection).
    """
    split = float(p["split"])
    idx, info = select_tokens(paths, split, p["which"], int(p["tokens"]), seed)
    layer_sets = [(*to_counts(paths.ids[layer, idx].astype(np.int64)), True) for layer in range(layers)]
    provenance = {
        **source,
        "task": paths.task,
        "split": split,
        "which": p["which"],
        layers_key: list(paths.layers[:layers]),
        "data_sha256": paths.sha256,
        **info,
    }
    return layer_sets, {"activation_model": ACTIVATION_REAL, "provenance": provenance}


# ---- conditional Poisson sampling (maximum-entropy K-sets with given marginals) -------------
def _esp_suffix(w: np.ndarray, k: int) -> np.ndarray:
    """S[i, j] = e_j(w_i, ..., w_{E-1}), elementary symmetric polynomials; shape (E+1, k+1)."""
    n = len(w)
    s = np.zeros((n + 1, k + 1))
    s[:, 0] = 1.0
    for i in range(n - 1, -1, -1):
        s[i, 1:] = s[i + 1, 1:] + w[i] * s[i + 1, :-1]
    return s


def cps_inclusion(w: np.ndarray, k: int) -> np.ndarray:
    """Inclusion probabilities of conditional Poisson sampling of ``k`` items with weights ``w``.

    P(S) is proportional to prod_{e in S} w_e over the sets of size k, and
    pi_e = w_e * e_{k-1}(w without e) / e_k(w), computed from prefix and suffix elementary
    symmetric polynomials (sums of positive terms only, so no cancellation).
    """
    w = np.asarray(w, float)
    suf = _esp_suffix(w, k)
    pre = _esp_suffix(w[::-1], k)[::-1]  # pre[i, j] = e_j(w_0, ..., w_{i-1})
    # e_{k-1}(w without e) = sum_j pre[e, j] * suf[e+1, k-1-j]
    without = np.einsum("ej,ej->e", pre[:-1, :k], suf[1:, k - 1 :: -1])
    return w * without / suf[0, k]


def fit_cps(target: np.ndarray, k: int, tol: float = 1e-12, max_iter: int = 20_000) -> tuple[np.ndarray, float]:
    """Weights whose conditional Poisson inclusion probabilities equal ``target``.

    Parameters
    ----------
    target
        Marginal inclusion probabilities, in [0, 1) and summing to ``k``; experts with
        target 0 get weight 0 (never drawn).
    k
        Set size.

    Returns
    -------
    w : ndarray
        Fitted weights (normalized to mean 1 over the positive ones).
    err : float
        max_e |pi_e(w) - target_e| achieved.

    Notes
    -----
    Iterates the odds update w_e <- w_e * [t_e / (1 - t_e)] / [pi_e / (1 - pi_e)], a fixed
    point of which is the exact fit (Chen, Dempster and Liu 1994 show it exists and is unique
    up to scale when 0 < t < 1 and sum t = k).
    """
    t = np.asarray(target, float)
    pos = t > 0
    if int(pos.sum()) < k or np.any(t >= 1) or abs(t.sum() - k) > 1e-6 * k:
        raise InputError(f"marginals must be in [0, 1), sum to K={k}, with at least K positive", where="counts")
    w = np.zeros_like(t)
    w[pos] = t[pos] / (1 - t[pos])
    err = np.inf
    for _ in range(max_iter):
        pi = cps_inclusion(w, k)
        err = float(np.max(np.abs(pi - t)))
        if err <= tol:
            break
        ratio = (t[pos] * (1 - pi[pos])) / (pi[pos] * (1 - t[pos]))
        w[pos] *= ratio
        w[pos] /= w[pos].mean()
    return w, err


def cps_sample(rng: np.random.Generator, w: np.ndarray, k: int, n: int) -> np.ndarray:
    """``n`` sets of ``k`` distinct ids drawn by conditional Poisson sampling; shape (n, k).

    Sequential exact method: expert i is taken with probability
    w_i * e_{r-1}(w_{i+1..}) / e_r(w_{i..}) where r is the number still needed. Vectorized
    over the n sets.
    """
    w = np.asarray(w, float)
    s = _esp_suffix(w, k)
    e = len(w)
    need = np.full(n, k, dtype=np.int64)
    out = np.empty((n, k), dtype=np.int64)
    filled = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for i in range(e):
        r = need
        denom = s[i, r]
        with np.errstate(divide="ignore", invalid="ignore"):
            prob = np.where((r > 0) & (denom > 0), w[i] * s[i + 1, np.maximum(r - 1, 0)] / denom, 0.0)
        prob = np.where(r >= e - i, 1.0, prob)  # must take all that remain
        prob = np.where(r > 0, np.minimum(prob, 1.0), 0.0)
        take = rng.random(n) < prob
        out[rows[take], filled[take]] = i
        filled += take
        need = need - take
    if np.any(filled != k):
        raise AssertionError("conditional Poisson sampler did not fill every set")
    return out


def cps_exact(w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every K-set with its conditional Poisson probability (only for small C(E, K): :func:`all_sets`)."""
    sets = all_sets(len(w), k)
    prob = np.prod(np.asarray(w, float)[sets], axis=1)
    keep = prob > 0
    return sets[keep], prob[keep] / prob.sum()


def _cps_layer(
    rng: np.random.Generator, w: np.ndarray, k: int, tokens: int
) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray]:
    """(sets, weights, weights_are_counts, empirical marginals) of one surrogate layer."""
    e = len(w)
    if tokens == 0:
        sets, probs = cps_exact(w, k)
        marg = np.bincount(sets.ravel(), weights=np.repeat(probs, k), minlength=e)
        return sets, probs, False, marg
    drawn = cps_sample(rng, w, k, tokens)
    sets, counts = to_counts(drawn)
    marg = np.bincount(drawn.ravel(), minlength=e) / tokens
    return sets, counts, True, marg


def cps_pair_inclusion(w: np.ndarray, k: int) -> np.ndarray:
    """Pairwise inclusion probabilities P(i and j in S) of conditional Poisson sampling; shape (E, E).

    Given i in S, the other K-1 members are conditional Poisson over the remaining experts, so
    P(i, j in S) = pi_i * pi_j^(K-1)(w without i); the diagonal is pi.
    """
    w = np.asarray(w, float)
    pi = cps_inclusion(w, k)
    out = np.zeros((len(w), len(w)))
    if k > 1:
        for i in np.flatnonzero(pi > 0):
            rest = w.copy()
            rest[i] = 0.0
            out[i] = pi[i] * cps_inclusion(rest, k - 1)
    np.fill_diagonal(out, pi)
    return out


INDEPENDENCE_COUNTS = (
    "conditional Poisson sampling: P(S) proportional to prod_{e in S} w_e over K-sets, weights fitted so that "
    "the inclusion probabilities equal the measured per-layer marginals (maximum-entropy K-set distribution "
    "with those marginals); tokens=0 lists every K-set with its exact probability"
)


def surrogate_layer_sets(
    seed: int, counts: np.ndarray, n_tok: int, k: int, tokens: int, provenance: dict[str, Any]
) -> tuple[list[tuple[np.ndarray, np.ndarray, bool]], dict[str, Any], list[np.ndarray]]:
    """Surrogate Top-K sets of every layer of per-layer selection counts (shape (L, E)).

    Returns
    -------
    layer_sets : list
        Per layer ``(sets, weights, weights_are_counts)`` (:func:`cps_exact` for ``tokens=0``,
        else ``tokens`` sampled sets, drawn from ``default_rng(seed)``).
    meta : dict
        ``activation_model``, ``independence_model``, the largest marginal error of the fit and
        of the sets over all layers (``fit_max_marginal_error``, ``sample_max_marginal_error``)
        and ``provenance``.
    weights : list of ndarray
        The fitted conditional Poisson weights of each layer.
    """
    rng = np.random.default_rng(seed)
    layer_sets, fit_err, sample_err, weights = [], 0.0, 0.0, []
    for row in counts:
        target = row / n_tok
        w, err = fit_cps(target, k)
        s, c, is_counts, marg = _cps_layer(rng, w, k, tokens)
        layer_sets.append((s, c, is_counts))
        weights.append(w)
        fit_err = max(fit_err, err)
        sample_err = max(sample_err, float(np.max(np.abs(marg - target))))
    meta = {
        "activation_model": ACTIVATION_COUNTS,
        "independence_model": INDEPENDENCE_COUNTS,
        "fit_max_marginal_error": fit_err,
        "sample_max_marginal_error": sample_err,
        "provenance": provenance,
    }
    return layer_sets, meta, weights


# ---- instance assembly ----------------------------------------------------------------------
def assemble_model(
    family: str,
    name: str,
    p: dict[str, Any],
    seed: int,
    model: ModelSpec,
    layer_sets: list[tuple[np.ndarray, np.ndarray, bool]],
    extra_meta: dict[str, Any],
) -> Instance:
    """Build an instance with ``model``'s expert sizes and the physical parameters of ``p``.

    Parameters
    ----------
    family, name
        Family and instance name.
    p
        Resolved family parameters (physical ones as in :data:`TRACE_PHYSICAL_PARAMS`).
    seed
        Seed (recorded only).
    model
        Catalog row: hidden size, expert intermediate size and MLP matrices fix every
        expert's size and FLOPs.
    layer_sets
        Per layer ``(sets, weights, weights_are_counts)`` with local ids.
    extra_meta
        Further metadata (provenance, activation model).
    """
    nl, e, k = len(layer_sets), model.routed_experts, model.K
    hw = hardware({**p, "hidden": model.hidden})
    size = np.full((nl, e), model.expert_mb(float(p["bytes_weight"])))
    if p.get("layer_bytes_weight") is not None:  # a precision per layer: sizes differ between layers
        per = np.asarray(p["layer_bytes_weight"], dtype=float)
        if per.size != nl or not np.all(np.isfinite(per) & (per > 0)):
            raise InputError(f"needs {nl} values > 0 (one per layer)", where="layer_bytes_weight")
        size = np.array([model.expert_mb(float(b)) for b in per])[:, None] * np.ones((1, e))
    architecture = {
        "hf_repo": model.hf_repo,
        "config_url": model.config_url,
        "hidden": model.hidden,
        "expert_inter": model.expert_inter,
        "mlp_matrices": model.mlp_matrices,
        "routed_experts": e,
        "shared_experts_on_device": model.shared_experts,
        "K": k,
        "expert_mb": float(size[0, 0]),
    }
    flops = np.full((nl, e), model.expert_flops)
    model_meta = {"model": model.name, "architecture": architecture}
    return physical_instance(family, name, k, p, seed, hw, size, flops, layer_sets, model_meta, extra_meta)


def check_counts(seed: int, layers: int, most: int, tokens: int, rule: str = "") -> None:
    """The checks every model-derived family makes: seed >= 0, 1 <= layers <= most, tokens >= 0.

    ``rule`` replaces the range ``[1, most]`` quoted in the message about ``layers``.
    """
    if seed < 0:
        raise InputError("seed must be >= 0", where="seed")
    if not 1 <= layers <= most:
        raise InputError(f"layers must be in {rule or f'[1, {most}]'}", where="layers")
    if tokens < 0:
        raise InputError("tokens must be >= 0", where="tokens")


# ---- deepseek-v2-lite-esft --------------------------------------------------------------------
ESFT_PARAMS: tuple[Param, ...] = (
    Param("task", "law", "str", "ESFT task whose traces are used", choices=ESFT_TASKS),
    Param("layers", ESFT_LAYERS, "int", "MoE layers used: the first n of the 26 (HF decoder layers 1..n)"),
    *SPLIT_PARAMS,
    DATA_DIR_PARAM,
    *TRACE_PHYSICAL_PARAMS,
)


@register_family(
    "deepseek-v2-lite-esft",
    params=ESFT_PARAMS,
    kind="trace",
    summary="real per-token Top-6 sets of DeepSeek-V2-Lite (26 layers, 64 experts) from the ESFT traces; train/test split by sequence",
    name_params=("task", "layers", "tokens", "which", "servers", "data_dir"),
)
def deepseek_v2_lite_esft(p: dict[str, Any], seed: int) -> Instance:
    """Real routing traces; see the module docstring."""
    nl, tokens, split = int(p["layers"]), int(p["tokens"]), float(p["split"])
    check_counts(seed, nl, ESFT_LAYERS, tokens)  # split: checked by select_tokens
    root = resolve_data_dir(p["data_dir"])
    paths = EsftSource(root).load(p["task"])
    layer_sets, meta = real_trace_sets(paths, p, seed, nl, ESFT_SOURCE, "hf_decoder_layers")
    model = get_model("deepseek-v2-lite")
    tag = "all" if tokens == 0 else str(tokens)
    name = f"deepseek-v2-lite-esft-{p['task']}-L{nl}-T{tag}-split{split:g}-N{int(p['servers'])}-{p['which']}-s{seed}"
    return assemble_model("deepseek-v2-lite-esft", name, p, seed, model, layer_sets, meta)


def deepseek_train_test(params: dict[str, Any] | None = None, seed: int = 0) -> tuple[Instance, Instance]:
    """The train and the test instance of the same parameters and seed.

    They share servers, capacities, sizes and latencies (so a placement of one is a placement
    of the other) and differ only in their activation sets.
    """
    from moebench.families import generate

    base = {k: v for k, v in (params or {}).items() if k != "which"}
    return (
        generate("deepseek-v2-lite-esft", {**base, "which": "train"}, seed),
        generate("deepseek-v2-lite-esft", {**base, "which": "test"}, seed),
    )


# ---- olmoe-counts / mixtral-counts --------------------------------------------------------------
@lru_cache(maxsize=4)
def _load_counts_json(root: str) -> dict[str, Any]:
    path = Path(root) / COUNTS_JSON
    require_files(Path(root), [COUNTS_JSON], "olmoe-counts / mixtral-counts")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", file=str(path)) from None


OLMOE_MODELS = {"base": "olmoe-1b-7b-0924", "sft": "olmoe-1b-7b-0924-sft", "dpo": "olmoe-1b-7b-0924-instruct"}
OLMOE_DOMAINS = ("arxiv", "book", "c4", "github", "tulu", "wikipedia")
MIXTRAL_DOMAINS = ("arxiv", "book", "c4", "github", "wikipedia")


def selection_counts(root: Path, model_key: str, domain: str) -> tuple[np.ndarray, int, int]:
    """(counts (3, E), tokens, K) of one model and domain from the derived counts JSON.

    Raises
    ------
    InputError
        When the model or domain is not in the file, or the counts are inconsistent.
    """
    data = _load_counts_json(str(root))
    where = f"{COUNTS_JSON}: models.{model_key}"
    try:
        entry = data["models"][model_key]
        dom = entry["domains"][domain]["expert_counts"]
    except KeyError:
        have = sorted(data.get("models", {}).get(model_key, {}).get("domains", {}))
        raise InputError(
            f"no counts for domain {domain!r} (available: {', '.join(have) or 'none'})", where=where
        ) from None
    per = dom["per_layer_counts"]
    counts = np.array([per[str(layer)] for layer in RECORDED_LAYERS], dtype=np.int64)
    k, n = int(dom["top_k"]), int(dom["num_tokens"])
    if counts.shape[1] != int(entry["num_experts"]) or np.any(counts.sum(axis=1) != k * n):
        raise InputError("per-layer counts do not sum to top_k x num_tokens", where=where)
    return counts, n, k


def _counts_family(
    family: str, model_name: str, model_key: str, domain: str, p: dict[str, Any], seed: int, extra: dict[str, Any]
) -> Instance:
    nl, tokens = int(p["layers"]), int(p["tokens"])
    check_counts(seed, nl, len(RECORDED_LAYERS), tokens)
    root = resolve_data_dir(p["data_dir"])
    counts, n_tok, k = selection_counts(root, model_key, domain)
    model = get_model(model_name)
    if k != model.K or counts.shape[1] != model.routed_experts:
        raise InputError(f"counts have K={k}, E={counts.shape[1]}; catalog {model.name} says otherwise", where="model")
    provenance = {
        **OLMOE_SOURCE,
        "counts_model": model_key,
        "domain": domain,
        "recorded_layers": list(RECORDED_LAYERS[:nl]),
        "count_tokens": n_tok,
    }
    layer_sets, meta, _ = surrogate_layer_sets(seed, counts[:nl], n_tok, k, tokens, provenance)
    tag = "exact" if tokens == 0 else f"T{tokens}"
    name = f"{family}-{extra.get('variant', '')}{domain}-L{nl}-{tag}-N{int(p['servers'])}-s{seed}".replace("--", "-")
    return assemble_model(family, name, p, seed, model, layer_sets, meta)


@register_family(
    "olmoe-counts",
    params=(
        Param(
            "model",
            "base",
            "str",
            "OLMoE checkpoint: base, sft or dpo (sft/dpo: domain tulu only)",
            choices=tuple(OLMOE_MODELS),
        ),
        Param("domain", "c4", "str", "text domain of the counts", choices=OLMOE_DOMAINS),
        Param("layers", 3, "int", "recorded layers used: the first n of decoder layers 0, 7, 15"),
        Param("tokens", 2000, "int", "tokens sampled per layer (0 = exact distribution; too large for 64 choose 8)"),
        DATA_DIR_PARAM,
        *TRACE_PHYSICAL_PARAMS,
    ),
    kind="surrogate",
    summary="OLMoE-1B-7B (64 experts, top-8): real per-layer marginals, Top-K sets sampled independently (surrogate)",
    name_params=("model", "domain", "layers", "tokens", "servers", "data_dir"),
)
def olmoe_counts(p: dict[str, Any], seed: int) -> Instance:
    """OLMoE counts with conditional Poisson sets; see the module docstring."""
    if p["model"] != "base" and p["domain"] != "tulu":
        raise InputError(f"model={p['model']} has counts for domain tulu only", where="domain")
    key = OLMOE_MODELS[p["model"]]
    return _counts_family("olmoe-counts", "olmoe-1b-7b", key, p["domain"], p, seed, {"variant": f"{p['model']}-"})


@register_family(
    "mixtral-counts",
    params=(
        Param("domain", "c4", "str", "text domain of the counts", choices=MIXTRAL_DOMAINS),
        Param("layers", 3, "int", "recorded layers used: the first n of decoder layers 0, 7, 15"),
        Param("tokens", 0, "int", "tokens sampled per layer (0 = all 28 Top-2 sets with exact probabilities)"),
        DATA_DIR_PARAM,
        *TRACE_PHYSICAL_PARAMS,
    ),
    kind="surrogate",
    summary="Mixtral-8x7B (8 experts, top-2): real per-layer marginals, Top-K sets from an independence model (surrogate)",
    name_params=("domain", "layers", "tokens", "servers", "data_dir"),
)
def mixtral_counts(p: dict[str, Any], seed: int) -> Instance:
    """Mixtral counts with conditional Poisson sets; see the module docstring."""
    return _counts_family("mixtral-counts", "mixtral-8x7b", "mixtral-8x7b-v0.1", p["domain"], p, seed, {})


# ---- catalog-surrogate ---------------------------------------------------------------------
def deepseek_marginal_profile(root: Path, tasks: tuple[str, ...] = ESFT_TASKS) -> np.ndarray:
    """Sorted (descending) per-layer marginals of the ESFT traces, one row per (task, layer) of ``tasks``.

    Read from ``derived/deepseek-v2-lite-esft_expert_and_pair_counts.json``: expert_counts
    divided by the number of tokens; each row sums to K = 6.
    """
    for t in tasks:
        check_task(t)
    require_files(root, [ESFT_COUNTS_JSON], "the Zipf fit")
    data = json.loads((root / ESFT_COUNTS_JSON).read_text(encoding="utf-8"))["tasks"]
    rows = [np.asarray(data[t]["expert_counts"], float) / float(data[t]["num_tokens"]) for t in tasks]
    return -np.sort(-np.vstack(rows), axis=1)


def _golden_min(f: Any, lo: float, hi: float, tol: float = 1e-6) -> float:
    """Minimizer of a unimodal ``f`` on [lo, hi] by golden-section search."""
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    while hi - lo > tol:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return (lo + hi) / 2


def fit_zipf_alpha(data_dir: str | os.PathLike[str] | None = None, task: str | None = None) -> tuple[float, float]:
    """Zipf exponent whose conditional Poisson marginals best match the DeepSeek traces.

    Least squares between the sorted inclusion probabilities of CPS with weights
    rank^-alpha (E = 64, K = 6) and the mean sorted per-layer marginal profile of the ESFT
    traces (all tasks, or only ``task``, and all 26 layers); golden-section search on [0, 4].

    Returns
    -------
    alpha : float
        The fitted exponent, rounded to 4 decimals.
    max_error : float
        Largest absolute difference between the fitted and the measured sorted profile.

    Raises
    ------
    InputError
        When ``task`` is not an ESFT task or the derived counts file is missing.
    """
    target = deepseek_marginal_profile(resolve_data_dir(data_dir), ESFT_TASKS if task is None else (task,)).mean(axis=0)

    def model(alpha: float) -> np.ndarray:
        return cps_inclusion(zipf_weights(ESFT_EXPERTS, alpha), ESFT_K)

    alpha = float(round(_golden_min(lambda a: float(np.sum((model(a) - target) ** 2)), 0.0, 4.0), 4))
    return alpha, float(np.max(np.abs(model(alpha) - target)))


@register_family(
    "catalog-surrogate",
    params=(
        Param("model", "qwen3-30b-a3b", "str", "catalog model (moebench.families.catalog)", choices=tuple(catalog())),
        Param("layers", 0, "int", "MoE layers used: the first n (0 = all of the model)"),
        Param("tokens", 2000, "int", "tokens sampled per layer (0 = exact distribution when C(E,K) <= 50000)"),
        Param(
            "alpha",
            None,
            "float",
            f"Zipf exponent (default {ZIPF_ALPHA_DEEPSEEK}: fitted to the DeepSeek-V2-Lite traces)",
        ),
        *TRACE_PHYSICAL_PARAMS,
    ),
    kind="surrogate",
    summary="any catalog model's architecture; Zipf popularity fitted to DeepSeek traces, independent Top-K sampling (surrogate)",
    name_params=("model", "layers", "tokens", "servers"),
)
def catalog_surrogate(p: dict[str, Any], seed: int) -> Instance:
    """Catalog architecture with surrogate activations; see the module docstring."""
    model = get_model(p["model"])
    nl = int(p["layers"]) or model.moe_layers
    tokens = int(p["tokens"])
    alpha = ZIPF_ALPHA_DEEPSEEK if p["alpha"] is None else float(p["alpha"])
    check_counts(seed, nl, model.moe_layers, tokens, f"[0, {model.moe_layers}] for {model.name}")
    if not np.isfinite(alpha) or alpha < 0:
        raise InputError("alpha must be >= 0", where="alpha")
    rng = np.random.default_rng(seed)
    e, k = model.routed_experts, model.K
    layer_sets = [_cps_layer(rng, zipf_ranks(rng, e, alpha), k, tokens)[:3] for _ in range(nl)]
    tag = "exact" if tokens == 0 else f"T{tokens}"
    name = f"catalog-surrogate-{model.name}-L{nl}-{tag}-N{int(p['servers'])}-s{seed}"
    meta = {
        "activation_model": (
            f"surrogate: Zipf popularity (alpha={alpha:g}, "
            f"{'fitted to DeepSeek-V2-Lite ESFT traces' if p['alpha'] is None else 'given'}), "
            "independent sampling (no real co-activation)"
        ),
        "independence_model": (
            "conditional Poisson sampling: P(S) proportional to prod_{e in S} w_e over K-sets, "
            "w_e = rank_e^-alpha with a random rank permutation per layer"
        ),
        "zipf_alpha": alpha,
    }
    return assemble_model("catalog-surrogate", name, {**p, "alpha": alpha}, seed, model, layer_sets, meta)
