"""Solver profiles (solvers/*.toml) and option handling of the exact back ends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_exact_differential import tiny_instance

from moebench.errors import InputError
from moebench.exact.profiles import SOLVERS_DIR, known_profiles, load_profile
from moebench.harness import run_method


def test_shipped_profiles() -> None:
    assert {"highs-default", "highs-reference", "cpsat-2core"} <= set(known_profiles())
    ref = load_profile("highs-reference")
    assert ref.backend == "highs" and ref.options["mip_rel_gap"] == 0.0
    cp = load_profile("cpsat-2core", backend="cpsat")
    assert cp.options["threads"] == 2 and cp.solver["linearization_level"] == 2
    assert Path(ref.path).parent == SOLVERS_DIR


def test_unknown_profile_names_known_ones() -> None:
    with pytest.raises(InputError) as err:
        load_profile("nope")
    assert "highs-reference" in str(err.value) and "cpsat-2core" in str(err.value)


def test_profile_for_other_backend_is_rejected() -> None:
    with pytest.raises(InputError, match="back end"):
        load_profile("cpsat-2core", backend="highs")


def test_profile_from_path_and_bad_keys(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text('backend = "highs"\n[options]\nthreads = 1\nmip_rel_gap = 0.01\n[solver]\npresolve = "off"\n')
    p = load_profile(str(good))
    assert p.name == "mine" and p.options["mip_rel_gap"] == 0.01 and p.solver == {"presolve": "off"}
    bad = tmp_path / "bad.toml"
    bad.write_text('backend = "highs"\n[options]\nthreadz = 1\n')
    with pytest.raises(InputError, match="threadz"):
        load_profile(str(bad))


def test_options_recorded_and_override_profile() -> None:
    inst = tiny_instance(np.random.default_rng(11), K=2, N=2)
    rec = run_method(inst, "milp-highs", seed=3, options={"profile": "highs-default", "threads": 1})
    assert rec.status == "optimal"
    o = rec.options
    assert o["profile"] == "highs-default" and o["threads"] == 1 and o["mip_rel_gap"] == 1e-4 and o["seed"] == 3
    assert o["formulation"] == "cover"
    assert rec.solver == "highs" and rec.solver_version
    rec = run_method(inst, "cpsat", options={"threads": 1})
    assert rec.options["cpsat_parameters"]["linearization_level"] == 2
    assert rec.options["cpsat_parameters"]["num_workers"] == 1


def test_bad_options_are_errors() -> None:
    inst = tiny_instance(np.random.default_rng(12), K=1, N=1)
    rec = run_method(inst, "milp-highs", options={"profile": "nope"})
    assert rec.status == "error" and "known" in rec.error
    rec = run_method(inst, "milp-highs", options={"formulation": "bogus"})
    assert rec.status == "error" and "bogus" in rec.error
    rec = run_method(inst, "cpsat", options={"solver": "highs"})
    assert rec.status == "error"  # cpsat takes no 'solver' option
    rec = run_method(inst, "milp-highs", options={"threads": "zero"})
    assert rec.status == "error"


def test_highs_default_profile_solves_from_the_command_line():
    """2 threads after the strengthening's LP started HiGHS's pool with 1 (status was 'error', 'Not Set')."""
    import json
    import subprocess
    import sys

    inst = Path(__file__).resolve().parents[1] / "instances" / "zipf-k3-small.json.gz"
    cmd = [sys.executable, "-m", "moebench.cli", "solve", str(inst), "-m", "milp-highs", "--profile", "highs-default"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["status"] == "optimal"
