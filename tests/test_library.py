"""The curated library regenerates bit for bit, and committed files match their recipes."""

from __future__ import annotations

import pytest

from moebench.errors import InputError
from moebench.instance_file import load_instance
from moebench.library import ROOT, Entry, build, load_manifest

ENTRIES = load_manifest()


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_recipe_regenerates_identically(entry: Entry):
    ((_, h, ok),) = build([entry], write=False)
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
    with pytest.raises(InputError, match=r"instance\[0\]\.tier: tier must be one of"):
        load_manifest(bad)


def test_every_entry_has_a_reference_with_its_status():
    """instances/references.solu holds, per entry (same content hash), a proven optimum or a bound."""
    from moebench.bench.references import read_references

    refs = read_references(ROOT / "references.solu")
    for e in ENTRIES:
        ref = refs.get((e.name, e.hash))  # keyed by name and content hash: a stale one does not count
        assert ref is not None, f"no reference for {e.name} with its current content hash"
        assert ref.proven or (ref.bound is not None and ref.gain is not None and ref.bound >= ref.gain - 1e-9)
