"""A large watchlist installs without holding its bundle or its plaintext twice, nor its parsed index beside the
gallery (Python heap, via tracemalloc).

Resident-memory figures for 100,000 and 1,000,000 entries come from `edge bench watchlist`.
"""

import tracemalloc
from pathlib import Path

import pytest
from watchlist_helpers import MakeBundle, OpenStore

ENTRIES = 20_000  # a ~10.7 MB bundle: large enough that a whole copy stands out over fixed buffers


@pytest.fixture(scope="module")
def large_bundle(make_bundle: MakeBundle) -> bytes:
    return make_bundle(1, n=ENTRIES)


@pytest.mark.parametrize("given", ["file", "bytes"])
def test_large_bundle_installs_with_bounded_extra_memory(given: str, large_bundle: bytes, open_store: OpenStore,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "large.bundle"
    path.write_bytes(large_bundle)
    bundle = path if given == "file" else large_bundle
    store = open_store()
    tracemalloc.start()
    try:
        result = store.install(bundle)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.outcome == "installed" and store.current.gallery.size == ENTRIES
    # What install needs beyond what it keeps (the gallery and metadata) stays under 0.4x the bundle: a whole
    # copy of the bundle or of its plaintext would take it past that (one-shot decryption needed 6x), and so would
    # the parsed index held beside its text and the gallery (a single decryption pass needed 0.66x; two passes
    # and the index parsed a column at a time need 0.2x).
    assert peak - kept < 0.4 * len(large_bundle), (peak - kept, len(large_bundle))
