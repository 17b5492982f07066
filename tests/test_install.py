"""A regular install without extras runs the main job (issue 15 item 6).

Builds a wheel from a copy of the sources (``uv build``), installs it with its core dependencies
only (no extras) into a fresh virtual environment, and from a folder holding a copy of the
repository's ``instances/`` (not the checkout, so nothing can be found through it) runs a small
suite with its table and report, ``solve --profile highs-default`` (a profile shipped inside the
package) and ``instances library --check`` (the manifest found in the current folder, the
model-derived recipes reading the trace data shipped inside the package), also with
``--data-dir``. uv reuses its wheel cache, so a warm run takes well under two minutes; the
package registries are needed only when the cache lacks a dependency.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SUITE = """
[suite]
name = "install"
time_limit = 20.0
grace = 5.0

[[instances]]
family = "zipf"
params = { layers = 2, experts = 8, servers = 3, tokens = 1000, alpha = 1.0, capacity = 0.25 }
grid = { K = [1, 3] }

[[references]]
name = "milp-highs"
options = { profile = "highs-reference" }

[[methods]]
name = "cpsat"
time_limit = 10.0

[[methods]]
name = "greedy-ratio+single"

[[methods]]
name = "sgd-levels[dp]+ls"

[[methods]]
name = "popularity"
"""


def _uv() -> str | None:
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.exists() else shutil.which("uv")


def _sh(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (
        f"{' '.join(map(str, cmd))} -> {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    return res.stdout + res.stderr


@pytest.mark.install
def test_a_wheel_without_extras_runs_the_main_job(tmp_path: Path) -> None:
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed (it comes with the 'test' extra)")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("moebench", "pyproject.toml", "README.md"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "MOEBENCH_"))}
    env["UV_LINK_MODE"] = "copy"  # the cache may live on another file system
    _sh(uv, "build", "--wheel", "--out-dir", tmp_path / "dist", src, env=env)
    (wheel,) = (tmp_path / "dist").glob("moebench-*.whl")
    venv = tmp_path / "venv"
    _sh(uv, "venv", "--quiet", "--python", sys.executable, venv, env=env)
    py = venv / "bin" / "python"
    _sh(uv, "pip", "install", "--quiet", "--python", py, wheel, env=env)  # core dependencies, no extras
    freeze = _sh(uv, "pip", "freeze", "--python", py, env=env)
    installed = {line.split("==")[0].split(" @ ")[0].strip().lower() for line in freeze.splitlines()}
    assert "moebench" in installed and not installed & {"distributed", "dask", "pytest", "hypothesis"}
    # the package is imported from site-packages, never from a checkout
    where = _sh(py, "-c", "import moebench, sys; print(moebench.__file__)", cwd=tmp_path, env=env)
    assert "site-packages" in where
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(REPO / "instances", work / "instances", ignore=shutil.ignore_patterns("cache", "runs"))
    (work / "suite.toml").write_text(SUITE)
    moebench = venv / "bin" / "moebench"
    run_env = {**env, "OPENBLAS_NUM_THREADS": "1"}

    _sh(moebench, "run", "suite.toml", "--out", "out", "-j", "2", "-q", cwd=work, env=run_env)
    out = work / "out"
    for f in ("results.parquet", "results.csv", "references.solu", "report/report.html", "report/report.md"):
        assert (out / f).is_file(), f
    assert list((out / "report").rglob("*.png")), "the report has its plots"
    csv = (out / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + 2 * 5  # header + 2 instances x (reference + 4 methods)

    solved = _sh(
        moebench, "solve", "instances/zipf-k3-small.json.gz", "-m", "milp-highs", "--profile", "highs-default",
        cwd=work, env=run_env,
    )  # fmt: skip
    assert '"status": "optimal"' in solved
    checked = _sh(moebench, "instances", "library", "--check", cwd=work, env=run_env)
    assert "0 mismatching" in checked and "HASH MISMATCH" not in checked
    shipped = _sh(py, "-c", "from moebench.data import shipped_data_dir; print(shipped_data_dir())", env=env).strip()
    with_dir = _sh(moebench, "instances", "library", "--check", "--data-dir", shipped, cwd=work, env=run_env)
    assert "0 mismatching" in with_dir
