"""``moebench run SUITE.toml``: run a benchmark suite, then write the report of its folder.

The command composes the two stages: :func:`moebench.bench.runner.run_suite` (results table,
references, cited instances) and :func:`moebench.report.build.write_report`, which reads only
those files.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from moebench.errors import InputError


def run_command(args: argparse.Namespace) -> int:
    """Run the suite named by ``args.suite``; see :func:`moebench.bench.runner.run_suite`.

    Returns
    -------
    int
        0 when the suite ran (failed tasks are rows, not a failed run); 2 for a bad suite.
    """
    from moebench.bench.runner import run_suite
    from moebench.bench.suite import load_suite
    from moebench.report.build import write_report
    from moebench.report.paper import OPTIONS_FILE, options_from_table, options_toml

    if args.jobs is not None and args.jobs < 1:
        raise InputError("must be >= 1", where="--jobs")
    if args.scheduler is not None and args.executor != "dask":
        raise InputError("--scheduler needs --executor dask", where="--scheduler")
    if args.executor == "dask" and importlib.util.find_spec("distributed") is None:
        raise InputError("the Dask executor needs the 'dask' extra: pip install 'moebench[dask]'", where="--executor")
    if getattr(args, "data_dir", None) is not None:
        from moebench.data import ENV_VAR, resolve_data_dir

        # the suite's model-derived families read it (a data_dir the suite gives still wins);
        # through the environment, so the worker children see the same folder
        os.environ[ENV_VAR] = str(resolve_data_dir(args.data_dir).resolve())
    suite = load_suite(args.suite)
    summary = run_suite(
        suite,
        args.out,
        jobs=args.jobs,
        executor=args.executor,
        scheduler=args.scheduler,
        resume=args.resume,
        force=getattr(args, "force", False),
        wait=getattr(args, "wait", False),
        progress=not args.quiet,
    )
    out = summary.out_dir
    options = None
    if suite.report is not None:  # kept beside the results: `moebench report` on the folder shows the same
        (out / OPTIONS_FILE).write_text(options_toml(suite.report), encoding="utf-8")
        options = options_from_table(suite.report)
    if not args.no_report:
        write_report(out / "results.parquet", out / "report", references=summary.references, options=options)
    counts = ", ".join(f"{v} {k}" for k, v in sorted(summary.status_counts.items())) or "nothing to run"
    print(
        f"moebench: {summary.tasks} tasks ({summary.skipped} already done, {summary.ran} run: {counts}); "
        f"results in {summary.out_dir}",
        file=sys.stderr,
    )
    return 0
