"""``moebench data``: where the data folder is, check it, rebuild it from upstream clones."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from moebench.data import ENV_VAR, default_data_dir, resolve_data_dir


def cmd_path(args: argparse.Namespace) -> int:
    """Print the data folder the families read by default, and why."""
    env = os.environ.get(ENV_VAR)
    root = default_data_dir()
    print(root)
    print(f"(from ${ENV_VAR})" if env else "(the folder shipped with moebench)", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every file of a data folder against its manifest; exit 1 listing mismatches."""
    from moebench.data.manifest import verify

    root = resolve_data_dir(args.folder)
    res = verify(root)
    for line in res.problems:
        print(f"MISMATCH {line}")
    if args.verbose:
        for rel in res.unlisted:
            print(f"not in manifest: {rel}")
    note = f", {len(res.unlisted)} files not in the manifest (ignored)" if res.unlisted else ""
    print(f"{root}: {len(res.intact)} files intact, {len(res.problems)} mismatching{note}", file=sys.stderr)
    return 1 if res.problems else 0


def cmd_import(args: argparse.Namespace) -> int:
    """Rebuild a data folder from clones of deepseek-ai/ESFT and/or allenai/OLMoE."""
    from moebench.data.importer import import_data

    res = import_data(
        Path(args.output),
        None if args.esft is None else Path(args.esft),
        None if args.olmoe is None else Path(args.olmoe),
        force=args.force,
    )
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    for label in res.different:
        print(f"differs from the published data: {label}", file=sys.stderr)
    total = res.same + len(res.different)
    print(
        f"wrote {len(res.written)} files to {args.output}; {res.same} of {total} originals and derived files "
        "identical to the published data",
        file=sys.stderr,
    )
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``data`` command group to ``sub``, the top-level ``add_subparsers()`` object."""
    d = sub.add_parser("data", help="the routing-data folder: where it is, verify it, import it from upstream")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    dp = dsub.add_parser("path", help="print the data folder used by default")
    dp.set_defaults(func=cmd_path)
    dv = dsub.add_parser("verify", help="check every file against MANIFEST.tsv (exit 1 listing mismatches)")
    dv.add_argument("folder", nargs="?", default=None, help=f"data folder (default: ${ENV_VAR}, else the shipped one)")
    dv.add_argument("-v", "--verbose", action="store_true", help="also list files the manifest does not name")
    dv.set_defaults(func=cmd_verify)
    di = dsub.add_parser("import", help="rebuild a data folder from clones of deepseek-ai/ESFT and allenai/OLMoE")
    di.add_argument("--esft", default=None, help="deepseek-ai/ESFT clone (or its results/expert_scores folder)")
    di.add_argument("--olmoe", default=None, help="allenai/OLMoE clone (or its scripts/routing_output folder)")
    di.add_argument("-o", "--output", required=True, help="data folder to write")
    di.add_argument("--force", action="store_true", help="replace an existing data folder")
    di.set_defaults(func=cmd_import)
