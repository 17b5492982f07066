"""Instance files: exact round trips, the bad-input corpus, and the published JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import random_instance

from moebench.cli import main
from moebench.errors import InputError
from moebench.families import generate
from moebench.instance_file import dumps_instance, load_instance, save_instance, schema

DATA = Path(__file__).parent / "data"
BAD = DATA / "bad"
EXPECTED = json.loads((BAD / "expected.json").read_text())
# defects that only the loader can see (cross-field checks, JSON-level problems)
NOT_SCHEMA_EXPRESSIBLE = {
    "not-json.json",
    "nan-fallback.json",
    "inf-capacity.json",
    "overflow-capacity.json",
    "not-gzip.json.gz",
    "empty.json",
    "set-wrong-size.json",
    "set-id-out-of-range.json",
    "probs-not-sum-1.json",
    "probs-length.json",
    "latency-server-count.json",
    "latency-expert-count.json",
    "size-expert-count.json",
    "fallback-expert-count.json",
    "fewer-experts-than-K.json",
    "duplicate-server-name.json",
    "set-id-float.json",  # JSON Schema counts 2.0 as an integer; the loader is stricter
    # JSON-level defects and resource limits (a schema validator sees the parsed document)
    "duplicate-key-K.json",
    "duplicate-key-layer.json",
    "duplicate-key-meta.json",
    "deep-nesting-meta.json",
    "int-400-digits.json",
    "int-400-digits-meta.json",
    "int-5000-digits.json",
    "float-overflow-meta.json",
    "set-id-huge.json",
    "huge-experts.json",
    "size-total-overflow.json",
    "file name with space.json",  # the name comes from the file name
    "gzip-truncated.json.gz",
    "gzip-trailing-garbage.json.gz",
    "gzip-of-garbage.json.gz",
}


def assert_same(a, b):
    assert a.name == b.name and a.K == b.K and a.server_names == b.server_names
    for f in ("capacity", "n_experts", "size", "latency", "fallback", "sets", "probs", "set_offset"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert dict(a.meta) == dict(b.meta)
    assert a.content_hash == b.content_hash


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
@pytest.mark.parametrize("seed", range(10))
def test_round_trip_random(tmp_path, suffix, seed):
    inst = random_instance(np.random.default_rng(seed), servers=3, layers=3, experts=5, K=2, sets=6)
    path = tmp_path / f"x{suffix}"
    save_instance(inst, path)
    back = load_instance(path)
    assert_same(inst, back)
    save_instance(back, tmp_path / f"y{suffix}")
    assert (tmp_path / f"y{suffix}").read_bytes() == path.read_bytes()  # byte-identical, gzip included


@pytest.mark.parametrize("family", ["uniform", "zipf", "clustered"])
def test_round_trip_families(tmp_path, family):
    inst = generate(family, {"K": 3, "layers": 3, "experts": 10, "inter_jitter": 0.3, "tokens": 300}, seed=4)
    save_instance(inst, tmp_path / "f.json.gz")
    assert_same(inst, load_instance(tmp_path / "f.json.gz"))


def test_spec_example_loads():
    inst = load_instance(DATA / "good" / "spec-example.json")
    assert (inst.N, inst.L, inst.G, inst.K) == (2, 1, 4, 2)
    assert np.allclose(inst.latency, [[2, 2, 2, 2], [3, 3, 3.5, 3.5]])
    assert np.allclose(inst.marginals, [0.7, 0.5, 0.5, 0.3])


def test_counts_are_normalized_and_repeats_merged():
    inst = load_instance(DATA / "good" / "counts-repeats.json")
    assert inst.layer_sets(0).tolist() == [[0, 1], [1, 2]]  # [1,0] and [0,1] merged, ids sorted
    assert inst.layer_probs(0).tolist() == [0.5, 0.5]  # counts 3+1 and 4
    assert inst.server_names == ("edge-0",)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_corpus_in_process(name, capsys):
    assert main(["instances", "show", str(BAD / name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0] == f"moebench: error: {BAD / name}: " + EXPECTED[name].split(": ", 1)[1]


def test_bad_corpus_cli_no_traceback():
    """The real console script: exit code 2, one line, no traceback, for every bad file."""
    for name in sorted(EXPECTED):
        proc = subprocess.run(
            [sys.executable, "-m", "moebench.cli", "instances", "show", name], cwd=BAD, capture_output=True, text=True
        )
        assert proc.returncode == 2, name
        assert proc.stdout == ""
        assert proc.stderr == f"moebench: error: {EXPECTED[name]}\n", name
        assert "Traceback" not in proc.stderr


def test_solve_and_evaluate_reject_bad_files_too(capsys):
    assert main(["solve", str(BAD / "K-string.json"), "--method", "none"]) == 2
    assert main(["evaluate", str(BAD / "zero-layers.json"), str(BAD / "zero-layers.json")]) == 2


def test_missing_file():
    with pytest.raises(InputError, match="file not found"):
        load_instance("/nonexistent/x.json")


def test_schema_accepts_good_files():
    sch = schema()
    jsonschema.Draft202012Validator.check_schema(sch)
    for path in (DATA / "good").glob("*.json"):
        jsonschema.validate(json.loads(path.read_text()), sch)


def test_schema_accepts_saved_files(tmp_path):
    inst = generate("clustered", {"K": 2, "layers": 2, "tokens": 100, "inter_jitter": 0.2}, seed=0)
    jsonschema.validate(json.loads(dumps_instance(inst)), schema())


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - NOT_SCHEMA_EXPRESSIBLE))
def test_schema_rejects_what_it_can_express(name):
    doc = json.loads((BAD / name).read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema())
