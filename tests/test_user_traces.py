"""Bring your own routing: the trace and counts formats, their families, the router-logit recipe.

Independent checks: the ESFT traces rewritten in the user format give the very instances of
``deepseek-v2-lite-esft``; OLMoE counts rewritten as a counts file give those of
``olmoe-counts``; counts and Top-K sets are recomputed here from the raw lists; a per-token
replay over the token paths reproduces the evaluator's latency.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moebench.bench.runner import run_suite
from moebench.bench.suite import load_suite
from moebench.cli import main
from moebench.data import shipped_data_dir
from moebench.data.counts_format import counts_from_paths, read_counts, write_counts
from moebench.data.esft import ESFT_DIR, EsftSource, read_task
from moebench.data.olmoe import OLMOE_COUNTS_JSON
from moebench.data.source import TokenPaths, select_tokens, split_sequences
from moebench.data.trace_format import ModelHeader, TraceFileSource, TraceWriter, read_trace, routing_from_router_logits
from moebench.errors import InputError
from moebench.evaluate import evaluate
from moebench.families import generate
from moebench.families.traces import ACTIVATION_REAL, cps_inclusion, cps_pair_inclusion
from moebench.instance import Instance, valid_name
from moebench.placement import from_triples
from moebench.report.build import write_report

SMALL = ModelHeader(experts=8, K=2, layers=(1, 3, 5), hidden=256, expert_inter=512, model="acme/Tiny-MoE-8x2")


def small_trace(tmp_path: Path, name: str = "tiny.jsonl.gz", seed: int = 0) -> tuple[Path, dict[str, list]]:
    """Two tasks, 9 and 4 sequences of 3..12 tokens; returns the file and the raw per-task ids."""
    rng = np.random.default_rng(seed)
    raw: dict[str, list] = {"chat": [], "code": []}
    path = tmp_path / name
    with TraceWriter(path, SMALL) as w:
        for task, n in (("chat", 9), ("code", 4)):
            for i in range(n):
                t = int(rng.integers(3, 13))
                # skewed, co-activated routing: expert pairs (0,1) and (2,3) are common
                ids = np.array(
                    [
                        [rng.choice(8, 2, replace=False, p=np.r_[4, 4, 3, 3, 1, 1, 1, 1] / 18) for _ in range(t)]
                        for _ in range(3)
                    ]
                )
                wts = rng.random(ids.shape)
                raw[task].append(ids)
                w.add(task, ids, wts, seq_id=f"{task}-{i}")
    return path, raw


# ---- the format --------------------------------------------------------------------------------
def test_writer_reader_round_trip(tmp_path: Path) -> None:
    path, raw = small_trace(tmp_path)
    tf = read_trace(path)
    assert tf.header == SMALL
    assert list(tf.tasks) == ["chat", "code"] and tf.sequence_ids["code"] == [f"code-{i}" for i in range(4)]
    chat = tf.tasks["chat"]
    assert chat.n_seq == 9 and chat.layers == (1, 3, 5) and chat.K == 2 and chat.n_experts == 8
    assert np.array_equal(chat.ids, np.concatenate(raw["chat"], axis=1))
    assert np.array_equal(chat.offsets, np.r_[0, np.cumsum([r.shape[1] for r in raw["chat"]])])
    assert chat.weights is not None and chat.weights.shape == chat.ids.shape
    assert tf.sha256 == __import__("hashlib").sha256(gzip.decompress(path.read_bytes())).hexdigest()
    # the writer is deterministic (gzip mtime 0): same content, same bytes
    again, _ = small_trace(tmp_path, "again.jsonl.gz")
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("lines", "where", "reason"),
    [
        ([], "", "empty trace file"),
        (['{"format": "moebench-trace/2"}'], "line 1", 'format": "moebench-trace/1"'),
        (["H", '{"task": "a", "ids": [[[0, 1]], [[0, 1]]]}'], "line 2: ids", "expected 3 x T x 2"),
        (["H", '{"task": "a", "ids": [[[0, 1]], [[0, 1]], [[2, 2]]]}'], "line 2: ids[2][0]", "repeats an expert"),
        (["H", '{"task": "a", "ids": [[[0, 1]], [[0, 9]], [[2, 3]]]}'], "line 2: ids[1][0]", "in [0, 8)"),
        (
            ["H", '{"task": "a", "ids": [[[0, 1]], [[0, 1]], [[2, 3]]], "tokens": 1}'],
            "line 2",
            "unknown sequence field",
        ),
        (["H", '{"task": "", "ids": []}'], "line 2", "task must be"),
        (["H", '{"task": "a", "ids": [[[0, 1.5]], [[0, 1]], [[2, 3]]]}'], "line 2: ids", "must be nested lists"),
        (
            ["H", '{"task": "a", "ids": [[[0, 1]], [[0, 1]], [[2, 3]]], "weights": [[[1, -1]], [[0, 1]], [[2, 3]]]}'],
            "line 2: weights",
            "finite and >= 0",
        ),
        (["H", "[1, 2"], "line 2", "not valid JSON"),
        (["H"], "", "no sequence"),
    ],
)
def test_bad_trace_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[str], where: str, reason: str
) -> None:
    header = json.dumps(SMALL.to_json("moebench-trace/1"))
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(header if x == "H" else x for x in lines) + "\n")
    with pytest.raises(InputError, match=re.escape(reason)) as err:
        read_trace(path)
    assert err.value.where == (where or None)
    rc = main(["instances", "generate", "trace", "-p", f"file={path}", "-o", str(tmp_path / "x.json")])
    assert rc == 2
    lines_err = capsys.readouterr().err.strip().splitlines()
    assert len(lines_err) == 1 and str(path.resolve()) in lines_err[0] and reason.split("[")[0] in lines_err[0]


@pytest.mark.parametrize("kind", ["fifo", "deep", "counts-fifo", "counts-deep"])
def test_trace_and_counts_files_are_read_within_the_input_limits(tmp_path: Path, kind: str) -> None:
    """User data files go through the guarded reader: no FIFO read (it would block), nesting bounded."""
    path = tmp_path / ("data.json" if kind.startswith("counts") else "data.jsonl")
    if kind.endswith("fifo"):
        os.mkfifo(path)
    else:
        path.write_text(json.dumps(SMALL.to_json("moebench-trace/1")) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    reader = read_counts if kind.startswith("counts") else read_trace
    with pytest.raises(InputError, match="FIFO" if kind.endswith("fifo") else "nesting deeper"):
        reader(path)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"K": 9}, "exceeds experts"),
        ({"layers": [1, 1]}, "distinct layer numbers"),
        ({"hidden": None}, "hidden must be an integer"),
        ({"catalog_model": "olmoe-1b-7b"}, "either catalog_model or hidden"),
        ({"typo": 1}, "unknown header field 'typo'"),
    ],
)
def test_bad_headers(tmp_path: Path, change: dict, reason: str) -> None:
    head = {**SMALL.to_json("moebench-trace/1"), **change}
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(head) + "\n" + json.dumps({"task": "a", "ids": [[[0, 1]]] * 3}) + "\n")
    with pytest.raises(InputError, match=reason):
        read_trace(path)


def test_writer_refuses_what_the_reader_would(tmp_path: Path) -> None:
    with TraceWriter(tmp_path / "w.jsonl", SMALL) as w, pytest.raises(InputError, match="repeats"):
        w.add("a", np.array([[[0, 0]], [[0, 1]], [[2, 3]]]))


# ---- the trace family --------------------------------------------------------------------------
def independent_counts(seqs: list[np.ndarray], chosen: list[int], layer: int) -> dict[tuple[int, ...], int]:
    out: dict[tuple[int, ...], int] = {}
    for i in chosen:
        for tok in seqs[i][layer]:
            key = tuple(sorted(int(x) for x in tok))
            out[key] = out.get(key, 0) + 1
    return out


def test_trace_family_builds_real_sets_with_a_sequence_split(tmp_path: Path) -> None:
    path, raw = small_trace(tmp_path)
    params = {"file": str(path), "task": "chat", "split": 0.67, "servers": 2, "capacity": 0.3}
    train = generate("trace", {**params, "which": "train"}, 4)
    test = generate("trace", {**params, "which": "test"}, 4)
    prov = train.meta["provenance"]
    parts = split_sequences(9, 0.67, 4)
    assert prov["train_sequences"] == parts.train.tolist() and prov["test_sequences"] == parts.test.tolist()
    assert sorted(prov["train_sequences"] + prov["test_sequences"]) == list(range(9)) and len(parts.train) == 6
    for inst, chosen in ((train, parts.train), (test, parts.test)):
        n = sum(raw["chat"][i].shape[1] for i in chosen)
        assert inst.meta["provenance"]["tokens_used"] == n
        for layer in range(3):
            got = {
                tuple(int(x) for x in s): round(p * n) for s, p in zip(inst.layer_sets(layer), inst.layer_probs(layer))
            }
            assert got == independent_counts(raw["chat"], list(chosen), layer)
    # train and test share everything but the sets
    for f in ("capacity", "size", "latency", "fallback", "n_experts"):
        assert np.array_equal(getattr(train, f), getattr(test, f))
    assert train.meta["activation_model"] == ACTIVATION_REAL and train.meta["family"] == "trace"
    assert "file" not in train.meta["params"] and prov["file_name"] == "tiny.jsonl.gz"
    assert prov["model"] == "acme/Tiny-MoE-8x2" and prov["recorded_layers"] == [1, 3, 5]
    assert train.name == f"trace-tiny-moe-8x2-{prov['file_sha256'][:8]}-chat-L3-Tall-split0.67-N2-train-s4-capacity=0.3"
    assert train.size[0] == pytest.approx(3 * 256 * 512 * 2 / 1e6)  # SwiGLU, bf16
    # sampling the same tokens in every layer, fewer layers
    few = generate("trace", {**params, "tokens": 10, "layers": 2}, 1)
    assert few.L == 2 and few.meta["provenance"]["tokens_used"] == 10
    with pytest.raises(InputError, match="2 tasks"):
        generate("trace", {"file": str(path)}, 0)
    with pytest.raises(InputError, match="no task 'x'"):
        generate("trace", {"file": str(path), "task": "x"}, 0)
    with pytest.raises(InputError, match="give file="):
        generate("trace", {}, 0)
    with pytest.raises(InputError, match="layers must be in"):
        generate("trace", {**params, "layers": 4}, 0)


@pytest.fixture(scope="module")
def law_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 4 layers of the ESFT law traces, with gate weights, in the user format."""
    paths, _ = read_task(shipped_data_dir() / ESFT_DIR, "law", weights=True)
    head = ModelHeader(
        experts=64, K=6, layers=(1, 2, 3, 4), catalog_model="deepseek-v2-lite", model="deepseek-ai/ESFT-vanilla-lite"
    )
    out = tmp_path_factory.mktemp("law") / "law.jsonl"
    with TraceWriter(out, head) as w:
        for a, b in zip(paths.offsets[:-1], paths.offsets[1:]):
            w.add("law", paths.ids[:4, a:b], paths.weights[:4, a:b])
    return out


@pytest.mark.parametrize("params", [{"tokens": 0, "which": "train"}, {"tokens": 300, "which": "test", "split": 0.5}])
def test_esft_rewritten_as_a_user_trace_gives_the_same_instances(law_trace: Path, params: dict) -> None:
    base = {"layers": 4, "servers": 3, "capacity": 0.2, **params}
    mine = generate("trace", {**base, "file": str(law_trace)}, 7)
    ref = generate("deepseek-v2-lite-esft", {**base, "task": "law"}, 7)
    assert mine.content_hash == ref.content_hash
    for key in ("train_sequences", "test_sequences", "token_index_sha256", "tokens_used"):
        assert mine.meta["provenance"][key] == ref.meta["provenance"][key]
    src = TraceFileSource(law_trace).load("law")
    esft = EsftSource(shipped_data_dir()).load("law")
    assert np.array_equal(src.ids, esft.ids[:4]) and np.array_equal(src.seq, esft.seq)


def replay_mean(inst: Instance, paths: TokenPaths, idx: np.ndarray, triples: list) -> float:
    """Mean per-token latency of the tokens ``idx`` replayed through a placement (independent of evaluate)."""
    lat = np.asarray(inst.fallback, float).copy()
    for n, layer, e in triples:
        g = inst.expert_id(layer, e)
        lat[g] = min(lat[g], inst.latency[n, g])
    per_token = np.zeros(idx.size)
    for layer in range(inst.L):
        g = inst.expert_offset[layer] + paths.ids[layer, idx].astype(np.int64)
        per_token += lat[g].max(axis=1)
    return float(per_token.mean())


@pytest.mark.parametrize("family", ["trace", "deepseek-v2-lite-esft"])
def test_token_paths_replay_matches_the_evaluator(law_trace: Path, family: str) -> None:
    """The abstraction replay (issue 16) builds on: token paths + recorded split give evaluate's latency."""
    params = {"layers": 4, "tokens": 400, "servers": 2, "capacity": 0.15}
    params |= {"file": str(law_trace)} if family == "trace" else {"task": "law"}
    inst = generate(family, params, 3)
    from moebench.harness import run_method

    triples = run_method(inst, "popularity").placement
    assert triples
    paths = TraceFileSource(law_trace).load("law") if family == "trace" else EsftSource(shipped_data_dir()).load("law")
    idx, info = select_tokens(paths, 0.8, "train", 400, 3)
    assert info["token_index_sha256"] == inst.meta["provenance"]["token_index_sha256"]
    ev = evaluate(inst, from_triples(inst, triples))
    assert replay_mean(inst, paths, idx, triples) == pytest.approx(ev.latency, rel=1e-12)


def test_trace_family_end_to_end_suite_and_report(tmp_path: Path) -> None:
    path, _ = small_trace(tmp_path)
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text(
        '[suite]\nname = "byo"\ntime_limit = 20.0\ngrace = 2.0\n\n'
        f'[[instances]]\nfamily = "trace"\nparams = {{ file = "{path}", task = "chat", servers = 2, capacity = 0.3 }}\n'
        'holdout = { which = "test" }\n\n'
        '[[methods]]\nname = "none"\n\n[[methods]]\nname = "milp-highs"\n\n[[methods]]\nname = "exact-sets"\n'
    )
    out = tmp_path / "out"
    summary = run_suite(load_suite(suite_file), out, jobs=1, progress=False)
    assert summary.failed == 0
    write_report(out / "results.parquet", out / "report", references=summary.references)
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["family"]) == {"trace"} and set(df["method"]) == {"none", "milp-highs", "exact-sets"}
    brute = df[df["method"] == "milp-highs"].iloc[0]
    assert brute["status"] == "optimal" and brute["holdout_latency"] > 0
    # the structure-aware certification runs on user traces as on ESFT
    chain = df[df["method"] == "exact-sets"].iloc[0]
    assert chain["status"] == "optimal" and chain["gain"] == pytest.approx(brute["gain"], rel=1e-9)
    test = generate("trace", {"file": str(path), "task": "chat", "servers": 2, "capacity": 0.3, "which": "test"}, 0)
    ev = evaluate(
        test,
        from_triples(
            test, json.loads(brute["placement"]) if isinstance(brute["placement"], str) else brute["placement"]
        ),
    )
    assert brute["holdout_latency"] == pytest.approx(ev.latency, rel=1e-12)
    report = "\n".join(p.read_text(errors="replace") for p in (out / "report").rglob("*.md"))
    assert "trace" in report and "milp-highs" in report


def test_cli_generates_and_solves_a_trace_instance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = small_trace(tmp_path)
    out = tmp_path / "i.json.gz"
    assert (
        main(
            [
                "instances",
                "generate",
                "trace",
                "-p",
                f"file={path}",
                "-p",
                "task=code",
                "-p",
                "servers=2",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert main(["solve", str(out), "--method", "milp-highs", "--no-isolate"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["status"] == "optimal" and rec["gain"] > 0


# ---- the Hugging Face recipe: router logits -> trace ------------------------------------------
def brute_topk(row: np.ndarray, k: int) -> list[int]:
    return sorted(range(row.size), key=lambda e: (-row[e], e))[:k]


def test_router_logits_of_a_padded_batch(tmp_path: Path) -> None:
    """Shapes as transformers returns them: a tuple of (batch * seq_len, E) float32 arrays."""
    rng = np.random.default_rng(0)
    b, s, e, k, n_layers = 2, 7, 16, 4, 3
    logits = tuple(rng.normal(size=(b * s, e)).astype(np.float32) for _ in range(n_layers))
    logits[0][3, 5] = logits[0][3, 9]  # a tie: the lower id first
    mask = np.ones((b, s), int)
    mask[1, :3] = 0  # left padding of the second sequence
    seqs, kept = routing_from_router_logits((None, *logits), k, attention_mask=mask)
    assert kept == [1, 2, 3] and len(seqs) == 2
    ids0, w0 = seqs[0]
    ids1, w1 = seqs[1]
    assert ids0.shape == (3, 7, 4) and ids1.shape == (3, 4, 4)
    for layer in range(n_layers):
        full = logits[layer].astype(np.float64).reshape(b, s, e)
        for j, (ids, w, toks) in enumerate(((ids0, w0, range(7)), (ids1, w1, range(3, 7)))):
            for t_out, t in enumerate(toks):
                row = full[j, t]
                assert ids[layer, t_out].tolist() == brute_topk(row, k)
                p = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
                assert np.allclose(w[layer, t_out], p[brute_topk(row, k)], rtol=1e-12)
    seqs_n, _ = routing_from_router_logits(logits, k, attention_mask=mask, norm_topk_prob=True)
    assert np.allclose(seqs_n[1][1].sum(axis=-1), 1.0)
    # (B, S, E) logits give the same
    seqs3, _ = routing_from_router_logits([x.reshape(b, s, e) for x in logits], k, attention_mask=mask)
    assert all(np.array_equal(a[0], c[0]) for a, c in zip(seqs, seqs3))
    # the recipe's last step: write and read back, then an instance
    head = ModelHeader(experts=e, K=k, layers=(1, 2, 3), hidden=64, expert_inter=32, model="toy/moe")
    with TraceWriter(tmp_path / "hf.jsonl", head) as w:
        for ids, wts in seqs:
            w.add("demo", ids, wts)
    inst = generate("trace", {"file": str(tmp_path / "hf.jsonl"), "split": 1.0}, 0)
    assert inst.L == 3 and inst.K == k and inst.meta["provenance"]["tokens_used"] == 11
    with pytest.raises(InputError, match="output_router_logits"):
        routing_from_router_logits((None, None), 2)
    with pytest.raises(InputError, match="do not split"):
        routing_from_router_logits(logits, k, attention_mask=np.ones((3, 5)))


def test_trace_names_spell_the_file_content_not_its_path(tmp_path: Path) -> None:
    """Two files with one model header but other tokens give other names; a copy elsewhere the same."""
    a, _ = small_trace(tmp_path, "a.jsonl.gz", seed=0)
    b, _ = small_trace(tmp_path, "b.jsonl.gz", seed=1)
    (tmp_path / "copy").mkdir()
    copy = tmp_path / "copy" / "a.jsonl.gz"
    copy.write_bytes(a.read_bytes())
    base = {"task": "chat", "servers": 2}
    names = [generate("trace", {**base, "file": str(f)}, 0).name for f in (a, b, copy)]
    assert names[0] != names[1] and names[0] == names[2] and all(valid_name(n) for n in names)
    wider = generate("trace", {**base, "file": str(a), "capacity": 0.5}, 0).name
    assert wider != names[0] and valid_name(wider)


# ---- counts-only sources -----------------------------------------------------------------------
def test_olmoe_counts_as_a_counts_file_give_the_olmoe_family_instances(tmp_path: Path) -> None:
    data = json.loads((shipped_data_dir() / OLMOE_COUNTS_JSON).read_text())["models"]["olmoe-1b-7b-0924"]
    dom = data["domains"]["github"]["expert_counts"]
    head = ModelHeader(
        experts=64, K=8, layers=(0, 7, 15), catalog_model="olmoe-1b-7b", model="allenai/OLMoE-1B-7B-0924"
    )
    path = tmp_path / "olmoe.json"
    write_counts(
        path, head, {"github": {"tokens": dom["num_tokens"], "expert_counts": list(dom["per_layer_counts"].values())}}
    )
    params = {"layers": 2, "tokens": 500, "servers": 4}
    mine = generate("counts-surrogate", {**params, "file": str(path)}, 5)
    ref = generate("olmoe-counts", {**params, "domain": "github"}, 5)
    assert mine.content_hash == ref.content_hash
    assert mine.meta["activation_model"] == ref.meta["activation_model"] and mine.meta["activation_model"].startswith(
        "surrogate"
    )
    assert re.fullmatch(r"counts-surrogate-olmoe-1b-7b-0924-[0-9a-f]{8}-github-L2-T500-N4-s5", mine.name)
    assert mine.meta["fit_max_marginal_error"] < 1e-9 and "pair_model_max_error" not in mine.meta


def test_counts_with_pair_counts_measure_the_missing_co_activation(tmp_path: Path) -> None:
    paths = EsftSource(shipped_data_dir()).load("translation")
    sub = TokenPaths("translation", paths.ids[:2], paths.seq, paths.n_seq, 64, (1, 2), paths.sha256)
    wl = counts_from_paths(sub)
    head = ModelHeader(experts=64, K=6, layers=(1, 2), catalog_model="deepseek-v2-lite", source="ESFT translation")
    path = tmp_path / "c.json"
    write_counts(path, head, {"translation": wl})
    cf = read_counts(path)
    assert cf.workloads["translation"].tokens == paths.T
    inst = generate("counts-surrogate", {"file": str(path), "tokens": 3000}, 0)
    assert inst.meta["activation_model"].startswith("surrogate")
    target = np.array(wl["expert_counts"]) / paths.T
    assert inst.meta["fit_max_marginal_error"] < 1e-9
    assert np.max(np.abs(inst.marginals.reshape(2, 64) - target)) == pytest.approx(
        inst.meta["sample_max_marginal_error"]
    )
    # real routing co-activates experts far more than independence allows: the surrogate misses it
    assert 0.01 < inst.meta["pair_model_max_error"] < 1 and 0 < inst.meta["pair_model_mean_abs_error"] < 0.01


def test_small_counts_exact_distribution(tmp_path: Path) -> None:
    head = ModelHeader(experts=5, K=2, layers=(0,), hidden=128, expert_inter=64, model="toy/five")
    counts = [[40, 30, 15, 10, 5]]  # 50 tokens
    path = tmp_path / "five.json"
    write_counts(path, head, {"w": {"expert_counts": counts}})
    inst = generate("counts-surrogate", {"file": str(path), "tokens": 0}, 0)
    assert inst.M == 10 and np.allclose(inst.marginals, np.array(counts[0]) / 50, atol=1e-9)


@pytest.mark.parametrize(
    ("workload", "reason"),
    [
        ({"expert_counts": [[40, 30, 15, 10, 6]]}, "not K x tokens"),
        ({"expert_counts": [[40, 30, 15, 10, 5]], "tokens": 49}, "not K x tokens"),
        ({"expert_counts": [[60, 20, 10, 5, 5]]}, "exceeds the 50 tokens"),
        ({"expert_counts": [[40, 30, 15, 10]]}, "shape 1 x 5"),
        ({"expert_counts": [[40, 30, 15, 10, 5]], "pair_counts": [np.eye(5, dtype=int).tolist()]}, "diagonal"),
        ({"expert_counts": [[40.0, 30, 15, 10, 5]]}, "expected integers"),
        ({"counts": [[1]]}, "unknown field"),
    ],
)
def test_bad_counts_files(tmp_path: Path, workload: dict, reason: str) -> None:
    head = ModelHeader(experts=5, K=2, layers=(0,), hidden=128, expert_inter=64)
    path = tmp_path / "bad.json"
    write_counts(path, head, {"w": workload})
    with pytest.raises(InputError, match=reason):
        read_counts(path)


@pytest.mark.parametrize(("e", "k"), [(5, 1), (6, 2), (7, 3), (6, 5)])
def test_cps_pair_inclusion_matches_enumeration(e: int, k: int) -> None:
    rng = np.random.default_rng(e + k)
    w = rng.gamma(0.8, size=e)
    sets = list(itertools.combinations(range(e), k))
    p = np.array([np.prod(w[list(s)]) for s in sets])
    p /= p.sum()
    pair = np.zeros((e, e))
    for s, q in zip(sets, p):
        for i in s:
            for j in s:
                pair[i, j] += q
    assert np.allclose(cps_pair_inclusion(w, k), pair, atol=1e-13)
    assert np.allclose(np.diag(cps_pair_inclusion(w, k)), cps_inclusion(w, k))
