"""The suite runner: tasks -> executor -> store -> table, references and report.

Output folder layout (``--out``, default: the suite file's folder)::

    results.jsonl      append-only store, one JSON record per finished task (resume source)
    results.parquet    the final table: one row per task of the suite, in task order
    results.csv        the same without the placement column
    references.solu    reference values per instance (unless the suite names another file)
    run.json           provenance of the last run (versions, git commit, machine, dates)
    stress.jsonl, stress.csv, stress/   [[stress]] searches and their worst instances
    report/            the report (see ``moebench report``)
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from moebench.bench.executors import DaskExecutor, LocalExecutor, Progress
from moebench.bench.references import Reference, check_names, read_references, reconcile, write_references
from moebench.bench.store import ResultStore, write_table
from moebench.bench.suite import Suite, plugin_modules
from moebench.bench.tasks import Task, instance_columns, task_id

#: Statuses counted as failures by the progress bar and the run summary.
FAILED_STATUSES = ("error", "invalid", "infeasible")
_PACKAGES = ("numpy", "pandas", "highspy", "ortools", "pyomo", "dask", "distributed")


@cache
def provenance() -> dict[str, Any]:
    """Versions, git commit and machine of this run (the same for every row of a run)."""
    from importlib.metadata import PackageNotFoundError, version

    from moebench import __version__

    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "moebench_version": __version__,
        "git_commit": git_commit(),
        "machine": f"{socket.gethostname()} ({platform.machine()}, {os.cpu_count()} cores, {platform.system()})",
        "python_version": platform.python_version(),
        "package_versions": json.dumps(versions, sort_keys=True),
    }


def git_commit() -> str | None:
    """Commit of the moebench source tree (``+dirty`` with uncommitted changes), or None."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


@dataclass
class RunSummary:
    """What a run did."""

    out_dir: Path
    tasks: int
    ran: int
    skipped: int
    failed: int
    status_counts: dict[str, int]
    files: list[Path]


def build_tasks(
    suite: Suite, instances: list[Any], refs: dict[tuple[str, str], Reference], finished: set[str]
) -> list[Task]:
    """The suite's task list, reference tasks first.

    A reference task is dropped when the reference file already holds a proven optimum for
    the instance (same name and content hash) — unless this output folder already has its
    result, which then stays in the table (so ``--resume`` never loses rows).
    """
    plugins = tuple(plugin_modules(suite.plugins))
    tasks: list[Task] = []
    seen: set[str] = set()
    for inst in instances:
        ref = refs.get((inst.name, inst.content_hash))
        for entry in [*suite.references, *suite.methods]:
            if not entry.applies_to(inst.name):
                continue
            for rep in range(suite.repetitions):
                seed = suite.seed + rep
                tid = task_id(inst, entry.name, entry.options, seed, rep, entry.time_limit)
                if tid in seen:
                    continue
                if entry.role == "reference" and ref is not None and ref.proven and tid not in finished:
                    continue
                seen.add(tid)
                tasks.append(
                    Task(
                        tid,
                        inst,
                        entry.name,
                        dict(entry.options),
                        seed,
                        rep,
                        entry.time_limit,
                        suite.grace,
                        suite.memory_limit_mb,
                        entry.role,
                        plugins,
                    )
                )
    return tasks


def make_row(suite: Suite, task: Task, result: dict[str, Any]) -> dict[str, Any]:
    """One results row: task fields, instance properties, the run's record and provenance."""
    row: dict[str, Any] = {
        "task_id": task.task_id,
        "suite": suite.name,
        "role": task.role,
        "repetition": task.repetition,
        "method_options": json.dumps(dict(task.options), sort_keys=True, default=str),
    }
    row.update(instance_columns(task.instance))
    row.update(result)
    row["method"] = task.method
    row.update(provenance())
    row["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return row


def run_suite(
    suite: Suite,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    jobs: int | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    resume: bool = False,
    progress: bool = True,
    report: bool = True,
    formats: tuple[str, ...] = ("csv", "latex", "md", "html"),
) -> RunSummary:
    """Run a suite end to end.

    Parameters
    ----------
    suite
        The loaded suite.
    out_dir
        Output folder (default: the suite file's folder).
    jobs
        Tasks at a time (default: number of cores).
    executor
        ``"local"`` or ``"dask"``.
    scheduler
        Dask scheduler address (default: a LocalCluster).
    resume
        Keep the finished tasks of the store in ``out_dir`` and run only the others; without
        it an existing store is moved to ``results.jsonl.prev`` and everything runs again.
    progress
        Show the progress bar on stderr.
    report
        Write the report into ``out_dir/report`` at the end.
    formats
        Report formats.
    """
    out = Path(out_dir) if out_dir is not None else suite.path.parent
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 1
    instances = suite.instances()
    check_names([inst.name for inst in instances], file=str(suite.path))  # before any work: names go into line files
    refs_path = suite.references_path or out / "references.solu"
    refs = read_references(refs_path)
    store = ResultStore(out / "results.jsonl")
    finished = store.finished() if resume else {}
    tasks = build_tasks(suite, instances, refs, set(finished))
    todo = [t for t in tasks if t.task_id not in finished]
    if suite.unknown_methods:
        print(
            f"moebench: warning: unknown method(s) {', '.join(suite.unknown_methods)}: their tasks are recorded "
            "with status error (`moebench methods` lists the installed ones)",
            file=sys.stderr,
        )
    meta = {
        "suite": str(suite.path),
        "suite_name": suite.name,
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "executor": executor,
        "jobs": jobs,
        "tasks": len(tasks),
        "resumed": len(tasks) - len(todo),
        "references": str(refs_path),
        **provenance(),
    }
    _write_json(out / "run.json", meta)
    bar = Progress(len(tasks), done=len(tasks) - len(todo), enabled=progress)
    counts: dict[str, int] = {}
    store.open(fresh=not resume)
    results = dict(finished)

    def on_result(task: Task, result: dict[str, Any]) -> None:
        row = make_row(suite, task, result)
        store.append(row)
        results[task.task_id] = row
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        bar.update(row["status"] in FAILED_STATUSES, f"{task.instance.name} {task.method}")

    try:
        if executor == "dask":
            DaskExecutor(scheduler, jobs).run(todo, on_result)
        else:
            LocalExecutor(jobs).run(todo, on_result)
    finally:
        store.close()
    rows = [results[t.task_id] for t in tasks if t.task_id in results]
    merged = reconcile(refs, rows)
    for i, problem in merged.rejected.items():  # a refuted claim is an error row the report lists
        rows[i] = {**rows[i], "status": "error", "error": f"refuted: {problem.message}"}
    for problem in merged.problems:
        print(f"moebench: warning: reference rejected: {problem}", file=sys.stderr)
    files = write_table(rows, out)
    write_references(refs_path, merged.refs, merged.placements)
    files.append(Path(refs_path))
    if getattr(suite, "stress", None):  # [[stress]] searches, after the tasks (moebench.bench.stress_runs)
        from moebench.bench.stress_runs import run_stress

        files += run_stress(suite, out, jobs=jobs, resume=resume, progress=progress)
    meta["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    _write_json(out / "run.json", meta)
    if report:
        from moebench.report.build import write_report

        files += write_report(out / "results.parquet", out / "report", formats=formats, references=refs_path)
    failed = sum(v for k, v in counts.items() if k in FAILED_STATUSES)
    return RunSummary(out, len(tasks), len(todo), len(tasks) - len(todo), failed, counts, files)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
