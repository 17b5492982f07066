"""The suite runner: tasks -> executor -> store -> table, references and the artifacts a report cites.

The report is not the runner's business: ``moebench run`` (:mod:`moebench.bench.cli`) composes
a run and then ``moebench report`` on its folder, which reads only the files listed here.

Output folder layout (``--out``, default: the suite file's folder)::

    .moebench.lock     the exclusive lock of the run writing here (names pid, host, start time)
    results.jsonl      append-only store, one JSON record per finished task (resume source)
    results.jsonl.damaged  store lines --resume found damaged (kept as evidence; their tasks re-ran)
    previous/<time>/   the results of earlier runs of the same suite (a run without --resume)
    results.parquet    the final table: one row per task of the suite, in task order
    results.csv        the same without the placement column
    references.solu    reference values per instance (unless the suite names another file)
    run.json           provenance of the last run (versions, git commit, machine, dates)
    stress/            the worst instance of every [[stress]] search (whose rows are in the table)
    violations/        the instance of every run below a claim
    artifacts.json     the manifest of the instance files a report may cite
    report/            the report (written by ``moebench run`` unless --no-report; ``moebench report``)
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

from moebench.bench.artifacts import write_artifacts
from moebench.bench.executors import DaskExecutor, LocalExecutor, Progress
from moebench.bench.outdir import lock_folder, prepare_folder
from moebench.bench.references import Reference, check_names, read_references, reconcile, write_references
from moebench.bench.resume import resume_records, set_aside_damage
from moebench.bench.store import ResultStore, write_table
from moebench.bench.stress_tasks import stress_tasks
from moebench.bench.suite import Suite
from moebench.bench.tasks import Task, TaskResult, instance_columns, task_id
from moebench.errors import InputError
from moebench.instance_file import save_instance
from moebench.json_io import write_atomically
from moebench.registry import plugin_modules
from moebench.status import FAILED

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
    references: Path


def build_tasks(
    suite: Suite, instances: list[Any], refs: dict[tuple[str, str], Reference], finished: set[str]
) -> list[Task]:
    """The suite's task list: reference tasks first, then the method runs, then the stress searches.

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
    return tasks + stress_tasks(suite, plugins)


def make_row(suite: Suite, task: Task, result: dict[str, Any]) -> dict[str, Any]:
    """One results row (:mod:`moebench.schema.rows`): task fields, instance properties, the
    run's record (or the search's outcome) and provenance."""
    row: dict[str, Any] = {
        "task_id": task.task_id,
        "suite": suite.name,
        "kind": task.kind,
        "role": task.role,
        "repetition": task.repetition,
        "method_options": json.dumps(dict(task.options), sort_keys=True, default=str),
    }
    if task.instance is not None:
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
    force: bool = False,
    wait: bool = False,
    progress: bool = True,
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
        Keep the finished tasks of the store in ``out_dir`` whose records check out
        (:mod:`moebench.bench.resume`) and run only the others; without it the previous
        results are moved to ``previous/<time>/`` and everything runs again.
    force
        Use a folder holding another suite's results (moved to ``previous/``) or foreign files.
    wait
        Wait for another run holding the folder's lock instead of refusing.
    progress
        Show the progress bar on stderr.
    """
    out = Path(out_dir) if out_dir is not None else suite.path.parent
    refs_path = suite.references_path or out / "references.solu"
    if not refs_path.resolve().is_relative_to(out.resolve()):
        raise InputError(
            f"the references file {refs_path} is outside the output folder {out} (a run writes only there)",
            file=str(suite.path),
            where="suite.references",
        )
    jobs = jobs or os.cpu_count() or 1
    instances = suite.instances()
    check_names([inst.name for inst in instances], file=str(suite.path))  # before any work: names go into line files
    with lock_folder(out, wait=wait):
        moved = prepare_folder(
            out, suite.name, {suite.path, refs_path}, resume=resume, force=force, home=suite.path.parent
        )
        if moved is not None:
            print(f"moebench: note: the previous results were moved to {moved}", file=sys.stderr)
        # the run proper, inside the folder's lock
        refs = read_references(refs_path)
        store = ResultStore(out / "results.jsonl")
        finished: dict[str, dict[str, Any]] = {}
        keep: set[str] = set()
        if resume:
            # every task the suite could have (references included), to check the store against
            checked = resume_records(store.path, build_tasks(suite, instances, {}, set()), suite.name)
            if (line := checked.warning()) is not None:
                print(line, file=sys.stderr)
            try:
                set_aside_damage(store.path, checked)
            except OSError as exc:
                raise InputError(f"cannot rewrite the results store: {exc.strerror}", file=str(store.path)) from None
            finished = checked.kept
            keep = set(finished) | checked.rerun  # a damaged reference row runs again, never vanishes
        tasks = build_tasks(suite, instances, refs, keep)
        todo = [t for t in tasks if t.task_id not in finished]
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
        write_atomically(out / "run.json", json.dumps(meta, indent=2, default=str) + "\n")
        bar = Progress(len(tasks), done=len(tasks) - len(todo), enabled=progress)
        counts: dict[str, int] = {}
        try:
            store.open(fresh=not resume)
        except OSError as exc:
            raise InputError(f"cannot write the results store: {exc.strerror}", file=str(store.path)) from None
        results = dict(finished)

        def on_result(task: Task, result: TaskResult) -> None:
            row = make_row(suite, task, result.row)
            if result.instance is not None and task.search is not None:  # the search's worst instance, before its row
                rel = Path("stress") / f"{task.search.slug(task.seed)}.json.gz"
                save_instance(result.instance, out / rel)
                row["instance_file"] = rel.as_posix()
            store.append(row)
            results[task.task_id] = row
            counts[row["status"]] = counts.get(row["status"], 0) + 1
            bar.update(row["status"] in FAILED, task.label)

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
            rows[i] = {**rows[i], "status": "error", "error": problem.row_error}
        for problem in merged.problems:
            print(f"moebench: warning: reference rejected: {problem}", file=sys.stderr)
        files = write_table(rows, out)
        write_references(refs_path, merged.refs, merged.placements)
        files.append(Path(refs_path))
        files += [out / r["instance_file"] for r in rows if r.get("instance_file")]
        # with the references final: the instances a report may cite, and their manifest
        files += write_artifacts(out, rows, refs, instances)
        meta["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        write_atomically(out / "run.json", json.dumps(meta, indent=2, default=str) + "\n")
        failed = sum(v for k, v in counts.items() if k in FAILED)
        return RunSummary(out, len(tasks), len(todo), len(tasks) - len(todo), failed, counts, files, Path(refs_path))
