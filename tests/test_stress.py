"""``moebench stress``: finds bad instances for methods without guarantees, and files reproduce them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moebench.cli import main
from moebench.harness import run_method
from moebench.instance_file import load_instance
from moebench.stress import perturb, stress


def test_perturb_keeps_instances_valid():
    from conftest import random_instance

    rng = np.random.default_rng(0)
    inst = random_instance(rng, servers=2, layers=2, experts=4, K=2, sets=4)
    for _ in range(200):
        inst = perturb(inst, rng, 0.8)  # Instance() re-validates every field
    sums = np.add.reduceat(inst.probs, inst.set_offset[:-1])
    assert np.allclose(sums, 1.0)


def test_stress_finds_bad_popularity_instance_and_file_reproduces_it(tmp_path, capsys):
    out = tmp_path / "worst.json"
    assert main(["stress", "popularity", "--family", "uniform", "--budget", "3", "-o", str(out), "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["worst_ratio"] < 0.5
    inst = load_instance(out)
    assert inst.meta["stress"]["worst_ratio"] == summary["worst_ratio"]
    ratio = run_method(inst, "popularity").gain / run_method(inst, "bruteforce").gain
    assert ratio == pytest.approx(summary["worst_ratio"], rel=1e-9)


def test_stress_works_on_sampled_families():
    a = stress("popularity", "zipf", {"tokens": 50}, budget=0.5, seed=3, steps=20)
    assert a.instance is not None and a.ratio <= 1.0
