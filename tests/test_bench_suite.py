"""Suite files: validation with file + key path + reason, grids, names, reference reuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench_helpers import write_suite

from moebench.bench.suite import load_suite
from moebench.errors import InputError
from moebench.families import generate
from moebench.instance_file import save_instance


def _load(tmp_path: Path, text: str):
    p = tmp_path / "s.toml"
    p.write_text(text)
    return load_suite(p)


GOOD = """
[[instances]]
family = "uniform"
params = { layers = 2, experts = 4, tokens = 50 }
[[methods]]
name = "none"
"""


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("[suite]\ntimelimit = 3\n" + GOOD, "suite.timelimit", "unknown key"),
        ("[suite]\ntime_limit = -1\n" + GOOD, "suite.time_limit", "must be > 0"),
        ("[suite]\nrepetitions = 1.5\n" + GOOD, "suite.repetitions", "expected an integer"),
        ('[[methods]]\nname = "none"\n', "instances", "missing"),
        (GOOD.replace("family", "famly"), "instances[0].famly", "unknown key"),
        (GOOD.replace('"uniform"', '"nope"'), "instances[0].family", "unknown family"),
        (GOOD.replace("layers = 2", "layers = 2, colour = 1"), "instances[0].params.colour", "unknown key"),
        (GOOD.replace("layers = 2", 'layers = "two"'), "instances[0].params.layers", "expects int"),
        (GOOD.replace("tokens = 50 }", "tokens = 50 }\ngrid = { K = 2 }"), "instances[0].grid.K", "non-empty list"),
        (GOOD.replace("tokens = 50 }", "tokens = 50 }\ngrid = { K = [0] }"), "instances[0].grid.K", "K must be"),
        (GOOD.replace('name = "none"', 'name = "sgd-levels[dp"'), "methods[0].name", "malformed"),
        (GOOD.replace('name = "none"', 'name = "none[3]"'), "methods[0].name", "no bracket arguments"),
        (GOOD.replace('name = "none"', 'name = "none"\noptions = 3'), "methods[0].options", "table"),
        (GOOD + '[[methods]]\nname = "none"\n', "methods[1]", "listed twice"),
        (GOOD.replace("[[instances]]\nfamily", '[[instances]]\nfiles = ["nothing-*.json"]\n#'), None, None),
        ("[suite\n" + GOOD, None, "not valid TOML"),
    ],
)
def test_bad_suites_name_file_key_and_reason(tmp_path: Path, text: str, where: str | None, reason: str | None) -> None:
    with pytest.raises(InputError) as info:
        _load(tmp_path, text).instances()
    err = info.value
    assert err.file == str(tmp_path / "s.toml")
    if where is not None:
        assert err.where == where
    if reason is not None:
        assert reason in err.reason


def test_glob_without_match_names_the_entry(tmp_path: Path) -> None:
    suite = _load(tmp_path, '[[instances]]\nfiles = ["nothing-*.json"]\n[[methods]]\nname = "none"\n')
    with pytest.raises(InputError, match="no file matches") as info:
        suite.instances()
    assert info.value.where == "instances[0].files[0]"


def test_grid_seeds_files_and_names(tmp_path: Path) -> None:
    inst = generate("zipf", {"layers": 1, "experts": 4, "tokens": 30, "K": 1}, seed=5)
    save_instance(inst, tmp_path / "a.json")
    suite = load_suite(write_suite(tmp_path))
    text = (tmp_path / "suite.toml").read_text() + '\n[[instances]]\nfiles = ["*.json"]\n'
    (tmp_path / "suite.toml").write_text(text)
    suite = load_suite(tmp_path / "suite.toml")
    names = [i.name for i in suite.instances()]
    # 2 K values x 2 capacities + 2 seeds + 1 file; the family names every non-default parameter
    # (tokens=100, capacity=0.5) and the suite adds the non-structural swept one again
    assert names == [
        "uniform-L2-E4-K1-N2-s0-tokens=100-capacity0.25",
        "uniform-L2-E4-K1-N2-s0-tokens=100-capacity=0.5-capacity0.5",
        "uniform-L2-E4-K2-N2-s0-tokens=100-capacity0.25",
        "uniform-L2-E4-K2-N2-s0-tokens=100-capacity=0.5-capacity0.5",
        "clustered-L2-E4-K2-N2-s0-tokens=100",
        "clustered-L2-E4-K2-N2-s1-tokens=100",
        inst.name,
    ]
    by_name = {i.name: i for i in suite.instances()}
    assert by_name["uniform-L2-E4-K2-N2-s0-tokens=100-capacity=0.5-capacity0.5"].K == 2
    assert by_name[inst.name].content_hash == inst.content_hash
    assert [m.name for m in suite.references] == ["bruteforce"]
    assert suite.time_limit == 5.0 and suite.seed == 3


def test_duplicate_instance_names_rejected(tmp_path: Path) -> None:
    text = GOOD + '\n[[instances]]\nfamily = "uniform"\nparams = { layers = 2, experts = 4, tokens = 50 }\n'
    with pytest.raises(InputError, match="two instances are named"):
        _load(tmp_path, text).instances()


def test_profiles_and_filters(tmp_path: Path) -> None:
    text = (
        GOOD
        + "[profiles.fast]\nthreads = 1\nmip_rel_gap = 0.01\n"
        + '[[methods]]\nname = "bruteforce"\nprofile = "fast"\noptions = { threads = 2 }\ninstances = ["zipf-*"]\n'
        + '[[methods]]\nname = "popularity"\nprofile = "highs-default"\ntime_limit = 2\n'
    )
    s = _load(tmp_path, text)
    bf, pop = s.methods[1], s.methods[2]
    assert dict(bf.options) == {"threads": 2, "mip_rel_gap": 0.01}  # entry options win over the profile
    assert not bf.applies_to("uniform-L2") and bf.applies_to("zipf-L2")
    assert dict(pop.options) == {"profile": "highs-default"} and pop.time_limit == 2.0


def test_unknown_method_names_are_warned_not_fatal(tmp_path: Path) -> None:
    s = _load(tmp_path, GOOD + '[[methods]]\nname = "no-such-method[3]"\n[[methods]]\nname = "none+nosuchmod"\n')
    assert s.unknown_methods == ["no-such-method[3]", "none+nosuchmod"]


def test_cli_bad_suite_exits_2_with_one_line(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text("[suite]\nrepetitions = 0\n" + GOOD)
    res = subprocess.run(
        [sys.executable, "-m", "moebench.cli", "run", str(p)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"moebench: error: {p}: suite.repetitions: must be >= 1, got 0"]
