"""Families reading users' own routing data (docs/data.md, "Bring your own routing").

``trace`` (kind ``trace``)
    A ``moebench-trace/1`` file (:mod:`moebench.data.trace_format`): real per-token Top-K sets
    of any MoE model. Same parameters and behaviour as ``deepseek-v2-lite-esft``: sequences
    split into train and test by :func:`moebench.data.source.split_sequences`, ``which`` picks
    the part, ``tokens`` samples tokens (the same tokens in every layer), ``layers`` keeps the
    first n recorded layers. Train and test instances of the same parameters and seed differ
    only in their sets. The file path is not stored in the instance (only its name and
    SHA-256), so an instance file is the same on every machine.
``counts-surrogate`` (kind ``surrogate``)
    A ``moebench-counts/1`` file (:mod:`moebench.data.counts_format`): per-layer selection
    counts of a workload, as serving systems' load balancers record them. The sets are the
    OLMoE family's **surrogate**: conditional Poisson K-sets whose marginals match the counts
    exactly (:func:`moebench.families.traces.surrogate_layer_sets`). With ``pair_counts`` in
    the file, ``meta.pair_model_max_error`` says how far the surrogate's co-activation
    probabilities are from the measured ones.

Both derive sizes and latencies from the header's expert shape (``hidden``, ``expert_inter``,
``mlp_matrices``, or a catalog model) and the physical parameters of
:data:`moebench.families.traces.TRACE_PHYSICAL_PARAMS`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from moebench.data.counts_format import read_counts
from moebench.data.trace_format import ModelHeader, TraceFileSource
from moebench.errors import InputError
from moebench.families import Param, register_family
from moebench.families.catalog import ModelSpec, get_model
from moebench.families.traces import (
    SPLIT_PARAMS,
    TRACE_PHYSICAL_PARAMS,
    assemble_model,
    check_counts,
    cps_pair_inclusion,
    real_trace_sets,
    surrogate_layer_sets,
)
from moebench.instance import Instance


def header_model(h: ModelHeader, file: str) -> ModelSpec:
    """The :class:`ModelSpec` a header describes (its catalog row, or one built from its expert shape).

    Raises
    ------
    InputError
        When a named catalog row disagrees with the header's ``experts`` or ``K``.
    """
    if h.catalog_model is not None:
        m = get_model(h.catalog_model)
        if (m.routed_experts, m.K) != (h.experts, h.K):
            raise InputError(
                f"catalog model {m.name} has {m.routed_experts} experts and K={m.K}; the header says "
                f"{h.experts} and K={h.K}",
                file=file,
                where="header",
            )
        return m
    assert h.hidden is not None and h.expert_inter is not None
    return ModelSpec(
        name=model_slug(h.model) or "user-model",
        hf_repo=h.model,
        config_url="",
        config_fields="from the trace header: hidden, expert_inter, mlp_matrices, experts, K",
        layers_total=max(h.layers) + 1,
        moe_layers=len(h.layers),
        routed_experts=h.experts,
        shared_experts=0,
        shared_inter=0,
        K=h.K,
        hidden=h.hidden,
        expert_inter=h.expert_inter,
        mlp_matrices=h.mlp_matrices,
        native_format="bf16",
        native_bits=16.0,
        traces="trace",
        verified="as given in the trace header",
        notes="",
    )


def model_slug(model: str) -> str:
    """``"allenai/OLMoE-1B-7B-0924"`` -> ``"olmoe-1b-7b-0924"`` (for instance names)."""
    return re.sub(r"[^a-z0-9]+", "-", model.rsplit("/", 1)[-1].lower()).strip("-")


def _slug(h: ModelHeader) -> str:
    return model_slug(h.model) or h.catalog_model or "model"


def _pick(name: str | None, have: list[str], what: str, file: str) -> str:
    if name is None:
        if len(have) != 1:
            raise InputError(
                f"the file has {len(have)} {what}s ({', '.join(have)}); choose one with {what}=", where=what
            )
        return have[0]
    if name not in have:
        raise InputError(f"no {what} {name!r} in {file} ({what}s: {', '.join(have)})", where=what)
    return name


def _common(p: dict[str, Any], seed: int, n_layers: int) -> tuple[int, int]:
    nl, tokens = int(p["layers"]) or n_layers, int(p["tokens"])
    check_counts(seed, nl, n_layers, tokens, f"[0, {n_layers}] (0 = all recorded layers)")
    return nl, tokens


def _source_meta(h: ModelHeader, path: Path, sha: str) -> dict[str, Any]:
    return {"model": h.model, "source": h.source, "license": h.license, "file_name": path.name, "file_sha256": sha}


FILE_PARAM = Param("file", None, "str", "the file to read (required; not stored in the instance, only its SHA-256)")

TRACE_PARAMS: tuple[Param, ...] = (
    FILE_PARAM,
    Param("task", None, "str", "task (workload) of the file (default: the file's only task)"),
    Param("layers", 0, "int", "MoE layers used: the first n recorded (0 = all)"),
    *SPLIT_PARAMS,
    *TRACE_PHYSICAL_PARAMS,
)


@register_family(
    "trace",
    params=TRACE_PARAMS,
    kind="trace",
    # the file is spelled by the first 8 hex digits of its content hash (not its path, which
    # differs between machines)
    name_params=("file", "task", "layers", "tokens", "split", "which", "servers"),
    summary="real per-token Top-K sets from your own moebench-trace/1 file (any MoE model); train/test split by sequence",
)
def user_trace(p: dict[str, Any], seed: int) -> Instance:
    """Real routing from a user's trace file; see the module docstring."""
    if not p["file"]:
        raise InputError("give file=PATH (the trace file to read)", where="file")
    src = TraceFileSource(p["file"])
    tf = src.file
    task = _pick(p["task"], list(tf.tasks), "task", str(src.path))
    paths = src.load(task)
    nl, tokens = _common(p, seed, paths.L)
    split = float(p["split"])
    source = _source_meta(tf.header, src.path, tf.sha256)
    layer_sets, meta = real_trace_sets(paths, p, seed, nl, source, "recorded_layers")
    model = header_model(tf.header, str(src.path))
    tag = "all" if tokens == 0 else str(tokens)
    name = f"trace-{_slug(tf.header)}-{tf.sha256[:8]}-{task}-L{nl}-T{tag}-split{split:g}-N{int(p['servers'])}-{p['which']}-s{seed}"
    return assemble_model("trace", name, {**p, "task": task}, seed, model, layer_sets, meta)


@register_family(
    "counts-surrogate",
    params=(
        FILE_PARAM,
        Param("workload", None, "str", "workload of the file (default: the file's only workload)"),
        Param("layers", 0, "int", "recorded layers used: the first n (0 = all)"),
        Param("tokens", 2000, "int", "tokens sampled per layer (0 = exact distribution when C(E,K) <= 50000)"),
        *TRACE_PHYSICAL_PARAMS,
    ),
    kind="surrogate",
    name_params=("file", "workload", "layers", "tokens", "servers"),
    summary="your own per-layer expert counts (moebench-counts/1): real marginals, Top-K sets sampled independently (surrogate)",
)
def counts_surrogate(p: dict[str, Any], seed: int) -> Instance:
    """Counts-only routing with conditional Poisson sets; see the module docstring."""
    if not p["file"]:
        raise InputError("give file=PATH (the counts file to read)", where="file")
    path = Path(p["file"])
    cf = read_counts(path)
    wl = cf.workloads[_pick(p["workload"], list(cf.workloads), "workload", str(path))]
    h = cf.header
    nl, tokens = _common(p, seed, len(h.layers))
    provenance = {
        **_source_meta(h, path, cf.sha256),
        "workload": wl.name,
        "recorded_layers": list(h.layers[:nl]),
        "count_tokens": wl.tokens,
    }
    layer_sets, meta, weights = surrogate_layer_sets(seed, wl.counts[:nl], wl.tokens, h.K, tokens, provenance)
    tag = "exact" if tokens == 0 else f"T{tokens}"
    name = f"counts-surrogate-{_slug(h)}-{cf.sha256[:8]}-{wl.name}-L{nl}-{tag}-N{int(p['servers'])}-s{seed}"
    if wl.pairs is not None:
        # how much real co-activation the surrogate misses: exact pair probabilities vs measured
        iu = np.triu_indices(h.experts, 1)
        diff = [cps_pair_inclusion(w, h.K)[iu] - wl.pairs[layer][iu] / wl.tokens for layer, w in enumerate(weights)]
        err = np.abs(np.concatenate(diff))
        meta["pair_model_max_error"] = float(err.max())
        meta["pair_model_mean_abs_error"] = float(err.mean())
    params = {**p, "workload": wl.name}
    return assemble_model("counts-surrogate", name, params, seed, header_model(h, str(path)), layer_sets, meta)
