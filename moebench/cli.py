"""The ``moebench`` command line (SPEC section 7).

Every bad input ends as one line on stderr and exit code 2; ``solve`` and ``evaluate`` print
one JSON object on stdout and nothing else (solver banners are sent to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from moebench.encoding import dumps_strict
from moebench.errors import InputError


def _params(pairs: Sequence[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in pairs or []:
        if "=" not in item:
            raise InputError(f"expected key=value, got {item!r}", where=flag)
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send file descriptor 1 to stderr for the duration (C libraries print banners)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _print_json(obj: Any) -> None:
    """Print ``obj`` as strict JSON: a non-finite number becomes null, with a warning naming it."""
    text, replaced = dumps_strict(obj, indent=2)
    if replaced:
        shown = ", ".join(replaced[:5]) + (f" and {len(replaced) - 5} more" if len(replaced) > 5 else "")
        _warn(f"not a finite number, printed as null: {shown}")
    print(text)


def _warn(message: str) -> None:
    print(f"moebench: warning: {_one_line(message)}", file=sys.stderr)


def _one_line(message: str) -> str:
    return message.replace("\r", "\\r").replace("\n", "\\n")


# ---- commands -------------------------------------------------------------------------
def _solve_options(args: argparse.Namespace, accepted: tuple[str, ...], method: str) -> dict[str, Any]:
    """The method options of ``solve``, every name checked against what ``method`` accepts."""
    options: dict[str, Any] = {}
    flags: dict[str, str] = {}
    for key, value in _params(args.option, "--option").items():
        options[key], flags[key] = value, "--option"
    for key in ("formulation", "solver", "profile"):
        if getattr(args, key) is not None:
            options[key], flags[key] = getattr(args, key), f"--{key}"
    for key in options:
        if key not in accepted:
            known = f"accepted: {', '.join(accepted)}" if accepted else "it takes no options"
            where = flags[key] if flags[key] != "--option" else f"--option {key}"
            raise InputError(f"{method} does not accept option {key!r} ({known})", where=where)
    return options


def cmd_solve(args: argparse.Namespace) -> int:
    from moebench.harness import run_method
    from moebench.instance_file import load_instance
    from moebench.methods import get_method
    from moebench.placement import from_triples, save_placement

    # usage errors first, before the instance is read or anything is solved
    method = get_method(args.method)
    options = _solve_options(args, method.options, method.name)
    if args.time_limit is not None and not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise InputError(f"must be a finite number of seconds > 0, got {args.time_limit!r}", where="--time-limit")
    if args.seed < 0:
        raise InputError(f"must be >= 0, got {args.seed}", where="--seed")
    if args.profile is not None:
        from moebench.exact.profiles import load_profile

        load_profile(args.profile)  # an unknown profile is an input error (exit 2), not a result
    inst = load_instance(args.instance)
    isolate = False if args.no_isolate else None
    with stdout_to_stderr():
        rec = run_method(inst, method, time_limit=args.time_limit, seed=args.seed, options=options, isolate=isolate)
    if args.output and rec.placement is not None:
        save_placement(inst, from_triples(inst, rec.placement), args.output)
    _print_json(rec.to_dict())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from moebench.evaluate import evaluate
    from moebench.instance_file import load_instance
    from moebench.placement import load_placement

    inst = load_instance(args.instance)
    x = load_placement(inst, args.placement, warn=lambda msg: _warn(f"{args.placement}: {msg}"))
    ev = evaluate(inst, x)
    _print_json({"instance": inst.name, **ev.to_dict()})
    return 0 if ev.feasible else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from moebench.instance_file import load_instance
    from moebench.placement import load_placement
    from moebench.replay import Replayer

    inst = load_instance(args.instance)
    try:
        replayer = Replayer(inst, data_dir=args.data_dir, trace=args.trace)
    except InputError as err:
        if err.where == "trace":  # no file given for a trace instance: a usage error
            raise InputError(err.reason, where="--trace") from None
        if err.where and err.where.startswith("meta."):  # the instance's provenance
            raise err.with_file(args.instance) from None
        raise
    x = load_placement(inst, args.placement, warn=lambda msg: _warn(f"{args.placement}: {msg}"))
    rep = replayer.replay(x, args.task, args.tokens)
    _print_json(rep.to_dict())
    return 0 if rep.feasible else 1


def cmd_methods(args: argparse.Namespace) -> int:
    from moebench.methods import get_method, modifiers, registered

    rows = []
    for reg in registered():
        for ex in reg.examples:
            rows.append(get_method(ex).info.to_dict())
    if args.json:
        _print_json({"methods": rows, "modifiers": modifiers()})
        return 0
    for r in rows:
        g = r["guarantee"]
        gtxt = (
            "none"
            if g is None
            else f">= {g['ratio']:.4f} x OPT gain ({g['source']}; when {', '.join(g['conditions']) or 'always'})"
        )
        print(f"{r['name']}  [{r['kind']}{'' if r['deterministic'] else ', randomized'}]")
        print(f"    {r['summary']}")
        print(f"    assumes: {', '.join(r['assumptions']) or 'nothing'}; guarantee: {gtxt}")
    if modifiers():
        print("modifiers: " + ", ".join(f"<method>+{m}" for m in modifiers()))
    return 0


def cmd_instances_list(args: argparse.Namespace) -> int:
    from moebench.families import families

    fams = families()
    if args.json:
        _print_json(
            [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "summary": f.summary,
                    "params": [
                        {"name": p.name, "default": p.default, "type": p.type, "help": p.help} for p in f.params
                    ],
                }
                for f in fams
            ]
        )
        return 0
    for f in fams:
        print(f"{f.name}  [{f.kind}]  {f.summary}")
        if args.verbose:
            for p in f.params:
                print(f"    {p.name:<18} {p.type:<7} default {p.default!r:<12} {p.help}")
    if not args.verbose:
        print("(moebench instances list -v shows every parameter)")
    return 0


def cmd_instances_generate(args: argparse.Namespace) -> int:
    from moebench.families import generate, get_family
    from moebench.instance_file import save_instance

    params: dict[str, Any] = _params(args.param, "--param")
    if args.data_dir is not None:
        if "data_dir" not in {p.name for p in get_family(args.family).params}:
            raise InputError(f"family {args.family!r} reads no data folder", where="--data-dir")
        params["data_dir"] = args.data_dir
    inst = generate(args.family, params, seed=args.seed, instance_name=args.name)
    save_instance(inst, args.output)
    print(
        f"wrote {args.output}: {inst.name} (K={inst.K}, {inst.N} servers, {inst.L} layers, "
        f"{inst.G} experts, {inst.M} activation sets)",
        file=sys.stderr,
    )
    return 0


def cmd_instances_show(args: argparse.Namespace) -> int:
    import numpy as np

    from moebench.instance_file import load_instance

    inst = load_instance(args.instance)
    # sums of sizes near the float limit overflow (printed as null): the fraction is computed on
    # scaled values, which do not
    scale = float(inst.size.max())
    fraction = float((inst.capacity / scale).sum() / (inst.size / scale).sum())
    with np.errstate(over="ignore"):
        total = inst.total_size
    info = {
        "name": inst.name,
        "K": inst.K,
        "servers": inst.N,
        "layers": inst.L,
        "experts": inst.G,
        "experts_per_layer": sorted(set(int(e) for e in inst.n_experts)),
        "activation_sets": inst.M,
        "capacity_mb": [float(c) for c in inst.capacity],
        "total_expert_mb": total,
        "capacity_fraction": fraction,
        "latency_range_ms": [float(inst.latency.min()), float(inst.latency.max())],
        "fallback_range_ms": [float(inst.fallback.min()), float(inst.fallback.max())],
        "empty_latency_ms": inst.empty_latency,
        "content_hash": inst.content_hash,
        "meta": dict(inst.meta),
    }
    _print_json(info)
    return 0


def cmd_stress(args: argparse.Namespace) -> int:
    from moebench.instance_file import save_instance
    from moebench.stress import stress

    def progress(res: Any) -> None:
        if not args.quiet:
            print(
                f"  {res.history[-1][0]:6.1f} s  restarts {res.restarts:<5} worst ratio {res.ratio:.4f}",
                file=sys.stderr,
            )

    res = stress(
        args.method,
        args.family,
        _params(args.param, "--param"),
        budget=args.budget,
        seed=args.seed,
        reference=args.reference,
        progress=progress,
    )
    out = res.to_dict()
    if res.instance is not None:
        path = args.output or f"stress-{args.method}-{args.family}-s{args.seed}.json"
        save_instance(res.instance, path)
        out["file"] = path
    _print_json(out)
    return 0


def cmd_instances_library(args: argparse.Namespace) -> int:
    from moebench.library import build, default_manifest, load_manifest

    manifest = args.manifest or str(default_manifest())
    entries = load_manifest(manifest)
    if args.only:
        entries = [e for e in entries if e.name in set(args.only)]
    results = build(entries, root=Path(manifest).parent, write=not args.check, data_dir=args.data_dir)
    bad = 0
    for e, h, ok in results:
        flag = "ok" if ok and e.hash else ("NEW (no hash in manifest)" if e.hash is None else "HASH MISMATCH")
        bad += not ok
        print(f"{e.name:<40} {e.tier:<7} {e.store:<7} {h[:16]}  {flag}")
    print(f"{len(results)} instances, {bad} mismatching", file=sys.stderr)
    return 1 if bad else 0


def cmd_references_check(args: argparse.Namespace) -> int:
    from moebench.bench.reference_check import references_command

    return references_command(args)


# ---- parser ---------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line ``moebench: error: ...`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        """Print one line naming the problem (``--help`` shows the usage) and exit with code 2."""
        self.exit(2, f"moebench: error: {_one_line(message)} (see {self.prog} --help)\n")


def _add_data_dir(p: Any, what: str = "trace data folder for model-derived families") -> None:
    p.add_argument("--data-dir", default=None, help=f"{what} (default: $MOEBENCH_DATA, else the shipped one)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from moebench import __version__

    p = Parser(prog="moebench", description="Benchmark MoE expert-placement algorithms against exact references.")
    p.add_argument("--version", action="version", version=f"moebench {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("solve", help="solve an instance with one method; prints JSON")
    s.add_argument("instance", help="instance file (.json or .json.gz)")
    s.add_argument("--method", "-m", required=True, help="method name, e.g. sgd-levels[dp]+ls (see `moebench methods`)")
    s.add_argument("--time-limit", type=float, default=None, help="wall-clock limit in seconds")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument(
        "--formulation", choices=("assign", "cover", "k1"), default=None, help="exact methods: MILP formulation"
    )
    s.add_argument("--solver", default=None, help="milp-pyomo: Pyomo solver name (default highs)")
    s.add_argument(
        "--profile",
        default=None,
        help="exact methods: solver profile (shipped: moebench/solvers/*.toml; or a path to a .toml)",
    )
    s.add_argument("--option", action="append", metavar="KEY=VALUE", help="further method option (repeatable)")
    s.add_argument("--no-isolate", action="store_true", help="run in this process even with a time limit")
    s.add_argument("-o", "--output", default=None, help="write the placement file here")
    s.set_defaults(func=cmd_solve)

    e = sub.add_parser("evaluate", help="evaluate a placement; prints JSON, exit 1 when infeasible")
    e.add_argument("instance")
    e.add_argument("placement")
    e.set_defaults(func=cmd_evaluate)

    rp = sub.add_parser(
        "replay", help="replay real token paths of a trace through a placement; prints JSON, exit 1 when infeasible"
    )
    rp.add_argument("instance", help="instance of a real-trace family (deepseek-v2-lite-esft, trace)")
    rp.add_argument("placement")
    rp.add_argument("--task", default=None, help="task to replay (default: the instance's; another task of the model)")
    rp.add_argument(
        "--tokens",
        choices=("all", "train", "test"),
        default="all",
        help="every token of the task, or a part of the instance's split (same fraction and seed); default all",
    )
    src = rp.add_mutually_exclusive_group()
    _add_data_dir(src, "ESFT data folder")
    src.add_argument(
        "--trace",
        default=None,
        metavar="FILE",
        help="moebench-trace/1 file: the trace instance's own file (checked by SHA-256), or another recording of the model",
    )
    rp.set_defaults(func=cmd_replay)

    m = sub.add_parser("methods", help="list methods with assumptions and guarantees")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_methods)

    i = sub.add_parser("instances", help="instance families and files")
    isub = i.add_subparsers(dest="instances_command", required=True, metavar="ACTION")
    il = isub.add_parser("list", help="list instance families")
    il.add_argument("-v", "--verbose", action="store_true", help="show parameters")
    il.add_argument("--json", action="store_true")
    il.set_defaults(func=cmd_instances_list)
    ig = isub.add_parser("generate", help="generate an instance file from a family")
    ig.add_argument("family")
    ig.add_argument("--param", "-p", action="append", metavar="KEY=VALUE", help="family parameter (repeatable)")
    ig.add_argument("--seed", type=int, default=0)
    ig.add_argument("--name", default=None, help="instance name (default derived from the parameters)")
    _add_data_dir(ig)
    ig.add_argument("-o", "--output", required=True, help="output file (.json or .json.gz)")
    ig.set_defaults(func=cmd_instances_generate)
    ish = isub.add_parser("show", help="summarize an instance file")
    ish.add_argument("instance")
    ish.set_defaults(func=cmd_instances_show)

    st = sub.add_parser("stress", help="search for instances where a method's gain ratio is lowest")
    st.add_argument("method", help="method under test, e.g. greedy-ratio")
    st.add_argument("--family", "-f", required=True, help="family giving the starting instances")
    st.add_argument(
        "--param",
        "-p",
        action="append",
        metavar="KEY=VALUE",
        help="family parameter (repeatable; default: a brute-force-sized instance)",
    )
    st.add_argument("--budget", type=float, default=60.0, help="wall-clock seconds (default 60)")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--reference", default="bruteforce", help="exact method giving the optimum")
    st.add_argument("-o", "--output", default=None, help="where to write the worst instance found")
    st.add_argument("--quiet", "-q", action="store_true")
    st.set_defaults(func=cmd_stress)

    ilib = isub.add_parser("library", help="regenerate the curated library (instances/manifest.toml), checking hashes")
    ilib.add_argument("--check", action="store_true", help="only verify content hashes, write nothing")
    ilib.add_argument("--only", action="append", metavar="NAME", help="only this entry (repeatable)")
    ilib.add_argument(
        "--manifest", default=None, help="manifest file (default: instances/manifest.toml in the current folder)"
    )
    _add_data_dir(ilib, "trace data folder for model-derived entries")
    ilib.set_defaults(func=cmd_instances_library)

    r = sub.add_parser("run", help="run a benchmark suite (TOML)")
    r.add_argument("suite", help="suite file")
    r.add_argument("--jobs", "-j", type=int, default=None, help="parallel tasks (default: number of cores)")
    r.add_argument("--executor", choices=("local", "dask"), default="local")
    r.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
    r.add_argument("--out", default=None, help="output folder (default: next to the suite file)")
    r.add_argument("--resume", action="store_true", help="skip tasks already finished in --out (records checked)")
    r.add_argument(
        "--force",
        action="store_true",
        help="use a folder holding another suite's results (moved to previous/) or files a run does not write",
    )
    r.add_argument("--wait", action="store_true", help="wait for another run writing --out instead of refusing")
    _add_data_dir(r)
    r.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    from moebench.bench.cli import run_command

    r.set_defaults(func=run_command)

    rep = sub.add_parser("report", help="tables, guarantee checks and plots from a results table")
    rep.add_argument("results", help="results folder or table (parquet/CSV)")
    rep.add_argument("--format", default="csv,latex,md,html", help="comma-separated: csv, latex, md, html")
    rep.add_argument("--out", default=None, help="output folder (default: <results>/report)")
    rep.add_argument(
        "--references", default=None, help="reference file (.solu; default: references.solu beside the results)"
    )
    from moebench.report.cli import add_compare_parser, add_selection_arguments, report_command

    add_selection_arguments(rep)
    rep.set_defaults(func=report_command)
    add_compare_parser(sub)

    ref = sub.add_parser("references", help="reference files (.solu) and their evidence")
    rsub = ref.add_subparsers(dest="references_command", required=True)
    rc = rsub.add_parser(
        "check",
        help="recompute every reference from its placement, check every bound against every known placement; "
        "exit 1 listing each inconsistency",
    )
    rc.add_argument("folders", nargs="+", metavar="FOLDER", help="results folder or instance library (references.solu)")
    rc.set_defaults(func=cmd_references_check)

    from moebench.data.cli import add_parser as add_data_parser

    add_data_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``moebench`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"moebench: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("moebench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
