"""``[[stress]]`` entries in suites: validation, running through the runner (files that reproduce
the recorded ratio, resume), and the report sections of the guarantees report."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_report_tables import _row

from moebench.bench.runner import run_suite
from moebench.bench.store import ResultStore
from moebench.bench.suite import load_suite
from moebench.errors import InputError
from moebench.harness import run_method
from moebench.instance_file import load_instance
from moebench.report import tables
from moebench.report.build import write_report
from moebench.report.guarantees import claims_table, guarantee_report_sections

E = 1 - 1 / math.e

HEAD = """
[suite]
name = "t"
time_limit = 10.0
[[instances]]
family = "uniform"
params = { K = 1, layers = 1, experts = 4, servers = 1, tokens = 0, inter_jitter = 0.5 }
[[references]]
name = "bruteforce"
[[methods]]
name = "greedy-ratio"
"""


def _suite(tmp_path: Path, stress: str) -> Path:
    p = tmp_path / "suite.toml"
    p.write_text(HEAD + stress)
    return p


GOOD = """
[[stress]]
method = "greedy-ratio"
family = "uniform"
params = { K = 1, servers = 1, layers = 1, experts = 4 }
budget = 1
"""


@pytest.mark.parametrize(
    ("extra", "where", "reason"),
    [
        ("budgett = 1", "stress[0].budgett", "unknown key"),
        ("claim = 1.5\nclaim_source = 'x'", "stress[0].claim", "must be <= 1"),
        ("claim = 0.5", "stress[0].claim_source", "needs its source"),
        ("claim_conditions = 'K = 1'", "stress[0].claim_conditions", "only meaningful with 'claim'"),
        ("seeds = [1, 1]", "stress[0].seeds", "listed twice"),
        ("seed = 1\nseeds = [2]", "stress[0].seeds", "not both"),
        ("reference = 'greedy-ratio'", "stress[0].reference", "not an exact method"),
        ("steps = 0", "stress[0].steps", ">= 1"),
        ("name = 'a b'", "stress[0].name", "file stem"),
    ],
)
def test_bad_stress_keys_are_rejected_with_their_key_path(tmp_path, extra, where, reason):
    with pytest.raises(InputError) as exc:
        load_suite(_suite(tmp_path, GOOD + extra + "\n"))
    assert exc.value.where == where and reason in exc.value.reason


@pytest.mark.parametrize(
    ("entry", "where", "reason"),
    [
        ("method = 'nosuch'\nfamily = 'uniform'\nbudget = 1", "stress[0].method", "unknown method"),
        ("method = 'greedy-ratio'\nfamily = 'nosuch'\nbudget = 1", "stress[0].family", "unknown family"),
        ("method = 'greedy-ratio'\nfamily = 'uniform'", "stress[0].budget", "missing"),
        ("method = 'greedy-ratio'\nfamily = 'uniform'\nbudget = 0", "stress[0].budget", "must be > 0"),
        ("method = 'greedy-ratio'\nfamily = 'uniform'\nbudget = 1\nparams = { foo = 1 }", "stress[0].params.foo", ""),
        ("method = 'greedy-ratio'\nfamily = 'uniform'\nbudget = 1\nparams = { K = 0 }", "stress[0].params.K", ">= 1"),
        ("method = 'greedy-ratio'\nfamily = 'uniform'\nbudget = 1\nparams = { K = 2 }", "stress[0].method", "K = 1"),
    ],
)
def test_bad_stress_entries_are_rejected(tmp_path, entry, where, reason):
    with pytest.raises(InputError) as exc:
        load_suite(_suite(tmp_path, "[[stress]]\n" + entry + "\n"))
    assert exc.value.where == where and reason in exc.value.reason


def test_two_identical_searches_and_a_non_table_are_rejected(tmp_path):
    with pytest.raises(InputError) as exc:
        load_suite(_suite(tmp_path, GOOD + "name = 'a'\n" + GOOD + "name = 'b'\n"))
    assert exc.value.where == "stress[1]" and "listed twice" in exc.value.reason
    (tmp_path / "s2.toml").write_text("stress = 3\n" + HEAD)
    with pytest.raises(InputError) as exc:
        load_suite(tmp_path / "s2.toml")
    assert exc.value.where == "stress"


def test_valid_entry_defaults(tmp_path):
    suite = load_suite(_suite(tmp_path, GOOD + "seeds = [3, 4]\nclaim = 0.5\nclaim_source = 'paper'\n"))
    (e,) = suite.stress
    assert (e.method, e.family, e.budget, e.seeds, e.reference, e.steps) == (
        "greedy-ratio",
        "uniform",
        1.0,
        (3, 4),
        "bruteforce",
        200,
    )
    assert e.name == "greedy-ratio-uniform-k1-e4-l1-n1" and e.slug(3) == f"{e.name}-s3"
    assert e.unit_id(3) != e.unit_id(4)


def test_stress_entries_run_through_the_runner_and_resume(tmp_path):
    # test-only methods (tests/helpers_faulty_methods.py): one raises, one kills its own process
    crash = """
[[stress]]
name = "raise"
method = "test-raise"
family = "uniform"
budget = 0.5
[[stress]]
name = "crash"
method = "test-crash"
family = "uniform"
budget = 0.5
"""
    head = HEAD.replace('name = "t"', 'name = "t"\nplugins = ["helpers_faulty_methods"]')
    (tmp_path / "suite.toml").write_text(head + GOOD + "name = 'g'\nsteps = 30\n" + crash)
    suite = load_suite(tmp_path / "suite.toml")
    out = tmp_path / "out"
    run_suite(suite, out, jobs=2, progress=False)
    write_report(out / "results.parquet", out / "report")
    # searches are tasks: rows of kind "stress" in the one store and table
    recs = [r for r in ResultStore(out / "results.jsonl").records() if r["kind"] == "stress"]
    assert sorted(r["stress_name"] for r in recs) == ["crash", "g", "raise"]
    # failing searches are recorded with their error and the suite goes on
    raised = next(r for r in recs if r["stress_name"] == "raise")
    assert raised["status"] == "error" and "deliberate failure" in raised["error"]
    crashed = next(r for r in recs if r["stress_name"] == "crash")
    assert crashed["status"] == "error" and "died (exit code -9)" in crashed["error"]
    rec = next(r for r in recs if r["stress_name"] == "g")
    assert rec["status"] == "feasible" and rec["evaluations"] > 0 and rec["instance_file"] == "stress/g-s0.json.gz"
    inst = load_instance(out / rec["instance_file"])
    assert inst.meta["stress"]["worst_ratio"] == rec["worst_ratio"]
    ratio = run_method(inst, "greedy-ratio").gain / run_method(inst, "bruteforce").gain
    assert ratio == pytest.approx(rec["worst_ratio"], rel=1e-9)
    assert inst.content_hash == rec["instance_hash"] and (inst.K, inst.N) == (1, 1)
    table = pd.read_csv(out / "results.csv")
    assert table.loc[table["kind"] == "stress", "stress_name"].tolist() == ["g", "raise", "crash"]  # suite order
    md = (out / "report" / "report.md").read_text()
    assert "## Stress searches" in md and "stress/g-s0.json.gz" in md
    assert (out / "report" / "stress-searches.csv").exists()

    # resume: nothing runs again, nothing is duplicated
    run_suite(suite, out, jobs=2, progress=False, resume=True)
    again = [r for r in ResultStore(out / "results.jsonl").records() if r["kind"] == "stress"]
    assert [r["task_id"] for r in again] == [r["task_id"] for r in recs]
    assert [r["finished_at"] for r in again] == [r["finished_at"] for r in recs]


def _stress(method, ratio, *, guarantee=None, applies=None, claim=None, n=1, file="stress/x.json.gz", evals=100):
    return {
        "task_id": f"{method}-{ratio}-{claim}",
        "kind": "stress",
        "stress_name": "x",
        "method": method,
        "family": "uniform",
        "stress_params": '{"K": 1, "servers": ' + str(n) + "}",
        "budget": 1.0,
        "seed": 0,
        "reference": "bruteforce",
        "status": "feasible",
        "worst_ratio": ratio,
        "gain_method": 10.0 * ratio,
        "gain_optimum": 10.0,
        "evaluations": evals,
        "restarts": 2,
        "guarantee_ratio": guarantee,
        "guarantee_source": "test theorem" if guarantee else None,
        "guarantee_conditions": "K = 1" if guarantee else None,
        "guarantee_applies": applies,
        "claim": claim,
        "claim_source": "paper" if claim else None,
        "claim_conditions": "K = 1; one knapsack per server" if claim else None,
        "K": 1,
        "N": n,
        "L": 1,
        "equal_sizes": False,
        "instance": "stress-x",
        "instance_file": file,
    }


def _runs() -> pd.DataFrame:
    # i1 (K = 1): optimum 10, h (declared 1 - 1/e when K = 1) gains 9, g (nothing declared) gains 8
    # i2 (K = 2): h gains 2 against 10, but no claim applies at K = 2
    rows = [
        _row("i1", "ex", "optimal", 10.0, kind="exact", bound=10.0),
        _row("i1", "h", "feasible", 9.0, guarantee=E),
        _row("i1", "g", "feasible", 8.0),
        _row("i2", "ex", "optimal", 10.0, K=2, kind="exact", bound=10.0),
        _row("i2", "h", "feasible", 2.0, K=2, guarantee=E),
        _row("i2", "g", "feasible", 2.0, K=2),
    ]
    return tables.score(pd.DataFrame(rows))


def test_claims_hold_verdict_with_values():
    stress = [_stress("h", 0.8, guarantee=E, applies=True, evals=120)]
    claims, viol = claims_table(_runs(), stress)
    assert viol.empty
    (row,) = claims.to_dict("records")
    assert (row["method"], row["claim"], row["declared"]) == ("h", E, True)
    assert (row["runs"], row["runs_worst"]) == (1, pytest.approx(0.9))  # i2 is K = 2: not counted
    assert (row["stress_searches"], row["stress_evaluations"], row["stress_worst"]) == (1, 120, 0.8)
    assert row["verdict"] == "holds on 1 runs and 120 stress evaluations"
    secs = guarantee_report_sections(_runs(), stress)
    assert [s.slug for s in secs] == ["guarantee-claims", "stress-searches", "claim-violations"]
    assert secs[0].rows[0][-1] == "holds on 1 runs and 120 stress evaluations"
    assert secs[0].rows[0][4] == "0.900 (n=1)" and secs[1].rows[0][7] == "0.800"  # ratios: 3 decimals
    assert secs[2].rows == [] and secs[2].empty.startswith("None")


def test_violations_of_declared_and_suite_claims_are_listed():
    stress = [
        _stress("h", 0.5, guarantee=E, applies=True, file="stress/h-s0.json.gz"),
        # a search where the declared guarantee does not apply (two servers): no violation of it
        _stress("h", 0.3, guarantee=E, applies=False, n=2, file="stress/h2-s0.json.gz"),
        # the suite's claim for g (not declared by g): 0.9 with one knapsack per server
        _stress("g", 0.95, claim=0.9, n=2, file="stress/g-s0.json.gz"),
    ]
    claims, viol = claims_table(_runs(), stress)
    by = {(r["method"], r["declared"]): r for r in claims.to_dict("records")}
    assert by[("h", True)]["verdict"] == "VIOLATED: ratio 0.5000 on stress/h-s0.json.gz"
    assert by[("h", True)]["stress_searches"] == 1
    # g's run on i1 (ratio 0.8) is below the claim 0.9; the stress result (0.95) is not
    g = by[("g", False)]
    assert (g["runs"], g["runs_worst"], g["stress_worst"], g["violations"]) == (1, pytest.approx(0.8), 0.95, 1)
    assert g["verdict"] == "VIOLATED: ratio 0.8000 on i1"  # no results folder: no file to cite
    got = sorted(zip(viol["what"], viol["method"], viol["gain_ratio"].round(4)))
    assert got == [("run", "g", 0.8), ("stress", "h", 0.5)]
    assert viol.loc[viol["what"] == "stress", "instance_file"].item() == "stress/h-s0.json.gz"
    secs = guarantee_report_sections(_runs(), stress)
    vsec = secs[-1]
    assert vsec.slug == "claim-violations" and len(vsec.rows) == 2
    stress_row = next(r for r in vsec.rows if r[0] == "stress")
    assert stress_row[1:5] == ["h", "0.632 (test theorem)", "stress-x", "0.500"]
    assert stress_row[-1] == "stress/h-s0.json.gz"


def test_runs_below_a_claim_get_their_instance_written_and_the_report_regenerates_from_a_copy(tmp_path):
    # the suite claims ratio 1 for popularity (a claim it does not declare): its suboptimal runs violate it
    (tmp_path / "suite").mkdir()
    suite_path = tmp_path / "suite" / "suite.toml"
    suite_path.write_text(
        HEAD.replace(
            "params = { K = 1, layers = 1, experts = 4, servers = 1, tokens = 0, inter_jitter = 0.5 }",
            "params = { K = 1, layers = 2, experts = 6, servers = 2, tokens = 0, inter_jitter = 0.5 }\n"
            "seeds = [0, 1, 2, 3]",
        ).replace('name = "greedy-ratio"', 'name = "popularity"')
        + '[[stress]]\nmethod = "popularity"\nfamily = "uniform"\nbudget = 0.3\nsteps = 2\n'
        + 'claim = 1.0\nclaim_source = "a test"\n'
    )
    out = tmp_path / "out"
    run_suite(load_suite(suite_path), out, jobs=2, progress=False)
    manifest = json.loads((out / "artifacts.json").read_text())
    cited = [e for e in manifest["instances"] if e["why"] == "below a claim"]
    df = pd.read_parquet(out / "results.parquet")
    runs = df[(df["kind"] == "method") & (df["method"] == "popularity")]
    opt = df[df["method"] == "bruteforce"].set_index("instance")["gain"]
    below = {r.instance for r in runs.itertuples() if r.gain < opt[r.instance] - 1e-9 * max(1.0, r.empty_latency)}
    assert below and {e["instance"] for e in cited} == below
    for e in cited:  # each file reproduces the run's instance
        assert load_instance(out / e["file"]).content_hash == e["instance_hash"]
    assert any(e["why"] == "stress worst case" for e in manifest["instances"])
    write_report(out / "results.parquet", out / "report", formats=("csv",))
    # the report is a function of the folder: a copy, without the suite file, gives the same report
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("report", "results.jsonl"))
    shutil.rmtree(tmp_path / "suite")
    write_report(copy / "results.parquet", copy / "report", formats=("csv",))
    viol = pd.read_csv(copy / "report" / "claim-violations.csv")
    assert set(viol.loc[viol["what"] == "run", "instance_file"]) == {e["file"] for e in cited}
    for name in ("claim-violations.csv", "guarantee-claims.csv", "summary.csv", "ratios.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / "report" / name), pd.read_csv(copy / "report" / name))
