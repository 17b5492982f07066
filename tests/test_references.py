"""References beyond doubt (issue 12): consistency checks, evidence, `references check`, safe names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moebench.bench.reference_check import check_folder
from moebench.bench.references import (
    Reference,
    check_names,
    read_references,
    reconcile,
    write_references,
)
from moebench.cli import main
from moebench.errors import InputError
from moebench.families import generate
from moebench.harness import run_method
from moebench.instance_file import save_instance
from moebench.placement import placement_hash, to_triples

ROOT = Path(__file__).resolve().parents[1]


def _row(method: str, status: str, gain: float, bound: float | None, kind: str = "exact", **kw: object) -> dict:
    row = {
        "instance": "a",
        "instance_hash": "ha",
        "method": method,
        "method_kind": kind,
        "status": status,
        "gain": gain,
        "latency": 100.0 - gain,
        "bound": bound,
        "feasible": True,
        "empty_latency": 100.0,
    }
    row.update(kw)
    return row


def test_bound_below_any_placement_is_refuted_naming_method_and_numbers() -> None:
    rows = [
        _row("cpsat", "time-limit", 0.0, 1.25e-07),
        _row("sgd-levels[dp]", "feasible", 92.3, None, kind="heuristic"),
        _row("milp-highs", "time-limit", 90.0, 95.0),
    ]
    res = reconcile({}, rows)
    ref = res.refs[("a", "ha")]
    assert (ref.gain, ref.proven, ref.bound, ref.bound_method) == (90.0, False, 95.0, "milp-highs")
    (p,) = res.problems
    assert p.kind == "bound below placement" and p.method == "cpsat"
    assert "1.25e-07" in p.message and "92.3" in p.message and "sgd-levels[dp]" in p.message
    assert list(res.rejected) == [0]


def test_false_optimum_never_becomes_a_reference() -> None:
    rows = [_row("milp-highs", "optimal", 50.0, 50.0), _row("greedy-ratio", "feasible", 50.1, None, kind="heuristic")]
    res = reconcile({}, rows)
    ref = res.refs[("a", "ha")]
    assert not ref.proven and ref.bound is None  # the beaten claim is gone, bound included
    assert ref.gain == 50.0  # its placement still counts as an exact incumbent
    assert [p.kind for p in res.problems] == ["optimum beaten"] and "50.1" in res.problems[0].message
    # within the claim's tolerance (1e-9 relative) and below its (widened) bound it stands
    ok = reconcile(
        {}, [_row("milp-highs", "optimal", 50.0, 50.0 + 4e-8), _row("g", "feasible", 50.0 + 2e-8, None, "h")]
    )
    assert ok.refs[("a", "ha")].proven and not ok.problems
    # a looser tolerance is a placement and a bound, never =opt=
    loose = reconcile({}, [_row("milp-highs", "optimal", 50.0, 50.004, tolerance=1e-4)])
    assert not loose.refs[("a", "ha")].proven and loose.refs[("a", "ha")].bound == 50.004


def test_reference_file_claims_are_checked_too() -> None:
    old = {("a", "ha"): Reference("a", "ha", 10.0, 90.0, True, 10.0, "cpsat", "cpsat")}
    res = reconcile(old, [_row("popularity", "feasible", 12.0, None, kind="baseline")])
    assert not res.refs[("a", "ha")].proven and res.problems[0].kind == "optimum beaten"
    old = {("a", "ha"): Reference("a", "ha", 10.0, 90.0, False, 11.0, "cpsat", "cpsat")}
    res = reconcile(old, [_row("popularity", "feasible", 12.0, None, kind="baseline")])
    assert res.refs[("a", "ha")].bound is None and res.problems[0].kind == "bound below placement"


def test_evidence_round_trip(tmp_path: Path) -> None:
    triples = [[0, 0, 1], [1, 0, 2]]
    rows = [_row("milp-highs", "optimal", 5.0, 5.0, placement=json.dumps(triples))]
    res = reconcile({}, rows)
    path = tmp_path / "references.solu"
    write_references(path, res.refs, res.placements)
    ref = read_references(path)[("a", "ha")]
    assert ref.placement == placement_hash("ha", triples)
    doc = json.loads((tmp_path / "reference-placements" / f"{ref.placement}.json").read_text())
    assert doc["placement"] == triples and doc["instance_hash"] == "ha"
    assert placement_hash("ha", triples[::-1]) == ref.placement  # order does not matter
    assert placement_hash("hb", triples) != ref.placement  # the instance does


@pytest.mark.parametrize("name", ["a b", "a\nb", "a\n=opt= b 1e9 hash=x", "#x", "a/b", "x" * 201, "ok\n"])
def test_names_that_could_break_a_line_file_are_refused(tmp_path: Path, name: str) -> None:
    refs = {(name, "h"): Reference(name, "h", 1.0, 2.0, True, 1.0, "m", "m")}
    path = tmp_path / "r.solu"
    with pytest.raises(InputError, match="not allowed"):
        write_references(path, refs)
    assert not path.exists()
    with pytest.raises(InputError):
        check_names([name])


def test_unparsable_lines_name_the_line_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "r.solu"
    good = "=opt= a 1.0 hash=h method=m\n"
    for bad, reason in (
        ("=opt= a b 1.0 hash=h\n", "not a number"),
        ("=opt= a 1.0 hash=h stray\n", "key=value"),
        ("=best= a nan hash=h\n", "not finite"),
        ("=opt= a 1.0 method=m\n", "missing hash"),
        ("=opt= a 1.0 hash=h placement=xyz\n", "not a placement hash"),
        ("=opt= (a) 1.0 hash=h\n", "name rule"),
    ):
        path.write_text(good + bad)
        with pytest.raises(InputError) as err:
            read_references(path)
        assert "line 2" in str(err.value) and reason in str(err.value), str(err.value)


def test_suite_with_a_bad_instance_name_exits_2_before_any_work(tmp_path: Path, capsys) -> None:
    for bad in ("a b", "a\\nb"):
        suite = tmp_path / "suite.toml"
        suite.write_text(
            f'[suite]\nname = "s"\n[[instances]]\nfamily = "uniform"\nname = "{bad}"\n'
            'params = { K = 1, layers = 1, experts = 4, servers = 1 }\n[[methods]]\nname = "popularity"\n'
        )
        code = main(["run", str(suite), "--out", str(tmp_path / "out"), "-q", "--no-report"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "invalid instance name" in err, err
        assert not (tmp_path / "out" / "results.jsonl").exists()


def test_rejected_bound_never_reaches_the_reference_file(tmp_path: Path, capsys) -> None:
    # a suite whose only references are a 2 s exact run with a bogus bound and a false optimum
    suite = tmp_path / "suite.toml"
    suite.write_text(
        '[suite]\nname = "s"\ntime_limit = 2.0\ngrace = 2.0\nplugins = ["helpers_faulty_methods"]\n'
        '[[instances]]\nfamily = "clustered"\nparams = { K = 2, layers = 2, experts = 8, servers = 2, tokens = 200 }\n'
        '[[references]]\nname = "test-bad-bound"\n[[references]]\nname = "test-false-optimal"\n'
        '[[methods]]\nname = "popularity"\n[[methods]]\nname = "whole-layer"\n'
    )
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "-q", "--no-report", "-j", "1"]) == 0
    err = capsys.readouterr().err
    assert "reference rejected" in err and "1.25e-07" in err and "test-false-optimal" in err
    df = pd.read_parquet(out / "results.parquet")
    best = df.loc[df.method_kind != "exact", "gain"].max()
    assert best > 0
    refs = read_references(out / "references.solu")
    assert all(r.bound is None or r.bound >= best for r in refs.values())
    assert not any(r.proven for r in refs.values())
    bad = df[df.method.isin(["test-bad-bound", "test-false-optimal"])]
    assert set(bad.status) == {"error"} and bad.error.str.startswith("refuted: ").all()


def _folder_with_reference(tmp_path: Path) -> Path:
    inst = generate("uniform", {"K": 1, "layers": 1, "experts": 5, "servers": 1, "tokens": 0}, seed=0)
    save_instance(inst, tmp_path / "i.json.gz")
    rec = run_method(inst, "bruteforce")
    row = {**rec.to_dict(), "method_kind": "exact", "placement": json.dumps(rec.placement)}
    res = reconcile({}, [row])
    write_references(tmp_path / "references.solu", res.refs, res.placements)
    return tmp_path


def test_check_command_clean_and_each_inconsistency(tmp_path: Path, capsys) -> None:
    folder = _folder_with_reference(tmp_path / "ok")
    assert main(["references", "check", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "consistent" in out
    solu = folder / "references.solu"
    text = solu.read_text()
    ref = next(iter(read_references(solu).values()))
    # a value its placement does not give
    solu.write_text(text.replace(repr(ref.gain), repr(ref.gain + 1e-3)))
    assert main(["references", "check", str(folder)]) == 1
    assert "value not reproduced" in capsys.readouterr().out
    # a missing placement file
    solu.write_text(text)
    shutil.move(folder / "reference-placements", folder / "moved")
    assert main(["references", "check", str(folder)]) == 1
    assert "no evidence" in capsys.readouterr().out
    shutil.move(folder / "moved", folder / "reference-placements")
    # a bound below the value (written as =best= + =bound=)
    solu.write_text(text.replace("=opt=", "=best=") + f"=bound= {ref.name} {ref.gain / 2!r} hash={ref.hash} method=x\n")
    assert main(["references", "check", str(folder)]) == 1
    assert "below" in capsys.readouterr().out
    assert main(["references", "check", str(tmp_path / "nowhere")]) == 2


@pytest.mark.parametrize(
    "folder", sorted(str(p.parent.relative_to(ROOT)) for p in (ROOT / "reports").glob("*/references.solu"))
)
def test_committed_reports_pass_the_check(folder: str) -> None:
    res = check_folder(ROOT / folder)
    assert not res.problems, [str(p) for p in res.problems[:5]]
    assert res.references > 0 and res.placements >= res.references


def test_committed_library_passes_the_check() -> None:
    res = check_folder(ROOT / "instances")
    assert not res.problems, [str(p) for p in res.problems[:5]]
    assert res.references >= 10


def test_placement_hash_matches_to_triples_of_a_real_run() -> None:
    inst = generate("zipf", {"K": 2, "layers": 2, "experts": 6, "servers": 2, "tokens": 100}, seed=1)
    rec = run_method(inst, "popularity")
    x = np.zeros((inst.N, inst.G), bool)
    for n, layer, e in rec.placement:
        x[n, inst.expert_id(layer, e)] = True
    assert placement_hash(inst.content_hash, to_triples(inst, x)) == placement_hash(inst.content_hash, rec.placement)


def test_report_lists_a_refuted_claim_as_an_error_row() -> None:
    from moebench.report.tables import attach_references

    df = pd.DataFrame(
        [
            _row("milp-highs", "optimal", 50.0, 50.0, error=None),
            _row("greedy-ratio", "feasible", 50.1, None, kind="heuristic", error=None),
        ]
    )
    out = attach_references(df)
    assert list(out.status) == ["error", "feasible"] and out.error[0].startswith("refuted: optimal gain 50.0")
    assert not out.ref_proven.any()  # so no gain ratio above 1 against a proven optimum
