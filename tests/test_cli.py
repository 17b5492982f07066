"""The command line: JSON outputs, exit codes, and the commands of SPEC section 7."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from moebench.cli import main


def run(args, cwd=None):
    return subprocess.run([sys.executable, "-m", "moebench.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture()
def tiny(tmp_path):
    path = tmp_path / "t.json"
    assert (
        main(
            [
                "instances",
                "generate",
                "uniform",
                "-p",
                "K=2",
                "-p",
                "layers=2",
                "-p",
                "experts=4",
                "-p",
                "servers=2",
                "-p",
                "tokens=0",
                "-p",
                "capacity=0.4",
                "--seed",
                "1",
                "-o",
                str(path),
            ]
        )
        == 0
    )
    return path


def test_solve_prints_json_and_writes_placement(tiny, tmp_path):
    out = tmp_path / "p.json"
    proc = run(["solve", str(tiny), "--method", "bruteforce", "-o", str(out)])
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    for key in ("instance", "method", "status", "latency", "gain", "bound", "wall_time", "placement"):
        assert key in rec
    assert rec["status"] == "optimal"
    ev = run(["evaluate", str(tiny), str(out)])
    assert ev.returncode == 0
    doc = json.loads(ev.stdout)
    assert doc["latency"] == pytest.approx(rec["latency"], rel=1e-12)
    assert doc["feasible"] is True and doc["violations"] == []


def test_evaluate_infeasible_exit_1(tiny, tmp_path):
    pl = tmp_path / "all.json"
    triples = [[n, l, e] for n in range(2) for l in range(2) for e in range(4)]
    name = json.loads(tiny.read_text())["name"]
    pl.write_text(json.dumps({"format": "moebench-placement/1", "instance": name, "placement": triples}))
    proc = run(["evaluate", str(tiny), str(pl)])
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["feasible"] is False and len(doc["violations"]) == 2


def test_evaluate_bad_placement_exit_2(tiny, tmp_path):
    pl = tmp_path / "bad.json"
    name = json.loads(tiny.read_text())["name"]
    pl.write_text(json.dumps({"format": "moebench-placement/1", "instance": name, "placement": [[0, 5, 0]]}))
    proc = run(["evaluate", str(tiny), str(pl)])
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err[-1] == f"moebench: error: {pl}: placement[0][1]: layer 5 out of range [0, 2)"
    assert err[0].startswith("moebench: warning: ") and "no instance_hash" in err[0]  # an older file


def test_methods_lists_assumptions_and_guarantees():
    proc = run(["methods", "--json"])
    assert proc.returncode == 0
    names = {m["name"] for m in json.loads(proc.stdout)["methods"]}
    assert {"none", "popularity", "whole-layer", "bruteforce"} <= names


def test_instances_list_and_show(tiny):
    proc = run(["instances", "list", "-v"])
    assert proc.returncode == 0 and "clustered" in proc.stdout and "capacity" in proc.stdout
    show = json.loads(run(["instances", "show", str(tiny)]).stdout)
    assert show["K"] == 2 and show["servers"] == 2 and show["activation_sets"] == 12


def test_unknown_method_and_option_are_clear(tiny):
    proc = run(["solve", str(tiny), "--method", "nope"])
    assert proc.returncode == 2 and proc.stderr.startswith("moebench: error: method: unknown method 'nope'")
    proc = run(["solve", str(tiny), "--method", "popularity", "--option", "foo=1"])
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        proc.stderr == "moebench: error: --option foo: popularity does not accept option 'foo' (it takes no options)\n"
    )
    proc = run(["instances", "generate", "zipf", "-p", "K", "-o", "x.json"])
    assert proc.returncode == 2 and "expected key=value" in proc.stderr


def test_generate_is_reproducible(tmp_path):
    for name in ("a", "b"):
        assert (
            main(["instances", "generate", "zipf", "-p", "K=3", "--seed", "9", "-o", str(tmp_path / f"{name}.json.gz")])
            == 0
        )
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
