"""Routing data: the data folder moebench ships, its manifest, importers and trace formats.

The **data folder** holds the real routing traces the model-derived families read (layout in
docs/data.md). moebench ships one inside the package, ``moebench/data/moe-traces/``: the
DeepSeek-V2-Lite ESFT per-token traces, the OLMoE/Mixtral selection counts, the manifest with
the SHA-256 of every original file, the provenance and the licence texts. A family reads

1. its ``data_dir`` parameter (``--data-dir`` on the command line), else
2. the folder named by the environment variable ``MOEBENCH_DATA``, else
3. the shipped folder, found through :mod:`importlib.resources` (never a path computed from
   the checkout or from site-packages).

Modules
-------
:mod:`moebench.data.source`
    Token paths and the train/test split by sequence: the one abstraction every real-trace
    reader returns (ESFT files, users' trace files).
:mod:`moebench.data.esft`
    The ESFT layer-file format and its derived counts.
:mod:`moebench.data.trace_format`
    The documented user trace format (``moebench-trace/1``) and the router-logit conversion.
:mod:`moebench.data.counts_format`
    Counts-only sources (``moebench-counts/1``): per-layer expert counts, optional pair counts.
:mod:`moebench.data.olmoe`
    The OLMoE routing-count pickles, read with a restricted unpickler.
:mod:`moebench.data.manifest`, :mod:`moebench.data.importer`, :mod:`moebench.data.cli`
    ``moebench data verify`` and ``moebench data import``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from moebench.errors import InputError

#: Environment variable naming the data folder (the folder holding ``MANIFEST.tsv``).
ENV_VAR = "MOEBENCH_DATA"

#: Name of the shipped data folder inside this package.
SHIPPED_FOLDER = "moe-traces"


def shipped_data_dir() -> Path:
    """The data folder installed with moebench (``moebench/data/moe-traces``).

    Raises
    ------
    InputError
        When the package is not installed as plain files (e.g. imported from a zip archive),
        so that the folder has no file-system path; ``MOEBENCH_DATA`` then names a copy.
    """
    folder = resources.files(__name__) / SHIPPED_FOLDER
    if not isinstance(folder, Path):
        raise InputError(
            f"the shipped data folder is inside an archive ({folder}); extract it and set {ENV_VAR}", where="data_dir"
        )
    return folder


def default_data_dir() -> Path:
    """``$MOEBENCH_DATA`` if set, else :func:`shipped_data_dir`."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else shipped_data_dir()


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data folder to read: ``data_dir`` if given, else :func:`default_data_dir`.

    Raises
    ------
    InputError
        When the folder does not exist.
    """
    root = Path(data_dir) if data_dir else default_data_dir()
    if not root.is_dir():
        raise InputError(
            f"data folder {root} not found; give an existing folder, or unset {ENV_VAR} to use the shipped one "
            "(docs/data.md)",
            where="data_dir",
        )
    return root


def require_files(root: Path, rel: list[str], what: str) -> None:
    """Raise :class:`InputError` naming the files of ``rel`` missing from ``root``.

    Parameters
    ----------
    root
        Data folder.
    rel
        Paths relative to ``root`` that ``what`` needs.
    what
        Who needs them (shown in the message).
    """
    missing = [r for r in rel if not (root / r).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"incomplete data folder {root}: {what} needs {shown} (see docs/data.md)", where="data_dir")
