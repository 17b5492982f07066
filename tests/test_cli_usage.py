"""Usage errors of ``solve``/``evaluate`` (one line, exit 2, before any work), placements tied to
their instance by content hash, and instance names (issues 15 and 12)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hostile_inputs import GOOD

from moebench.cli import main
from moebench.families import families, generate, get_family, instance_name
from moebench.instance import NAME_PATTERN, check_name, valid_name
from moebench.instance_file import load_instance, save_instance
from moebench.placement import load_placement, placement_to_dict

MISSING = "/nonexistent/instance.json"  # usage errors are found before the instance is read


def one_error_line(capsys) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("moebench: error: ")
    return lines[0].removeprefix("moebench: error: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "popularty"], "method: unknown method 'popularty' (did you mean 'popularity'"),
        (["--method", "greedy-ratio", "--formulation", "cover"], "--formulation: greedy-ratio does not accept"),
        (["--method", "popularity", "--option", "foo=1"], "--option foo: popularity does not accept option 'foo'"),
        (["--method", "milp-highs", "--option", "colour=red"], "--option colour: milp-highs does not accept"),
        (["--method", "milp-highs", "--option", "threads"], "--option: expected key=value, got 'threads'"),
        (["--method", "none", "--time-limit", "-5"], "--time-limit: must be a finite number of seconds > 0, got -5.0"),
        (["--method", "none", "--time-limit", "0"], "--time-limit: must be a finite number of seconds > 0, got 0.0"),
        (["--method", "none", "--time-limit", "inf"], "--time-limit: must be a finite number of seconds > 0, got inf"),
        (["--method", "none", "--time-limit", "nan"], "--time-limit: must be a finite number of seconds > 0, got nan"),
        (["--method", "none", "--time-limit", "soon"], "argument --time-limit: invalid float value: 'soon'"),
        (["--method", "none", "--seed", "-1"], "--seed: must be >= 0, got -1"),
        (["--method", "milp-highs", "--profile", "no-such-profile"], "no-such-profile"),
        (["--method", "milp-highs", "--formulation", "best"], "argument --formulation: invalid choice: 'best'"),
        ([], "the following arguments are required: --method/-m"),
    ],
)
def test_solve_usage_errors_are_one_line_before_loading(args, message, capsys):
    try:
        code = main(["solve", MISSING, *args])
    except SystemExit as exc:  # argparse's own errors exit from the parser
        code = exc.code
    assert code == 2
    line = one_error_line(capsys)
    assert message in line
    assert "file not found" not in line


def test_evaluate_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(GOOD)])
    assert exc.value.code == 2
    assert "the following arguments are required: placement" in one_error_line(capsys)


def test_usage_error_through_the_console_script():
    proc = subprocess.run(
        [sys.executable, "-m", "moebench.cli", "solve", MISSING, "--method", "greedy-ratio", "--formulation", "k1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "greedy-ratio does not accept option 'formulation'" in proc.stderr


def test_accepted_options_still_work(tmp_path, capsys):
    inst = load_instance(GOOD)
    assert main(["solve", str(GOOD), "--method", "bruteforce", "--option", "max_assignments=1000"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["status"] == "optimal" and rec["instance_hash"] == inst.content_hash


# ---- placements carry the instance's content hash ------------------------------------------
@pytest.fixture()
def two_instances(tmp_path):
    """Two instances of the same shape that differ only in a capacity (same family and seed)."""
    params = {"layers": 2, "experts": 6, "servers": 2, "tokens": 300}
    a = generate("zipf", params, seed=0)
    b = generate("zipf", {**params, "capacity": 0.05}, seed=0)
    assert (a.N, a.G, a.M) == (b.N, b.G, b.M) and a.content_hash != b.content_hash
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    save_instance(a, pa)
    save_instance(b, pb)
    return a, b, pa, pb


def test_placement_for_another_instance_is_refused(two_instances, tmp_path, capsys):
    a, b, pa, pb = two_instances
    placement = tmp_path / "pa.json"
    assert main(["solve", str(pa), "--method", "popularity", "-o", str(placement)]) == 0
    capsys.readouterr()
    doc = json.loads(placement.read_text())
    assert doc["instance_hash"] == a.content_hash and doc["instance"] == a.name
    assert main(["evaluate", str(pa), str(placement)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(pb), str(placement)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"{placement}: instance_hash: the placement was made for another instance")
    assert a.content_hash[:12] in line and b.content_hash[:12] in line


def test_placement_without_hash_needs_the_name_and_warns(two_instances, tmp_path, capsys):
    a, _, pa, pb = two_instances
    old = tmp_path / "old.json"
    doc = placement_to_dict(a, np.zeros((a.N, a.G), bool))
    del doc["instance_hash"]
    old.write_text(json.dumps(doc))
    assert main(["evaluate", str(pa), str(old)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["feasible"] is True
    assert (
        err
        == f"moebench: warning: {old}: no instance_hash (a placement written before moebench recorded it): only the instance name was checked\n"
    )
    assert main(["evaluate", str(pb), str(old)]) == 2  # different name, no hash: refused
    assert one_error_line(capsys).startswith(f"{old}: instance: the placement was made for")
    del doc["instance"]
    old.write_text(json.dumps(doc))
    assert main(["evaluate", str(pa), str(old)]) == 2
    assert "cannot tell which instance" in one_error_line(capsys)


def test_placement_hash_must_be_a_hash(two_instances, tmp_path):
    a, _, _, _ = two_instances
    path = tmp_path / "p.json"
    for bad in (1, "abc", a.content_hash.upper(), None, True):
        path.write_text(json.dumps({"format": "moebench-placement/1", "instance_hash": bad, "placement": []}))
        with pytest.raises(Exception, match="instance_hash: expected a SHA-256 content hash"):
            load_placement(a, path, warn=lambda m: None)


# ---- instance names ------------------------------------------------------------------------
def test_name_pattern_is_the_documented_one():
    schema = json.loads((Path(__file__).parents[1] / "moebench/schema/instance.schema.json").read_text())
    assert schema["properties"]["name"]["pattern"] == NAME_PATTERN
    spec = (Path(__file__).parents[1] / "docs" / "SPEC.md").read_text()
    assert NAME_PATTERN in spec
    for good in ("a", "zipf-L3-E16-K2-N3-s0-capacity=0.05", "x" * 200, "a[1](2)@h%:+,=.-_"):
        assert valid_name(good)
    for bad in ("", "a b", "a\n", "x\n=opt= y 1", "-a", ".a", "x" * 201, "a/b", 'a"b', "é", "a\tb", None, 3):
        assert not valid_name(bad)
        with pytest.raises(Exception, match="invalid instance name"):
            check_name(bad)


def test_committed_instances_and_manifest_names_conform():
    ROOT = Path(__file__).resolve().parents[1] / "instances"
    files = sorted(ROOT.glob("*.json.gz"))
    assert files
    for f in files:
        assert valid_name(load_instance(f).name), f
    manifest = tomllib.loads((ROOT / "manifest.toml").read_text())
    for entry in manifest["instance"]:
        assert valid_name(entry["name"]), entry["name"]


GENERATED = [f.name for f in families() if f.kind == "generated"]


@pytest.mark.parametrize("family", GENERATED)
def test_generated_names_conform_and_differ_with_every_parameter(family):
    fam = get_family(family)
    small = {"layers": 1, "experts": 6, "tokens": 50}
    base = generate(family, small, seed=0)
    assert valid_name(base.name)
    seen = {base.name: base.content_hash}
    changes = {"capacity": 0.05, "alpha": 2.0, "inter_jitter": 0.3, "link_rate": "10,20,30", "delay_max": 9.5}
    changes.update({"cloud_delay": 3.0, "capacity_weights": "1,2,3", "bytes_weight": 0.5, "coherence": 0.5})
    for key, value in changes.items():
        if key not in {p.name for p in fam.params}:
            continue
        inst = generate(family, {**small, key: value}, seed=0)
        assert valid_name(inst.name), inst.name
        assert inst.name not in seen, f"{key}: {inst.name} already names another instance"
        seen[inst.name] = inst.content_hash
    # the same parameter given at its default keeps the plain name
    assert generate(family, {**small, "capacity": 0.25}, seed=0).name == base.name


def test_issue_example_capacity_gets_its_own_name():
    a = generate("zipf", {"layers": 3}, seed=0)
    b = generate("zipf", {"layers": 3, "capacity": 0.05}, seed=0)
    assert a.name == "zipf-L3-E16-K2-N3-s0"
    assert b.name == "zipf-L3-E16-K2-N3-s0-capacity=0.05"


def test_long_parameter_lists_fall_back_to_a_hash():
    fam = get_family("zipf")
    many = fam.resolve({"link_rate": ",".join(["12.345678"] * 30), "capacity": 0.1})
    name = instance_name(fam, "zipf-L4-E16-K2-N3-s0", many)
    assert re.fullmatch(r"zipf-L4-E16-K2-N3-s0-p[0-9a-f]{12}", name)
    other = instance_name(fam, "zipf-L4-E16-K2-N3-s0", {**many, "capacity": 0.2})
    assert other != name and valid_name(other)


SMALL_MODEL_DERIVED = {
    "deepseek-v2-lite-esft": {"layers": 1, "tokens": 100},
    "olmoe-counts": {"layers": 1, "tokens": 100},
    "mixtral-counts": {"layers": 1},
    "catalog-surrogate": {"layers": 1, "tokens": 100},
}


#: families that read a user's file: their names are tested in tests/test_user_traces.py
FILE_BASED = {"trace", "counts-surrogate"}


def test_every_family_is_covered_by_a_name_test():
    assert {f.name for f in families()} == set(GENERATED) | set(SMALL_MODEL_DERIVED) | FILE_BASED


@pytest.mark.parametrize("family", sorted(SMALL_MODEL_DERIVED))
def test_model_derived_names_conform_and_differ(family):
    """Model-derived families: default and changed parameters."""
    small = SMALL_MODEL_DERIVED[family]
    a = generate(family, small)  # the routing data ships with moebench
    b = generate(family, {**small, "cloud_delay": 10.0})
    c = generate(family, {**small, "capacity": 0.5})
    assert all(valid_name(i.name) for i in (a, b, c))
    assert len({a.name, b.name, c.name}) == 3
    assert a.name == generate(family, {**small, "capacity": 0.25}).name  # the default, given explicitly


def test_file_name_is_checked_when_it_gives_the_name(tmp_path, capsys):
    doc = json.loads(GOOD.read_text())
    del doc["name"]
    ok = tmp_path / "fine-name.json"
    ok.write_text(json.dumps(doc))
    assert load_instance(ok).name == "fine-name"
    bad = tmp_path / "two words.json"
    bad.write_text(json.dumps(doc))
    assert main(["instances", "show", str(bad)]) == 2
    assert 'name: the file name "two words" is not a valid instance name' in one_error_line(capsys)
