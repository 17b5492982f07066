"""The example plugin (examples/plugin): installed with pip into a temporary folder, it adds
a family and a method that the CLI lists and runs.

The package is installed with ``pip install --target`` into a temporary directory that is put
on ``PYTHONPATH`` of the subprocesses only, so the test never changes the environment it runs in.
Entry points are found by :mod:`importlib.metadata` on ``sys.path``, hence through PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moebench.instance_file import load_instance
from moebench.placement import from_triples

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "plugin"


def _pip_install(src: Path, target: Path) -> None:
    """Install ``src`` into ``target``; offline first, then with an isolated build.

    ``--no-build-isolation`` works offline when the environment has a setuptools that can
    build wheels; otherwise pip's isolated build fetches setuptools (as CI's own install does).
    """
    base = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target)]
    errors = []
    for extra in (["--no-build-isolation"], []):
        res = subprocess.run([*base, *extra, str(src)], capture_output=True, text=True, timeout=300)
        if res.returncode == 0:
            return
        errors.append(res.stderr[-2000:])
        shutil.rmtree(target, ignore_errors=True)
    pytest.fail("pip could not install the example plugin:\n" + "\n---\n".join(errors))


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    shutil.copytree(PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = root / "site"
    _pip_install(src, site)
    assert (site / "moebench_example_plugin" / "families.py").is_file()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


def moebench(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moebench.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_plugin_listed(plugin_env: dict[str, str]) -> None:
    methods = moebench(plugin_env, "methods", "--json")
    assert methods.returncode == 0, methods.stderr
    rows = {r["name"]: r for r in json.loads(methods.stdout)["methods"]}
    assert rows["cheapest-first"]["kind"] == "heuristic"
    assert "popularity" in rows  # built-ins still there
    fams = moebench(plugin_env, "instances", "list", "--json")
    assert fams.returncode == 0, fams.stderr
    names = {f["name"]: f for f in json.loads(fams.stdout)}
    assert "ring" in names and "uniform" in names
    assert {p["name"] for p in names["ring"]["params"]} >= {"experts", "K", "alpha", "capacity"}
    assert "failed to load" not in methods.stderr + fams.stderr


def test_plugin_not_visible_without_install() -> None:
    """Control: without the PYTHONPATH entry the plugin is absent (the install is what adds it)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = moebench(env, "methods", "--json")
    assert "cheapest-first" not in {r["name"] for r in json.loads(out.stdout)["methods"]}


def test_plugin_family_and_method_run(plugin_env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    gen = moebench(plugin_env, "instances", "generate", "ring", "-p", "experts=6", "-p", "K=3", "-p", "layers=2",
                   "-p", "tokens=500", "-p", "capacity=0.8", "--seed", "4", "-o", str(path))  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    inst = load_instance(path)
    assert inst.meta["family"] == "ring" and (inst.K, inst.L, inst.G) == (3, 2, 12)
    # ring sets are K consecutive experts modulo E
    for layer in range(inst.L):
        for s in inst.layer_sets(layer):
            assert sorted((s - s.min()) % 6) in ([0, 1, 2], [0, 1, 5], [0, 4, 5])
    solved = moebench(plugin_env, "solve", str(path), "--method", "cheapest-first")
    assert solved.returncode == 0, solved.stderr
    rec = json.loads(solved.stdout)
    assert rec["status"] == "feasible" and rec["method"] == "cheapest-first"
    # independent check of the reported objective with the evaluator's formula, by hand
    x = from_triples(inst, rec["placement"])
    tau = np.minimum(inst.fallback, np.where(x, inst.latency, np.inf).min(axis=0))
    assert rec["latency"] == pytest.approx(float(inst.probs @ tau[inst.sets].max(axis=1)))
    assert np.all(x.astype(float) @ inst.size <= inst.capacity + 1e-9)
    assert rec["gain"] > 0


def test_plugin_passes_the_method_contract(plugin_env: dict[str, str], tmp_path: Path) -> None:
    """The example plugin's own test file runs moebench.testing's checks, one test per check."""
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(PLUGIN / "tests"),
            "--rootdir",
            str(tmp_path),
        ],
        env=plugin_env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "8 passed" in res.stdout  # 2 methods x 4 checks
