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
        + '[[methods]]\nname = "milp-highs"\nprofile = "fast"\noptions = { threads = 2 }\ninstances = ["zipf-*"]\n'
        + '[[methods]]\nname = "milp-pyomo"\nprofile = "highs-default"\ntime_limit = 2\n'
    )
    s = _load(tmp_path, text)
    bf, pop = s.methods[1], s.methods[2]
    assert dict(bf.options) == {"threads": 2, "mip_rel_gap": 0.01}  # entry options win over the profile
    assert not bf.applies_to("uniform-L2") and bf.applies_to("zipf-L2")
    assert dict(pop.options) == {"profile": "highs-default"} and pop.time_limit == 2.0


@pytest.mark.parametrize(
    ("methods", "where", "reason"),
    [
        ('name = "popularty"', "methods[1].name", "unknown method 'popularty' (did you mean 'popularity'?)"),
        ('name = "none+nosuchmod"', "methods[1].name", "unknown method 'none+nosuchmod'"),
        ('name = "popularity"\noptions = { threads = 2 }', "methods[1].options.threads", "does not accept option"),
        ('name = "popularity+ls"\noptions = { max_moves = -1 }', "methods[1].options.max_moves", ">= 0"),
        ('name = "greedy-enum[2]"\noptions = { max_seeds = "many" }', "methods[1].options.max_seeds", "integer"),
        ('name = "milp-highs"\nprofile = "no-such-profile"', "methods[1].options.profile", "unknown solver profile"),
        (
            'name = "milp-highs"\noptions = { formulation = "nope" }',
            "methods[1].options.formulation",
            "unknown formulation",
        ),
        ('name = "cpsat"\noptions = { threads = 0 }', "methods[1].options.threads", "threads must be >= 1"),
        ('name = "milp-pyomo"\noptions = { strengthen = "bogus" }', "methods[1].options.strengthen", "bogus"),
        ('name = "milp-highs"\nprofile = "cpsat-2core"', "methods[1].options.profile", "is for back end 'cpsat'"),
        ('name = "none"\ntime_limit = inf', "methods[1].time_limit", "must be <= 1e+07, got inf"),
    ],
)
def test_method_mistakes_are_rejected_before_anything_runs(tmp_path: Path, methods: str, where: str, reason: str):
    with pytest.raises(InputError) as info:
        _load(tmp_path, GOOD + "[[methods]]\n" + methods + "\n")
    assert info.value.where == where and reason in info.value.reason


@pytest.mark.parametrize(
    ("head", "where", "reason"),
    [
        ("time_limit = inf", "suite.time_limit", "must be <= 1e+07, got inf"),
        ("time_limit = nan", "suite.time_limit", "must be > 0"),
        ("grace = inf", "suite.grace", "must be <= 1e+07"),
        ("memory_limit_mb = 100", "suite.memory_limit_mb", "must be >= 512"),
        ("memory_limit_mb = 9223372036854775807", "suite.memory_limit_mb", "must be <= 1.09951e+12"),
        ("max_tasks = 0", "suite.max_tasks", "must be >= 1"),
    ],
)
def test_limits_must_be_finite_and_meaningful(tmp_path: Path, head: str, where: str, reason: str) -> None:
    with pytest.raises(InputError) as info:
        _load(tmp_path, f"[suite]\n{head}\n" + GOOD)
    assert info.value.where == where and reason in info.value.reason


def test_a_huge_grid_is_rejected_without_being_materialized(tmp_path: Path) -> None:
    caps = ", ".join(str(0.001 * i) for i in range(1000))
    jitters = ", ".join(str(0.0009 * i) for i in range(1000))
    grid = f"grid = {{ capacity = [{caps}], inter_jitter = [{jitters}] }}"
    text = GOOD.replace("tokens = 50 }", "tokens = 50 }\n" + grid)
    with pytest.raises(InputError) as info:
        _load(tmp_path, text)
    assert info.value.where == "suite" and "1000000 tasks exceed the cap of 100000" in info.value.reason
    # an explicit override lets it through the count (the grid points are then checked one by one)
    small = GOOD.replace("tokens = 50 }", "tokens = 50 }\ngrid = { capacity = [0.1, 0.2, 0.3] }")
    with pytest.raises(InputError, match="3 tasks exceed the cap of 2"):
        _load(tmp_path, "[suite]\nmax_tasks = 2\n" + small)
    assert _load(tmp_path, "[suite]\nmax_tasks = 3\n" + small).task_count() == 3


def test_parameter_ranges_are_declared_by_the_family(tmp_path: Path) -> None:
    for params, where, reason in (
        ("layers = 1e9", "instances[0].params.layers", "must be <= 1024, got 1000000000.0"),
        ("layers = 0", "instances[0].params.layers", "must be >= 1, got 0"),
        ("capacity = -0.5", "instances[0].params.capacity", "must be >= 0"),
        ("inter_jitter = 1.0", "instances[0].params.inter_jitter", "must be < 1"),
        ("link_rate = [100.0, 0.0]", "instances[0].params.link_rate", "values must be > 0"),
        ("layers = true", "instances[0].params.layers", "expects int"),
    ):
        with pytest.raises(InputError) as info:
            _load(tmp_path, GOOD.replace("layers = 2", params))
        assert info.value.where == where and reason in info.value.reason, (params, info.value)


def test_cli_bad_suite_exits_2_with_one_line(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text("[suite]\nrepetitions = 0\n" + GOOD)
    res = subprocess.run(
        [sys.executable, "-m", "moebench.cli", "run", str(p)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"moebench: error: {p}: suite.repetitions: must be >= 1, got 0"]


def test_references_cannot_be_written_outside_the_output_folder(tmp_path: Path) -> None:
    from moebench.bench.runner import run_suite

    (tmp_path / "suite").mkdir()
    p = tmp_path / "suite" / "s.toml"
    p.write_text('[suite]\nreferences = "../refs.solu"\n' + GOOD)
    with pytest.raises(InputError) as info:
        run_suite(load_suite(p), tmp_path / "suite", progress=False)
    assert info.value.where == "suite.references" and "outside the output folder" in info.value.reason
    assert not (tmp_path / "refs.solu").exists() and not (tmp_path / "suite" / "results.jsonl").exists()
