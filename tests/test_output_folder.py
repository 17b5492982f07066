"""Output folders (issue 15 item 4): the lock, another suite's results, foreign files, earlier
results kept, resume checking every store record, read-only stores and files in the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from moebench.bench.outdir import LOCK_NAME, PREVIOUS, lock_folder
from moebench.bench.resume import DAMAGED
from moebench.cli import main
from moebench.errors import InputError

TESTS = Path(__file__).parent
SUITE = """
[suite]
name = "{name}"
time_limit = 5.0
grace = 1.0
seed = 3

[[instances]]
family = "uniform"
params = {{ layers = 2, experts = 4, servers = 2, tokens = 100, capacity = 0.4 }}
grid = {{ K = [1, 2] }}

[[references]]
name = "bruteforce"

[[methods]]
name = "popularity"

[[methods]]
name = "whole-layer"
"""


def write_suite(folder: Path, name: str = "small") -> Path:
    """A suite of 6 tasks: 2 instances x (bruteforce reference + 2 baselines)."""
    path = folder / "suite.toml"
    path.write_text(SUITE.format(name=name))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moebench.cli", "run", *args, "--no-report", "-q", "-j", "1"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["run", *args, "--no-report", "-q", "-j", "2"])
    return code, capsys.readouterr().err


def _store(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_two_concurrent_runs_into_one_folder(tmp_path: Path) -> None:
    """One completes with every row exactly once; the other refuses at once: exit 2, one line naming the holder."""
    suite = write_suite(tmp_path)
    out = tmp_path / "out"
    first = subprocess.Popen(
        [sys.executable, "-m", "moebench.cli", "run", str(suite), "--out", str(out), "--no-report", "-q", "-j", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    # wait until the first run holds the lock (it writes its pid into the lock file)
    lock = out / LOCK_NAME
    for _ in range(6000):
        if lock.exists() and f'"pid": {first.pid}' in lock.read_text():
            break
        if first.poll() is not None:
            pytest.fail(f"the first run ended before taking the lock: {first.communicate()[1]}")
        subprocess.run(["sleep", "0.05"])
    second = _run(str(suite), "--out", str(out))
    _, err1 = first.communicate(timeout=600)
    assert first.returncode == 0, err1
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr
    assert lines[0].startswith(f"moebench: error: {out}:") and "busy" in lines[0]
    assert f"pid {first.pid}" in lines[0] and "since" in lines[0]
    df = pd.read_parquet(out / "results.parquet")
    records = _store(out)
    assert len(df) == 6 and df["task_id"].is_unique  # 2 bruteforce references + 2 x 2 methods
    assert sorted(r["task_id"] for r in records) == sorted(df["task_id"])  # every row exactly once
    assert not (out / PREVIOUS).exists()  # the refused run touched nothing


def test_wait_takes_the_lock_when_the_holder_lets_go(tmp_path: Path) -> None:
    out = tmp_path / "out"
    held = lock_folder(out)
    with pytest.raises(InputError, match=rf"busy: moebench run pid {os.getpid()} on .* since "):
        lock_folder(out)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from moebench.bench.outdir import lock_folder; lock_folder(__import__('pathlib').Path({str(out)!r}), wait=True); print('got it')",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)  # blocked while we hold the lock
    held.release()
    stdout, stderr = proc.communicate(timeout=120)
    assert stdout.strip() == "got it" and "waiting for moebench run pid" in stderr


def test_a_lock_left_by_a_killed_run_is_not_stale(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = f"from moebench.bench.outdir import lock_folder; import os; lock_folder(__import__('pathlib').Path({str(out)!r})); os.kill(os.getpid(), 9)"
    subprocess.run([sys.executable, "-c", code], timeout=120)
    assert (out / LOCK_NAME).exists()  # the file stays, the kernel released the lock
    lock_folder(out).release()


def test_another_suites_results_and_foreign_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = tmp_path / "a"
    a.mkdir()
    suite_a = write_suite(a)
    out = tmp_path / "out"
    assert _main(capsys, str(suite_a), "--out", str(out))[0] == 0
    b = tmp_path / "b"
    b.mkdir()
    suite_b = write_suite(b, "other")
    before = (out / "results.parquet").read_bytes()
    code, err = _main(capsys, str(suite_b), "--out", str(out))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "holds the results of another suite (small)" in err
    code, err = _main(capsys, str(suite_b), "--out", str(out), "--resume")
    assert code == 2 and "another suite" in err
    assert (out / "results.parquet").read_bytes() == before  # untouched
    # --force: the other suite's results are moved aside, never deleted
    code, err = _main(capsys, str(suite_b), "--out", str(out), "--force")
    assert code == 0, err
    moved = list((out / PREVIOUS).iterdir())
    assert len(moved) == 1 and (moved[0] / "results.parquet").read_bytes() == before
    assert set(pd.read_parquet(out / "results.parquet")["suite"]) == {"other"}
    # foreign files: refused without --resume or --force, and never touched
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    code, err = _main(capsys, str(suite_a), "--out", str(foreign))
    assert code == 2 and "holds files a run does not write (thesis.tex)" in err
    assert _main(capsys, str(suite_a), "--out", str(foreign), "--force")[0] == 0
    assert (foreign / "thesis.tex").read_text() == "mine"


def test_a_new_run_keeps_the_earlier_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path)
    out = tmp_path / "out"
    assert _main(capsys, str(suite), "--out", str(out))[0] == 0
    first = (out / "results.jsonl").read_bytes()
    code, err = _main(capsys, str(suite), "--out", str(out))
    assert code == 0 and "the previous results were moved to" in err
    (moved,) = (out / PREVIOUS).iterdir()
    assert (moved / "results.jsonl").read_bytes() == first
    assert {p.name for p in moved.iterdir()} >= {"results.jsonl", "results.parquet", "results.csv", "run.json"}


def test_resume_checks_every_record_and_reruns_the_damaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path)
    out = tmp_path / "out"
    assert _main(capsys, str(suite), "--out", str(out))[0] == 0
    good = pd.read_parquet(out / "results.parquet")
    records = _store(out)
    ref = next(i for i, r in enumerate(records) if r["role"] == "reference")
    pop = next(i for i, r in enumerate(records) if r["method"] == "popularity")
    other = next(i for i, r in enumerate(records) if r["method"] == "whole-layer")
    forged = dict(records[pop], gain=records[pop]["gain"] * 2)  # a forged gain
    stub = {"task_id": records[ref]["task_id"]}  # a stub line of a reference row
    wrong_hash = dict(records[other], instance_hash="0" * 64)
    lines = [json.dumps(r) for r in records]
    lines[pop], lines[ref], lines[other] = json.dumps(forged), json.dumps(stub), json.dumps(wrong_hash)
    lines.append("{not json")
    (out / "results.jsonl").write_text("\n".join(lines) + "\n")
    code, err = _main(capsys, str(suite), "--out", str(out), "--resume")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "damaged" in line]
    assert len(warnings) == 1 and warnings[0].startswith("moebench: warning: 4 damaged store line(s)")
    assert "3 identified" in warnings[0]
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == len(good) and df["task_id"].is_unique
    assert (df["role"] == "reference").sum() == (good["role"] == "reference").sum()  # the reference row is back
    row = df.set_index("task_id").loc[records[pop]["task_id"]]
    assert row["gain"] == pytest.approx(records[pop]["gain"])  # re-run, not the forged value
    assert len((out / DAMAGED).read_text().splitlines()) == 4  # kept as evidence
    # the store is clean now: a second resume finds nothing damaged and runs nothing
    code, err = _main(capsys, str(suite), "--out", str(out), "--resume")
    assert code == 0 and "damaged" not in err and "0 run" in err


def test_a_file_in_place_of_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path)
    in_the_way = tmp_path / "file"
    in_the_way.write_text("x")
    code, err = _main(capsys, str(suite), "--out", str(in_the_way))
    assert code == 2
    assert err.strip() == f"moebench: error: {in_the_way}: is a file, not a folder (--out must name a folder)"
    code, err = _main(capsys, str(suite), "--out", str(in_the_way / "sub"))
    assert (
        code == 2
        and err.strip() == f"moebench: error: {in_the_way / 'sub'}: cannot create the output folder: Not a directory"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_store_or_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path)
    out = tmp_path / "out"
    assert _main(capsys, str(suite), "--out", str(out))[0] == 0
    (out / "results.jsonl").chmod(0o444)
    code, err = _main(capsys, str(suite), "--out", str(out), "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot write the results store" in err
    out.chmod(0o555)
    try:
        code, err = _main(capsys, str(suite), "--out", str(out), "--resume")
        assert code == 2 and err.strip() == f"moebench: error: {out}: the output folder is not writable"
    finally:
        out.chmod(0o755)
