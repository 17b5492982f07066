"""Benchmark suites: suite files, tasks, executors (local process pool, Dask), the results
store, reference values and the ``moebench run`` command."""
