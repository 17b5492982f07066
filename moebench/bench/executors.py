"""Executors: where tasks run. Both hand every finished result to a callback in the runner
process, which alone writes the store.

- :class:`LocalExecutor`: a pool of ``jobs`` threads, each running one task at a time in its
  own child process (:func:`moebench.bench.worker.execute_task`).
- :class:`DaskExecutor`: the same function submitted to a ``dask.distributed`` cluster (the
  given scheduler, or a ``LocalCluster``). On a worker the task again runs in a child process
  with its own limit, except inside daemonic worker processes, which may not have children:
  there it runs in the worker process without a hard kill (start workers with
  ``distributed.worker.daemon: false`` to keep the kill).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from moebench.bench.tasks import Task, TaskResult
from moebench.bench.worker import STOP, execute_task, failed_row

OnResult = Callable[[Task, TaskResult], None]


class Progress:
    """The progress bar on stderr (tqdm): tasks done, failures, elapsed, estimated time left.

    On a terminal it redraws one line; otherwise (a log file) it prints a plain line every
    10 % of the tasks.
    """

    def __init__(self, total: int, *, done: int = 0, enabled: bool = True, stream: Any = None) -> None:
        self.total, self.done, self.failed = total, done, 0
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: Any = None
        self._last_step = -1
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                initial=done,
                file=self.stream,
                unit="task",
                dynamic_ncols=True,
                disable=not self.tty,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}",
            )

    def update(self, failed: bool, label: str = "") -> None:
        """Count one finished task."""
        self.done += 1
        self.failed += int(failed)
        if self._bar is None:
            return
        self._bar.set_postfix_str(f"{self.failed} failed  {label[:40]}", refresh=False)
        self._bar.update(1)
        if not self.tty:
            step = self.done * 10 // max(1, self.total)
            if self.done == self.total or step != self._last_step:
                self._last_step = step
                elapsed = self._bar.format_dict["elapsed"]
                print(f"{self.done}/{self.total} tasks, {self.failed} failed, {elapsed:.0f} s elapsed  {label[:40]}",
                      file=self.stream, flush=True)  # fmt: skip
        if self.done == self.total:
            self._bar.close()


class LocalExecutor:
    """Run tasks on this machine, ``jobs`` at a time, each in its own child process."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)

    def run(self, tasks: Sequence[Task], on_result: OnResult) -> None:
        """Run every task; ``on_result`` is called in this thread as each one finishes."""
        STOP.clear()
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="moebench-task")
        try:
            pending = {pool.submit(execute_task, t): t for t in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = pending.pop(fut)
                    on_result(task, _result_or_error(task, fut.result, fut.exception))
        except BaseException:
            # Ctrl-C: drop queued tasks and kill running children; unfinished tasks stay unrecorded
            STOP.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def _result_or_error(task: Task, result: Callable[[], Any], exception: Callable[[], Any]) -> TaskResult:
    """The task's result, or an ``error`` row when the executor itself failed."""
    exc = exception()
    if exc is None:
        return result()
    return TaskResult(failed_row(task, f"executor: {type(exc).__name__}: {exc}"))


class DaskExecutor:
    """Run tasks on a ``dask.distributed`` cluster.

    Parameters
    ----------
    scheduler
        Scheduler address (``tcp://host:8786``); None starts a ``LocalCluster``.
    jobs
        Size of the LocalCluster (threads of one in-process worker); ignored with a scheduler.
    processes
        LocalCluster with worker processes instead of threads (non-daemonic, so that tasks
        still run in their own children).
    """

    def __init__(self, scheduler: str | None = None, jobs: int = 1, processes: bool = False) -> None:
        self.scheduler = scheduler
        self.jobs = max(1, jobs)
        self.processes = processes

    def run(self, tasks: Sequence[Task], on_result: OnResult) -> None:
        """Submit every task and hand each result to ``on_result`` as it completes."""
        try:
            import dask
            from distributed import Client, LocalCluster, as_completed
        except ImportError:
            from moebench.errors import UnavailableError

            raise UnavailableError("the Dask executor needs dask[distributed]: pip install 'moebench[dask]'") from None
        cluster = None
        with dask.config.set({"distributed.worker.daemon": False}):
            if self.scheduler is None:
                workers, threads = (self.jobs, 1) if self.processes else (1, self.jobs)
                cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=threads, processes=self.processes, dashboard_address=None
                )
                client = Client(cluster)
            else:
                client = Client(self.scheduler)
            try:
                futures = {}
                for t in tasks:
                    # pure=False: a repetition of the same task must run again, never be deduplicated
                    fut = client.submit(execute_task, t, pure=False, key=f"moebench-{t.task_id}")
                    futures[fut.key] = (fut, t)
                for fut in as_completed([f for f, _ in futures.values()]):
                    task = futures[fut.key][1]
                    on_result(task, _result_or_error(task, fut.result, fut.exception))
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
