"""The curated library regenerates bit for bit, and committed files match their recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from moebench.errors import InputError
from moebench.instance_file import load_instance
from moebench.library import Entry, build, load_manifest

ROOT = Path(__file__).resolve().parents[1] / "instances"
ENTRIES = load_manifest(ROOT / "manifest.toml")


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_recipe_regenerates_identically(entry: Entry):
    ((_, h, ok),) = build([entry], ROOT, write=False)
    assert entry.hash is not None, "every manifest entry records its content hash"
    assert ok and h == entry.hash


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.store == "file"], ids=lambda e: e.name)
def test_committed_file_matches_manifest(entry: Entry):
    inst = load_instance(entry.path(ROOT))
    assert inst.name == entry.name
    assert inst.content_hash == entry.hash


def test_library_covers_tiers_and_regimes():
    tiers = {e.tier for e in ENTRIES}
    assert tiers == {"small", "medium", "hard"}
    families = {e.family for e in ENTRIES}
    assert {"uniform", "zipf", "clustered", "deepseek-v2-lite-esft"} <= families


def test_manifest_errors_name_the_entry(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text('[[instance]]\nname = "a"\nfamily = "zipf"\ntier = "easy"\n')
    with pytest.raises(InputError, match=r"instance\[0\]\.tier: must be one of small, medium, hard, got 'easy'"):
        load_manifest(bad)


def test_every_entry_has_a_reference_with_its_status():
    """instances/references.solu holds, per entry (same content hash), a proven optimum or a bound."""
    from moebench.bench.references import read_references

    refs = read_references(ROOT / "references.solu")
    for e in ENTRIES:
        ref = refs.get((e.name, e.hash))  # keyed by name and content hash: a stale one does not count
        assert ref is not None, f"no reference for {e.name} with its current content hash"
        assert ref.proven or (ref.bound is not None and ref.gain is not None and ref.bound >= ref.gain - 1e-9)


def test_data_dir_goes_only_to_families_that_read_one(tmp_path):
    """``--data-dir`` beside generated entries (issue 15: ``uniform: unknown parameter(s) data_dir``)."""
    from moebench.data import shipped_data_dir

    generated = next(e for e in ENTRIES if e.family == "uniform")
    model = next(e for e in ENTRIES if e.family == "deepseek-v2-lite-esft")
    results = build([generated, model], ROOT, write=False, data_dir=str(shipped_data_dir()))
    assert [ok for _, _, ok in results] == [True, True]
    with pytest.raises(InputError, match="not found"):
        model.generate(str(tmp_path / "missing"))


def test_the_manifest_is_found_in_the_current_folder(tmp_path, monkeypatch):
    from moebench.library import default_manifest

    monkeypatch.chdir(ROOT.parent)
    assert default_manifest() == ROOT / "manifest.toml"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="no instance library here"):
        default_manifest()
