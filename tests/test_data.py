"""The shipped data folder, ``moebench data verify`` and ``moebench data import``.

Import is tested on upstream-shaped inputs built here from the shipped files: the ESFT layer
files as ``results/expert_scores/<task>/expert_weights_<L>.txt`` (and gzip), and OLMoE pickles
written in the layout and with the types of allenai/OLMoE's ``run_routing_analysis.py``
(``list`` of ``collections.Counter`` keyed by ``numpy.int64`` ids or pairs of them).
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import io
import json
import pickle
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from moebench.cli import main
from moebench.data import ENV_VAR, default_data_dir, resolve_data_dir, shipped_data_dir
from moebench.data.esft import ESFT_COUNTS_JSON, ESFT_DIR, ESFT_LAYERS, ESFT_TASKS
from moebench.data.importer import import_data
from moebench.data.manifest import GZIP, gzip_bytes, read_manifest, verify
from moebench.data.olmoe import OLMOE_COUNTS_JSON, RUNS, CountsUnpickler, RefusedPickle, counts_json
from moebench.errors import InputError
from moebench.families import generate

SHIPPED = shipped_data_dir()
# zlib-ng (a different deflate) may compress the same content to other bytes
STOCK_ZLIB = "ng" not in zlib.ZLIB_RUNTIME_VERSION


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("moebench: error: "), err
    return err[0]


# ---- the shipped folder --------------------------------------------------------------------
def test_shipped_folder_is_the_default_and_found_through_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import moebench

    assert SHIPPED == Path(moebench.__file__).parent / "data" / "moe-traces"
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_data_dir() == SHIPPED == resolve_data_dir()
    monkeypatch.setenv(ENV_VAR, "/elsewhere")
    assert default_data_dir() == Path("/elsewhere")
    assert resolve_data_dir(str(SHIPPED)) == SHIPPED  # the parameter beats the variable


def test_shipped_folder_verifies_and_covers_every_file(capsys: pytest.CaptureFixture[str]) -> None:
    res = verify(SHIPPED)
    rows = read_manifest(SHIPPED)
    assert res.problems == [] and res.unlisted == []
    stored = [r for r in rows if r.local_path != "-"]
    assert len(res.intact) == len(stored) == 4 * 27 + 2 + 2 + 1  # ESFT, licences, derived, PROVENANCE.md
    # every OLMoE pickle the derived JSON was built from is hashed, though not stored
    assert sum(r.local_path == "-" and r.source_repo == "allenai/OLMoE" for r in rows) == 43
    assert main(["data", "verify"]) == 0
    assert "113 files intact, 0 mismatching" in capsys.readouterr().err


def test_shipped_gzip_files_are_moebench_writer_output() -> None:
    for task in ESFT_TASKS:
        path = SHIPPED / ESFT_DIR / task / "expert_weights_23.txt.gz"
        packed = path.read_bytes()
        raw = gzip.decompress(packed)
        assert packed[:10] == bytes.fromhex("1f8b0800000000000203")  # gzip -9 -n header: no name, mtime 0
        if STOCK_ZLIB:
            assert gzip_bytes(raw) == packed
        assert gzip.decompress(gzip_bytes(raw)) == raw


def test_verify_lists_every_mismatch_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "d"
    shutil.copytree(SHIPPED, copy)
    law = copy / ESFT_DIR / "law"
    (law / "summary.json").write_bytes((law / "summary.json").read_bytes().replace(b"0", b"1", 1))
    raw = gzip.decompress((law / "expert_weights_3.txt.gz").read_bytes())
    (law / "expert_weights_3.txt.gz").write_bytes(gzip.compress(raw[:-2] + b"9\n"))  # valid gzip, other content
    (law / "expert_weights_4.txt.gz").write_bytes((law / "expert_weights_4.txt.gz").read_bytes()[:5000])  # truncated
    (copy / "LICENSES" / "allenai_OLMoE_LICENSE_Apache-2.0.txt").unlink()
    (copy / "my-notes.txt").write_text("not listed")
    # recompressing with other settings changes no content: still intact
    raw5 = gzip.decompress((law / "expert_weights_5.txt.gz").read_bytes())
    (law / "expert_weights_5.txt.gz").write_bytes(gzip.compress(raw5, compresslevel=1))
    capsys.readouterr()
    assert main(["data", "verify", str(copy), "-v"]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    mismatches = sorted(line.split()[1].rstrip(":") for line in lines if line.startswith("MISMATCH"))
    assert mismatches == [
        "LICENSES/allenai_OLMoE_LICENSE_Apache-2.0.txt",
        f"{ESFT_DIR}/law/expert_weights_3.txt.gz",
        f"{ESFT_DIR}/law/expert_weights_4.txt.gz",
        f"{ESFT_DIR}/law/summary.json",
    ]
    assert "not in manifest: my-notes.txt" in lines
    assert "109 files intact, 4 mismatching, 1 files not in the manifest" in out.err


def test_verify_bad_folder_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "verify", str(tmp_path)]) == 2
    assert "no MANIFEST.tsv" in one_error_line(capsys)
    assert main(["data", "verify", str(tmp_path / "nope")]) == 2
    assert "not found" in one_error_line(capsys)
    (tmp_path / "MANIFEST.tsv").write_text("local_path\tsha\n")
    assert main(["data", "verify", str(tmp_path)]) == 2
    assert "line 1: header must be" in one_error_line(capsys)


def test_data_path_prints_the_default(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert main(["data", "path"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(SHIPPED) and "shipped" in out.err


# ---- import: ESFT --------------------------------------------------------------------------
def esft_clone(root: Path, gz_tasks: tuple[str, ...] = ()) -> Path:
    """An ESFT-shaped clone: results/expert_scores as upstream (.txt), or gzip for ``gz_tasks``."""
    for task in ESFT_TASKS:
        dst = root / "results" / "expert_scores" / task
        dst.mkdir(parents=True)
        src = SHIPPED / ESFT_DIR / task
        for layer in range(1, ESFT_LAYERS + 1):
            name = f"expert_weights_{layer}.txt"
            if task in gz_tasks:
                shutil.copy(src / f"{name}.gz", dst / f"{name}.gz")
            else:
                (dst / name).write_bytes(gzip.decompress((src / f"{name}.gz").read_bytes()))
        shutil.copy(src / "summary.json", dst / "summary.json")
    shutil.copy(SHIPPED / "LICENSES" / "deepseek-ai_ESFT_LICENSE-CODE_MIT.txt", root / "LICENSE-CODE")
    return root


@pytest.mark.slow
def test_import_esft_reproduces_the_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    clone = esft_clone(tmp_path / "ESFT", gz_tasks=("summary", "translation"))
    out = tmp_path / "data"
    res = import_data(out, esft=clone)
    assert res.notes == []
    assert res.different == [] and res.same == 4 * 27 + 3
    shipped_rows = {r.local_path: r for r in read_manifest(SHIPPED)}
    mine = read_manifest(out)
    assert len(mine) == 4 * 27 + 3  # + licence, derived counts, PROVENANCE.md
    for row in mine:
        assert row == shipped_rows[row.local_path], row.local_path
        new, old = (out / row.local_path).read_bytes(), (SHIPPED / row.local_path).read_bytes()
        if row.stored_as == GZIP and not STOCK_ZLIB:
            new, old = gzip.decompress(new), gzip.decompress(old)
        assert new == old, row.local_path
    assert (out / ESFT_COUNTS_JSON).read_bytes() == (SHIPPED / ESFT_COUNTS_JSON).read_bytes()
    assert verify(out).problems == []
    # the imported folder serves the family exactly like the shipped one
    params = {"task": "law", "layers": 3, "tokens": 200}
    assert (
        generate("deepseek-v2-lite-esft", {**params, "data_dir": str(out)}, 1).content_hash
        == generate("deepseek-v2-lite-esft", params, 1).content_hash
    )


def test_import_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "import", "-o", str(tmp_path / "x")]) == 2
    assert "--esft and/or --olmoe" in one_error_line(capsys)
    assert main(["data", "import", "--esft", str(tmp_path), "-o", str(tmp_path / "x")]) == 2
    assert "no ESFT traces found" in one_error_line(capsys)
    assert main(["data", "import", "--olmoe", str(tmp_path), "-o", str(tmp_path / "x")]) == 2
    assert "no OLMoE routing counts found" in one_error_line(capsys)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("user file")
    olmoe = olmoe_clone(tmp_path / "OLMoE", only=("mistral",))
    assert main(["data", "import", "--olmoe", str(olmoe), "-o", str(busy), "--force"]) == 2
    assert "not empty" in one_error_line(capsys)
    assert (busy / "keep.txt").read_text() == "user file"
    assert not any(p.name.startswith(".moebench-import-") for p in tmp_path.iterdir())


# ---- import: OLMoE pickles -----------------------------------------------------------------
def olmoe_clone(root: Path, only: tuple[str, ...] = tuple(RUNS)) -> Path:
    """Pickles in allenai/OLMoE's layout holding the shipped JSON's numbers, as the upstream script writes them."""
    data = json.loads((SHIPPED / OLMOE_COUNTS_JSON).read_text())["models"]
    base = root / "scripts" / "routing_output"
    for run, (key, _, _, _) in RUNS.items():
        if run not in only:
            continue
        for dom, entry in data[key]["domains"].items():
            for kind, val in entry.items():
                if "crosslayer" in kind:
                    obj = [
                        collections.Counter(
                            {
                                (np.int64(i), np.int64(j)): c
                                for i, row in enumerate(m)
                                for j, c in enumerate(row)
                                if c  # Counter.update never stores zeros
                            }
                        )
                        for m in val.values()
                    ]
                else:
                    obj = [
                        collections.Counter({np.int64(e): c for e, c in enumerate(row) if c})
                        for row in val["per_layer_counts"].values()
                    ]
                path = base / run / kind / f"{dom}.pkl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(pickle.dumps(obj, protocol=4))
    # token maps (a defaultdict, refused if read) are not count files: never read
    (base / "olmoe" / "eid2token").mkdir(parents=True, exist_ok=True)
    (base / "olmoe" / "eid2token" / "c4.pkl").write_bytes(pickle.dumps(collections.defaultdict(int)))
    shutil.copy(SHIPPED / "LICENSES" / "allenai_OLMoE_LICENSE_Apache-2.0.txt", root / "LICENSE")
    return root


def test_import_olmoe_reproduces_the_shipped_counts_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clone = olmoe_clone(tmp_path / "OLMoE")
    out = tmp_path / "data"
    assert main(["data", "import", "--olmoe", str(clone), "-o", str(out)]) == 0
    assert (out / OLMOE_COUNTS_JSON).read_bytes() == (SHIPPED / OLMOE_COUNTS_JSON).read_bytes()
    lic = "LICENSES/allenai_OLMoE_LICENSE_Apache-2.0.txt"
    assert (out / lic).read_bytes() == (SHIPPED / lic).read_bytes()
    err = capsys.readouterr().err
    # the pickles are ours, not the published bytes; the numbers, hence the JSON, are the same
    assert "differs from the published data: derived" not in err
    assert err.count("differs from the published data: allenai/OLMoE:scripts/routing_output/") == 43
    assert verify(out).problems == []
    # the imported counts serve the surrogate families
    a = generate("mixtral-counts", {"domain": "book", "data_dir": str(out)}, 0)
    assert a.content_hash == generate("mixtral-counts", {"domain": "book"}, 0).content_hash
    # --force replaces a data folder
    assert main(["data", "import", "--olmoe", str(clone), "-o", str(out), "--force"]) == 0


def test_import_flags_inputs_that_differ_from_the_published_ones(tmp_path: Path) -> None:
    """Imported anyway, but listed, and the manifest names no published commit for them."""
    clone = olmoe_clone(tmp_path / "OLMoE", only=("mistral",))
    (clone / "LICENSE").write_text("a different licence text")
    counts = clone / "scripts" / "routing_output" / "mistral" / "expert_counts" / "c4.pkl"
    layers = pickle.loads(counts.read_bytes())
    for layer in layers:  # one more token, routed to experts 0 and 1, at every recorded layer
        layer[np.int64(0)] += 1
        layer[np.int64(1)] += 1
    counts.write_bytes(pickle.dumps(layers, protocol=4))
    res = import_data(tmp_path / "out", olmoe=clone)
    assert "allenai/OLMoE:LICENSE" in res.different and OLMOE_COUNTS_JSON in res.different
    rows = {r.source_path: r for r in read_manifest(tmp_path / "out")}
    assert rows["LICENSE"].source_commit.startswith("unknown")
    assert (
        tmp_path / "out" / "LICENSES" / "allenai_OLMoE_LICENSE_Apache-2.0.txt"
    ).read_text() == "a different licence text"
    data = json.loads((tmp_path / "out" / OLMOE_COUNTS_JSON).read_text())["models"]["mixtral-8x7b-v0.1"]
    assert data["domains"]["c4"]["expert_counts"]["num_tokens"] == 208896 + 1


def test_import_small_pickles_in_the_upstream_layout(tmp_path: Path) -> None:
    """Hand-made counts of a 3-layer Mixtral run: the JSON holds exactly those numbers."""
    base = tmp_path / "routing_output" / "mistral"
    rng = np.random.default_rng(0)
    tokens = 50
    exp = rng.permuted(np.tile(np.arange(8), (tokens, 3, 1)), axis=2)[:, :, :2]  # (tokens, layer, top-2)
    layer_counters = [collections.Counter(exp[:, i, :].flatten()) for i in range(3)]
    top1 = [collections.Counter(exp[:, i, 0].flatten()) for i in range(3)]
    cross = [collections.Counter(zip(exp[:, i, :].flatten(), exp[:, i + 1, :].flatten())) for i in range(2)]
    for kind, obj in (("expert_counts", layer_counters), ("expert_counts_top1", top1)):
        (base / kind).mkdir(parents=True)
        (base / kind / "wiki.pkl").write_bytes(pickle.dumps(obj, protocol=4))
    (base / "expert_counts_crosslayer").mkdir()
    (base / "expert_counts_crosslayer" / "wiki.pkl").write_bytes(pickle.dumps(cross))
    data, read = counts_json(tmp_path / "routing_output")
    assert len(read) == 3
    dom = data["models"]["mixtral-8x7b-v0.1"]["domains"]["wiki"]
    assert dom["expert_counts"]["num_tokens"] == dom["expert_counts_top1"]["num_tokens"] == tokens
    for i, layer in enumerate(("0", "7", "15")):
        assert dom["expert_counts"]["per_layer_counts"][layer] == np.bincount(exp[:, i].ravel(), minlength=8).tolist()
        assert dom["expert_counts_top1"]["per_layer_counts"][layer] == np.bincount(exp[:, i, 0], minlength=8).tolist()
    m = np.zeros((8, 8), int)
    np.add.at(m, (exp[:, 0].ravel(), exp[:, 1].ravel()), 1)
    assert dom["expert_counts_crosslayer"]["0->7"] == m.tolist()
    assert "expert_counts_crosslayer_top1" not in dom


class Sneaky:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ([collections.Counter({np.int64(0): 1}), Sneaky()], "builtins.print"),
        ([collections.Counter({np.int64(0): np.array([1, 2])})], "numpy"),
        ([collections.Counter({np.int64(0): 1}), collections.OrderedDict()], "collections.OrderedDict"),
        ([collections.Counter({np.float64(0.5): 1})] * 3, "not an expert id"),
        ([collections.Counter({np.array(["x"], dtype=object)[0]: 1})] * 3, "not an expert id"),
    ],
)
def test_other_classes_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: object, named: str
) -> None:
    base = tmp_path / "scripts" / "routing_output" / "mistral" / "expert_counts"
    base.mkdir(parents=True)
    (base / "c4.pkl").write_bytes(pickle.dumps(payload, protocol=4))
    assert main(["data", "import", "--olmoe", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert "c4.pkl" in line and named in line
    assert "pwned" not in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_unpickler_refuses_object_dtypes_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(RefusedPickle, match="dtype"):
        CountsUnpickler(io.BytesIO(pickle.dumps(np.dtype(object)))).load()
    with pytest.raises(RefusedPickle, match=r"numpy\.(_core|core)\.multiarray\._reconstruct"):
        CountsUnpickler(io.BytesIO(pickle.dumps(np.arange(3)))).load()
    ok = pickle.dumps([collections.Counter({np.int64(3): np.int64(7)})])
    assert CountsUnpickler(io.BytesIO(ok)).load() == [collections.Counter({3: 7})]
    bad = tmp_path / "scripts" / "routing_output" / "olmoe" / "expert_counts"
    bad.mkdir(parents=True)
    (bad / "c4.pkl").write_bytes(ok[:-3])
    with pytest.raises(InputError, match="not a readable pickle"):
        counts_json(tmp_path / "scripts" / "routing_output")


def test_manifest_hashes_are_those_of_the_originals() -> None:
    """Spot check against hashes computed here from the stored bytes (not from the manifest code)."""
    rows = {r.local_path: r for r in read_manifest(SHIPPED)}
    for rel in (f"{ESFT_DIR}/intent/expert_weights_1.txt.gz", ESFT_COUNTS_JSON, OLMOE_COUNTS_JSON):
        data = (SHIPPED / rel).read_bytes()
        if rel.endswith(".gz"):
            data = gzip.decompress(data)
        assert rows[rel].sha256 == hashlib.sha256(data).hexdigest() and rows[rel].size == len(data)
    esft = rows[f"{ESFT_DIR}/intent/expert_weights_1.txt.gz"]
    assert (esft.source_repo, esft.source_commit) == ("deepseek-ai/ESFT", "579a7711e4b332b4c57b47e378a0cf240d85caa6")
    # the published hash of the upstream blob (checked against git when the data was copied)
    assert esft.sha256 == "3d5d33491b4e9493ced789e530984ffb81a3e301bd11fff0b32aa4046e422206"
