"""Replay of real token streams (issue 16 item 1): moebench.replay and ``moebench replay``.

Two independent checks:

- the mean over an instance's own token set equals the evaluator's latency (ESFT train and test,
  a user trace), within 1e-9 relative;
- a replay written here from the raw files (gzip + str.split for the ESFT layer files, json for
  a trace file; the train/test split re-derived from its documented rule; effective latencies
  from the placement triples) agrees on the token and sequence counts, the mean, the maximum and
  the percentiles, for the instance's task and for another task.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest

import moebench
from moebench.cli import main
from moebench.errors import InputError
from moebench.evaluate import evaluate
from moebench.families import generate
from moebench.instance import Instance
from moebench.instance_file import instance_to_dict, save_instance
from moebench.placement import save_placement
from moebench.replay import PERCENTILES, Replayer, TraceOrigin, replay

# the shipped data folder, located without moebench.data
ESFT_SCORES = Path(moebench.__file__).parent / "data" / "moe-traces" / "deepseek-v2-lite-esft" / "expert_scores"
HEADER = {
    "format": "moebench-trace/1",
    "model": "acme/Tiny-MoE-8x2",
    "experts": 8,
    "K": 2,
    "layers": [1, 3, 5],
    "hidden": 256,
    "expert_inter": 512,
}


# ---- independent readers and replay ------------------------------------------------------------
@cache
def raw_esft(task: str, layers: int) -> tuple[np.ndarray, ...]:
    """Per sequence the (layers, T, 6) expert ids, read from the gzip layer files with str.split."""
    per_layer = []
    for layer in range(1, layers + 1):
        text = gzip.decompress((ESFT_SCORES / task / f"expert_weights_{layer}.txt.gz").read_bytes()).decode()
        seqs = []
        for line in text.splitlines():
            if line:
                ids = [int(v) for v in line.split("\t\t")[0].split("\t")]
                seqs.append(np.array(ids).reshape(-1, 6))
        per_layer.append(seqs)
    return tuple(np.stack([per_layer[l][s] for l in range(layers)]) for s in range(len(per_layer[0])))


def raw_trace(path: Path) -> dict[str, list[np.ndarray]]:
    """Per task the (L, T, K) ids of every sequence, read with json."""
    out: dict[str, list[np.ndarray]] = {}
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    for line in lines[1:]:
        obj = json.loads(line)
        out.setdefault(obj["task"], []).append(np.array(obj["ids"]))
    return out


def split_rule(n_seq: int, split: float, seed: int, part: str) -> list[int]:
    """docs/data.md: permutation from default_rng([seed, 0]), the first max(1, round(split n)) are train."""
    perm = np.random.default_rng([seed, 0]).permutation(n_seq)
    n_train = min(n_seq, max(1, round(split * n_seq)))
    return sorted(int(i) for i in (perm[:n_train] if part == "train" else perm[n_train:]))


def independent_replay(inst: Instance, x: np.ndarray, seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-token and per-sequence latency of the sequences ``seqs`` ((L, T, K) local ids each)."""
    tau = np.array(inst.fallback, dtype=float)
    for n, g in np.argwhere(x):
        tau[g] = min(tau[g], inst.latency[n, g])
    tokens, sums = [], []
    for s in seqs:
        per = np.zeros(s.shape[1])
        for layer in range(inst.L):
            per += np.array([max(tau[inst.expert_offset[layer] + e] for e in tok) for tok in s[layer]])
        tokens.append(per)
        sums.append(per.sum())
    return np.concatenate(tokens), np.array(sums)


def random_placement(inst: Instance, seed: int, share: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).random((inst.N, inst.G)) < share


def assert_agrees(rep, tokens: np.ndarray, sums: np.ndarray) -> None:
    d = rep.to_dict()
    assert d["tokens"] == tokens.size and d["sequences"] == sums.size
    assert d["mean"] == pytest.approx(tokens.mean(), rel=1e-12)
    assert d["max"] == pytest.approx(tokens.max(), rel=1e-12) and d["min"] == pytest.approx(tokens.min(), rel=1e-12)
    for p in PERCENTILES:
        assert d[f"p{p}"] == pytest.approx(np.percentile(tokens, p), rel=1e-12)
    assert d["per_sequence"]["mean"] == pytest.approx(sums.mean(), rel=1e-12)
    assert d["per_sequence"]["max"] == pytest.approx(sums.max(), rel=1e-12)
    assert np.allclose(rep.sequence_latency, sums, rtol=1e-12)


# ---- fixtures ----------------------------------------------------------------------------------
def write_trace(path: Path, seed: int, header: dict | None = None, tasks: tuple = (("chat", 9), ("code", 5))) -> Path:
    """A gzip trace file written with json: skewed, co-activated routing, 3..14 tokens per sequence."""
    head = header or HEADER
    rng = np.random.default_rng(seed)
    e, k, nl = head["experts"], head["K"], len(head["layers"])
    p = np.r_[4, 4, 3, 3, np.ones(e - 4)] / (14 + e - 4)
    lines = [json.dumps(head)]
    for task, n in tasks:
        for _ in range(n):
            t = int(rng.integers(3, 15))
            ids = [[rng.choice(e, k, replace=False, p=p).tolist() for _ in range(t)] for _ in range(nl)]
            lines.append(json.dumps({"task": task, "ids": ids}))
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trace(tmp_path_factory.mktemp("trace") / "tiny.jsonl.gz", 0)


@pytest.fixture(scope="module")
def esft_law() -> dict[str, Instance]:
    """Law instances of all 26 layers and every token of the part, train and test of one split."""
    base = {"task": "law", "servers": 3, "capacity": 0.3}
    return {w: generate("deepseek-v2-lite-esft", {**base, "which": w}, 2) for w in ("train", "test")}


# ---- the mean over the instance's own tokens is the evaluator's latency -------------------------------
@pytest.mark.parametrize("which", ["train", "test"])
def test_esft_replay_of_the_instance_tokens_is_the_evaluator(esft_law: dict[str, Instance], which: str) -> None:
    inst = esft_law[which]
    x = random_placement(inst, 1)
    rep = replay(inst, x, token_set=which)
    assert rep.instance_tokens and rep.task == "law" and rep.token_set == which
    assert rep.per_token.count == inst.meta["provenance"]["tokens_used"]
    assert rep.per_token.mean == pytest.approx(evaluate(inst, x).latency, rel=1e-9)
    assert rep.empty_mean == pytest.approx(inst.empty_latency, rel=1e-9)
    assert rep.per_token.mean < rep.empty_mean  # the placement helps, so the check is not vacuous
    # the other part of the split is other tokens: not the instance's, another mean
    other = replay(inst, x, token_set="test" if which == "train" else "train")
    assert not other.instance_tokens and other.per_token.mean != pytest.approx(rep.per_token.mean, rel=1e-6)


@pytest.mark.parametrize(("which", "split"), [("train", 0.6), ("test", 0.6), ("train", 1.0)])
def test_trace_replay_of_the_instance_tokens_is_the_evaluator(tiny: Path, which: str, split: float) -> None:
    inst = generate("trace", {"file": str(tiny), "task": "code", "which": which, "split": split, "servers": 2}, 5)
    x = random_placement(inst, 2, 0.4)
    rp = Replayer(inst, trace=tiny)
    rep = rp.replay(x, token_set=which)
    assert rep.instance_tokens and rep.per_token.mean == pytest.approx(evaluate(inst, x).latency, rel=1e-9)
    # with split=1 the train part is every token
    assert rp.replay(x, token_set="all").instance_tokens == (split == 1.0)


def test_a_sampled_instance_replays_whole_sequences(esft_law: dict[str, Instance]) -> None:
    """tokens=N instances sample tokens; replay keeps whole sequences, so it is not their token set."""
    inst = generate("deepseek-v2-lite-esft", {"task": "law", "tokens": 300, "layers": 3, "servers": 2}, 2)
    rep = replay(inst, random_placement(inst, 0), token_set="train")
    assert not rep.instance_tokens
    assert rep.per_token.count == esft_law["train"].meta["provenance"]["tokens_used"]  # the same split


# ---- an independent replay from the raw files -------------------------------------------------------
@pytest.mark.parametrize(
    ("task", "token_set"), [("law", "train"), ("law", "all"), ("summary", "test"), ("summary", "all")]
)
def test_esft_replay_agrees_with_the_raw_files(esft_law: dict[str, Instance], task: str, token_set: str) -> None:
    inst = esft_law["train"]
    x = random_placement(inst, 3)
    raw = raw_esft(task, 26)
    chosen = range(len(raw)) if token_set == "all" else split_rule(len(raw), 0.8, 2, token_set)
    tokens, sums = independent_replay(inst, x, [raw[i] for i in chosen])
    rep = replay(inst, x, task, token_set)
    assert rep.sequences.tolist() == list(chosen)
    assert_agrees(rep, tokens, sums)
    assert rep.instance_tokens == (task == "law" and token_set == "train")


@pytest.mark.parametrize(
    ("task", "token_set"), [("chat", "train"), ("chat", "test"), ("code", "all"), ("code", "test")]
)
def test_trace_replay_agrees_with_the_raw_file(tiny: Path, task: str, token_set: str) -> None:
    inst = generate("trace", {"file": str(tiny), "task": "chat", "split": 0.7, "servers": 2}, 9)
    x = random_placement(inst, 4, 0.4)
    raw = raw_trace(tiny)[task]
    chosen = range(len(raw)) if token_set == "all" else split_rule(len(raw), 0.7, 9, token_set)
    tokens, sums = independent_replay(inst, x, [raw[i] for i in chosen])
    assert_agrees(replay(inst, x, task, token_set, trace=tiny), tokens, sums)


def test_fewer_layers_replay_only_the_instance_layers(tiny: Path) -> None:
    inst = generate("trace", {"file": str(tiny), "task": "chat", "layers": 2, "servers": 2}, 0)
    x = random_placement(inst, 5, 0.5)
    raw = raw_trace(tiny)["code"]
    tokens, sums = independent_replay(inst, x, [r[:2] for r in raw])
    assert_agrees(replay(inst, x, "code", trace=tiny), tokens, sums)


def test_replayer_caches_streams_and_serves_many_placements(esft_law: dict[str, Instance]) -> None:
    inst = esft_law["train"]
    rp = Replayer(inst)
    assert rp.stream("intent", "test") is rp.stream("intent", "test")
    s = rp.stream("intent", "test")
    assert s.ids.shape == (26, 6, s.token_index.size) and not s.ids.flags.writeable
    raw = raw_esft("intent", 26)
    for seed in (6, 7):
        x = random_placement(inst, seed)
        chosen = split_rule(len(raw), 0.8, 2, "test")
        assert_agrees(rp.replay(x, "intent", "test"), *independent_replay(inst, x, [raw[i] for i in chosen]))


def test_another_recording_serves_other_tasks_with_the_same_numbers(tmp_path: Path) -> None:
    """An ESFT instance replayed on intent written as a trace file gives what the data folder gives."""
    raw = raw_esft("intent", 4)
    head = {**HEADER, "model": "deepseek-ai/ESFT-vanilla-lite", "experts": 64, "K": 6, "layers": [1, 2, 3, 4]}
    lines = [json.dumps(head)] + [json.dumps({"task": "intent", "ids": r.tolist()}) for r in raw]
    path = tmp_path / "intent.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    inst = generate("deepseek-v2-lite-esft", {"task": "law", "layers": 4, "servers": 2}, 1)
    x = random_placement(inst, 8)
    mine = replay(inst, x, "intent", "test", trace=path)
    ref = replay(inst, x, "intent", "test")
    assert mine.source["kind"] == "trace-file" and ref.source["kind"] == "esft"
    assert np.array_equal(mine.token_latency, ref.token_latency) and np.array_equal(mine.sequences, ref.sequences)
    # the instance's own task must come from the data it was built from
    law_lines = [json.dumps(head)] + [json.dumps({"task": "law", "ids": r.tolist()}) for r in raw_esft("law", 4)]
    law = tmp_path / "law.jsonl.gz"
    law.write_bytes(gzip.compress(("\n".join(law_lines) + "\n").encode()))
    with pytest.raises(InputError, match="not the data the instance was built from"):
        replay(inst, x, "law", trace=law)


# ---- bad input ------------------------------------------------------------------------------------
def test_origin_errors_name_the_meta_field() -> None:
    inst = generate("uniform", {"layers": 2, "experts": 4, "K": 2, "servers": 2}, 0)
    with pytest.raises(InputError, match="real trace") as err:
        TraceOrigin.of(inst)
    assert err.value.where == "meta.family"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        rc = main(["replay", *map(str, args)])
    except SystemExit as exc:  # argparse usage errors
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("moebench: error: "), err
    return lines[0]


def test_cli_prints_the_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str], esft_law) -> None:
    inst = esft_law["train"]
    x = random_placement(inst, 1, 0.1)
    x[:] = False
    x[0, :100] = True  # feasible: 100 experts of 17.3 MB on one server
    ipath, ppath = tmp_path / "law.json.gz", tmp_path / "p.json"
    save_instance(inst, ipath)
    save_placement(inst, x, ppath)
    rc, out, _ = _run(capsys, ipath, ppath, "--task", "intent", "--tokens", "test")
    doc = json.loads(out)
    assert rc == 0 and doc["feasible"] is True
    for key in ("tokens", "sequences", "mean", "p50", "p90", "p95", "p99", "max"):
        assert isinstance(doc[key], (int, float)) and isinstance(doc["per_sequence"].get(key, 0), (int, float))
    assert doc == json.loads(json.dumps(replay(inst, x, "intent", "test").to_dict()))
    # default: the instance's task, every token
    rc, out, _ = _run(capsys, ipath, ppath)
    doc = json.loads(out)
    assert rc == 0 and doc["task"] == "law" and doc["token_set"] == "all" and doc["sequences"] == 33
    # an infeasible placement is replayed, with exit code 1 as in evaluate
    save_placement(inst, np.ones((inst.N, inst.G), bool), ppath)
    rc, out, _ = _run(capsys, ipath, ppath)
    assert rc == 1 and json.loads(out)["feasible"] is False


def test_cli_trace_instances_need_their_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    inst = generate("trace", {"file": str(tiny), "task": "chat", "servers": 2}, 0)
    ipath, ppath = tmp_path / "t.json", tmp_path / "p.json"
    save_instance(inst, ipath)
    save_placement(inst, random_placement(inst, 0, 0.05), ppath)
    rc, _, err = _run(capsys, ipath, ppath)
    line = _one_line(err)
    assert rc == 2 and "--trace: " in line and "tiny.jsonl.gz" in line
    rc, out, _ = _run(capsys, ipath, ppath, "--trace", tiny, "--tokens", "test")
    assert rc in (0, 1) and json.loads(out)["instance_tokens"] is False
    # another file: its own task is refused, another task of the same model is served
    other = write_trace(tmp_path / "other.jsonl.gz", 1)
    rc, _, err = _run(capsys, ipath, ppath, "--trace", other)
    assert rc == 2 and "not the data the instance was built from" in _one_line(err)
    rc, out, _ = _run(capsys, ipath, ppath, "--trace", other, "--task", "code")
    assert rc in (0, 1) and json.loads(out)["source"]["name"] == "other.jsonl.gz"
    # another model: K, experts or layer numbers differ
    for change in ({"K": 3}, {"experts": 9}, {"layers": [0, 1, 2]}):
        bad = write_trace(tmp_path / "bad.jsonl.gz", 2, {**HEADER, **change})
        rc, _, err = _run(capsys, ipath, ppath, "--trace", bad, "--task", "code")
        line = _one_line(err)
        assert rc == 2 and "not the same model" in line and "bad.jsonl.gz: task code: " in line
    rc, _, err = _run(capsys, ipath, ppath, "--trace", other, "--task", "nope")
    assert rc == 2 and "no task 'nope'" in _one_line(err)


@pytest.mark.parametrize(
    ("edit", "args", "message"),
    [
        (lambda d: d["meta"].update(family="uniform"), (), "meta.family: replay needs an instance built from"),
        (lambda d: d["meta"]["provenance"].pop("split"), (), "meta.provenance.split: missing"),
        (lambda d: d["meta"]["provenance"].update(which=3), (), "meta.provenance.which: expected str"),
        (lambda d: d["meta"]["provenance"].update(train_sequences=[0, 1]), (), "meta.provenance.train_sequences: "),
        (
            lambda d: d["meta"]["provenance"].update(split=1.0, train_sequences=list(range(13)), test_sequences=[]),
            ("--tokens", "test"),
            "tokens: split=1 leaves no test sequence of the 13 of task summary",
        ),
        (lambda d: d["meta"]["provenance"].update(data_sha256="0" * 64), (), "not the data the instance"),
        (lambda d: None, ("--task", "cooking"), "unknown ESFT task 'cooking'"),
        (lambda d: None, ("--tokens", "half"), "invalid choice: 'half'"),
        (lambda d: None, ("--data-dir", "/nonexistent-moebench"), "data folder /nonexistent-moebench not found"),
    ],
)
def test_cli_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit, args: tuple, message: str
) -> None:
    inst = generate("deepseek-v2-lite-esft", {"task": "summary", "layers": 2, "servers": 2}, 0)
    doc = instance_to_dict(inst)
    edit(doc)
    ipath, ppath = tmp_path / "i.json", tmp_path / "p.json"
    ipath.write_text(json.dumps(doc))
    save_placement(inst, np.zeros((inst.N, inst.G), bool), ppath)
    rc, out, err = _run(capsys, ipath, ppath, *args)
    line = _one_line(err)
    assert rc == 2 and out == "" and message in line, line
    if message.startswith("meta."):
        assert line.startswith(f"moebench: error: {ipath}: ")


def test_cli_refuses_a_placement_of_another_instance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = generate("deepseek-v2-lite-esft", {"task": "summary", "layers": 2, "servers": 2}, 0)
    b = generate("deepseek-v2-lite-esft", {"task": "summary", "layers": 2, "servers": 2, "capacity": 0.5}, 0)
    save_instance(a, tmp_path / "a.json")
    save_placement(b, np.zeros((b.N, b.G), bool), tmp_path / "p.json")
    rc, _, err = _run(capsys, tmp_path / "a.json", tmp_path / "p.json")
    assert rc == 2 and "instance_hash" in _one_line(err)
