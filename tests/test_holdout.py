"""Holdout evaluation in the runner: placements optimized on one instance, evaluated on its twin."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moebench.bench.holdout import holdout_columns, twin_mismatch
from moebench.bench.runner import run_suite
from moebench.bench.suite import load_suite
from moebench.bench.tasks import task_id
from moebench.cli import main
from moebench.errors import InputError
from moebench.evaluate import evaluate
from moebench.families import generate
from moebench.families.traces import deepseek_train_test
from moebench.instance import replace_arrays
from moebench.placement import from_triples

ZIPF = "layers = 2, experts = 6, servers = 2, K = 2, capacity = 0.3"


def _suite(folder: Path, instances: str, methods: tuple[str, ...] = ("none", "popularity", "sgd-levels[dp]")) -> Path:
    body = "\n".join(f'[[methods]]\nname = "{m}"\n' for m in methods)
    path = folder / "suite.toml"
    path.write_text(f'[suite]\nname = "h"\ntime_limit = 20.0\ngrace = 2.0\n\n{instances}\n{body}')
    return path


def _check_rows(df: pd.DataFrame, test_inst) -> None:
    """Every row's holdout columns equal the evaluator on the test instance, computed here."""
    assert len(df) > 0
    for _, r in df.iterrows():
        triples = json.loads(r["placement"]) if isinstance(r["placement"], str) else r["placement"]
        x = from_triples(test_inst, triples)
        ev = evaluate(test_inst, x)
        assert r["holdout_latency"] == pytest.approx(ev.latency, rel=1e-12, abs=1e-12)
        assert r["holdout_gain"] == pytest.approx(ev.gain, rel=1e-12, abs=1e-12)
        assert r["holdout_empty_latency"] == pytest.approx(test_inst.empty_latency, rel=1e-12)


def test_trace_holdout_columns_are_the_test_latency_of_the_train_placement(tmp_path: Path) -> None:
    params = {"layers": 2, "tokens": 100, "servers": 2, "capacity": 0.25}
    train, test = deepseek_train_test(params, 0)
    inst_block = (
        '[[instances]]\nfamily = "deepseek-v2-lite-esft"\n'
        "params = { layers = 2, tokens = 100, servers = 2, capacity = 0.25 }\n"
        'holdout = { which = "test" }\n'
    )
    suite = load_suite(_suite(tmp_path, inst_block))
    (inst,) = suite.instances()
    assert inst.content_hash == train.content_hash and inst.meta["holdout"]["params"]["which"] == "test"
    out = tmp_path / "out"
    summary = run_suite(suite, out, jobs=2, progress=False, report=False)
    df = pd.read_parquet(out / "results.parquet")
    assert summary.failed == 0 and set(df["method"]) == {"none", "popularity", "sgd-levels[dp]"}
    _check_rows(df, test)
    # the test tokens differ from the train tokens: a non-empty placement's latency differs there
    sgd = df[df["method"] == "sgd-levels[dp]"].iloc[0]
    assert sgd["holdout_gain"] > 0 and not math.isclose(sgd["holdout_latency"], sgd["latency"])
    none = df[df["method"] == "none"].iloc[0]
    assert none["holdout_latency"] == pytest.approx(test.empty_latency)
    # resume recognizes the finished tasks (ids include the holdout spec and stay stable)
    again = run_suite(load_suite(tmp_path / "suite.toml"), out, jobs=2, progress=False, report=False, resume=True)
    assert again.ran == 0 and again.skipped == 3


def test_generated_holdout_with_more_tokens_and_stable_task_ids(tmp_path: Path) -> None:
    block = f'[[instances]]\nfamily = "zipf"\nparams = {{ {ZIPF}, tokens = 300 }}\nholdout = {{ tokens = 900 }}\n'
    suite = load_suite(_suite(tmp_path, block))
    (inst,) = suite.instances()
    twin = generate("zipf", {"layers": 2, "experts": 6, "servers": 2, "K": 2, "capacity": 0.3, "tokens": 900}, 0)
    assert twin_mismatch(inst, twin) is None and twin.content_hash != inst.content_hash
    # the task id includes the holdout spec: the same instance without it has another id
    plain = replace_arrays(inst, meta={k: v for k, v in inst.meta.items() if k != "holdout"})
    assert task_id(inst, "none", {}, 0, 0, 20.0) != task_id(plain, "none", {}, 0, 0, 20.0)
    assert task_id(inst, "none", {}, 0, 0, 20.0) == task_id(suite.instances()[0], "none", {}, 0, 0, 20.0)
    out = tmp_path / "out"
    run_suite(suite, out, jobs=1, progress=False, report=False)
    df = pd.read_parquet(out / "results.parquet")
    _check_rows(df, twin)


def test_no_holdout_or_no_placement_gives_nan_columns() -> None:
    inst = generate("zipf", {"layers": 2, "experts": 6, "servers": 2, "K": 2, "tokens": 200}, 0)
    cols = holdout_columns(inst, "feasible", [])
    assert set(cols) == {"holdout_latency", "holdout_gain", "holdout_empty_latency"}
    assert all(math.isnan(v) for v in cols.values())
    from moebench.bench.holdout import attach_holdout

    with_h = attach_holdout(
        inst, "zipf", {"layers": 2, "experts": 6, "servers": 2, "K": 2, "tokens": 200}, 0, {"tokens": 400}
    )
    assert all(math.isnan(v) for v in holdout_columns(with_h, "error", []).values())
    assert holdout_columns(with_h, "feasible", [])["holdout_gain"] == 0.0


@pytest.mark.parametrize(
    ("holdout", "where", "reason"),
    [
        ("{ experts = 8 }", "instances[0].holdout", "experts per layer differ"),
        ("{ capacity = 0.5 }", "instances[0].holdout", "capacities differ"),
        ("{ servers = 3 }", "instances[0].holdout", "servers differ"),
        ("{ K = 3 }", "instances[0].holdout", "K differs"),
        ("{ delay_max = 9.0 }", "instances[0].holdout", "latencies differ"),
        ("{ cloud_delay = 40.0 }", "instances[0].holdout", "fallbacks differ"),
    ],
)
def test_a_holdout_that_is_not_a_twin_is_a_suite_error(tmp_path: Path, holdout: str, where: str, reason: str) -> None:
    block = f'[[instances]]\nfamily = "zipf"\nparams = {{ {ZIPF}, tokens = 300 }}\nholdout = {holdout}\n'
    path = _suite(tmp_path, block)
    suite = load_suite(path)  # parameters are valid: the mismatch shows when the instances are built
    with pytest.raises(InputError) as info:
        suite.instances()
    assert info.value.where == where and reason in info.value.reason and "twin" in info.value.reason


@pytest.mark.parametrize(
    ("holdout", "where", "reason"),
    [
        ("{ nope = 1 }", "instances[0].holdout.nope", "unknown key"),
        ("{}", "instances[0].holdout", "overrides"),
        ("3", "instances[0].holdout", "expected a table"),
        ('{ K = "two" }', "instances[0].holdout.K", "expects int"),
    ],
)
def test_bad_holdout_keys_fail_at_load(tmp_path: Path, holdout: str, where: str, reason: str) -> None:
    path = _suite(tmp_path, f'[[instances]]\nfamily = "zipf"\nparams = {{ {ZIPF} }}\nholdout = {holdout}\n')
    with pytest.raises(InputError) as info:
        load_suite(path)
    assert info.value.where == where and reason in info.value.reason


def test_holdout_on_files_is_an_error_and_the_cli_exits_2(tmp_path: Path, capsys) -> None:
    path = _suite(tmp_path, '[[instances]]\nfiles = ["x.json"]\nholdout = { which = "test" }\n')
    with pytest.raises(InputError) as info:
        load_suite(path)
    assert info.value.where == "instances[0].holdout"
    bad = _suite(tmp_path, f'[[instances]]\nfamily = "zipf"\nparams = {{ {ZIPF} }}\nholdout = {{ experts = 8 }}\n')
    assert main(["run", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holdout" in err[0] and "experts per layer differ" in err[0]
    assert not (tmp_path / "o" / "results.jsonl").exists()  # nothing ran


def test_twin_check_compares_arrays() -> None:
    a = generate("zipf", {"layers": 2, "experts": 6, "servers": 2, "tokens": 200}, 0)
    assert twin_mismatch(a, a) is None
    b = replace_arrays(a, size=np.where(np.arange(a.G) == 0, a.size * 2, a.size))
    assert twin_mismatch(a, b) == "expert sizes differ"
