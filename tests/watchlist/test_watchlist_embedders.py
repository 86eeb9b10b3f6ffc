"""Which embedder's lists a device takes: its configured one, or the one it matches with now; at start, an
installed list of any model it can run. Real bundles, a real store folder, the shipped manifest."""

from watchlist_helpers import MANIFEST

from edge.config.embedder import EmbedderConfig
from edge.config.runtime import RuntimeConfig
from edge.models import Manifest
from edge.watchlist.embedders import DeviceEmbedders

SFACE, MFN, FACERES = (MANIFEST.spec(n) for n in ("sface_128", "mobilefacenet_192", "faceres_1024"))


def on(name: str, **unavailable: str) -> DeviceEmbedders:
    """A device configured for `name` that cannot match with the models in `unavailable` (name -> why)."""
    return DeviceEmbedders.from_manifest(MANIFEST, name, unavailable.get)


def test_a_device_moves_to_its_configured_embedder_and_not_back(make_bundle, open_store, tmp_path):
    folder = tmp_path / "wl"
    old = open_store(folder, embedders=on("mobilefacenet_192"))
    assert old.install(make_bundle(1, embedder=MFN)).outcome == "installed"

    store = open_store(folder, embedders=on("sface_128"))  # new software, same folder: v1 is kept
    assert store.current is not None and store.current.header.embedder.sha256 == MFN.sha256
    assert store.install(make_bundle(2, embedder=MFN)).outcome == "installed", "updates of the list in use"
    refused = store.install(make_bundle(3, embedder=FACERES)).refusal
    assert refused is not None and refused.code == "wrong_embedder"
    assert "edge watchlist build --embedder sface_128" in refused.message
    assert 'model = "faceres_1024"' in refused.message
    assert store.current.header.version == 2
    assert store.install(make_bundle(4, embedder=SFACE)).outcome == "installed"
    back = store.install(make_bundle(5, embedder=MFN)).refusal
    assert back is not None and back.code == "wrong_embedder" and store.current.header.version == 4


def test_a_fresh_device_takes_only_its_configured_embedder(make_bundle, open_store):
    store = open_store(embedders=on("sface_128"))
    refused = store.install(make_bundle(1, embedder=MFN)).refusal
    assert refused is not None and refused.code == "wrong_embedder" and store.current is None
    assert store.install(make_bundle(2, embedder=SFACE)).outcome == "installed"


def test_a_model_the_device_cannot_run_is_refused_with_the_reason(make_bundle, open_store, tmp_path):
    folder = tmp_path / "wl"
    store = open_store(folder, embedders=on("sface_128", sface_128="no TensorRT engine /x.engine: build it"))
    refused = store.install(make_bundle(1, embedder=SFACE)).refusal
    assert refused is not None and "cannot match with now: no TensorRT engine" in refused.message

    assert open_store(folder, embedders=on("mobilefacenet_192")).install(make_bundle(2, embedder=MFN)).outcome \
        == "installed"
    for embedders, why in ((on("sface_128", mobilefacenet_192="model file missing"), "cannot match with now"),
                           (DeviceEmbedders.only("sface_128", SFACE.sha256), "no longer ships")):
        reopened = open_store(folder, embedders=embedders)
        state = reopened.state()
        assert reopened.current is None and state.status == "unusable" and why in state.message


def test_an_embedding_size_that_is_not_the_models_is_refused(make_bundle, open_store):
    store = open_store(embedders=on("mobilefacenet_192"))
    lying = make_bundle(1, embedder_sha256=SFACE.sha256)  # SFace's sha256, MobileFaceNet's 192 dimensions
    refused = store.install(lying).refusal
    assert refused is not None and refused.code == "malformed" and "192 dimensions" in refused.message


def test_a_model_file_damaged_after_start_is_caught_when_its_list_arrives(make_bundle, open_store, tmp_path):
    """The check runs per bundle, not once at start: a list for a model whose file changed is refused and the
    list in use kept (the device would otherwise install it and fail to switch)."""
    engines = tmp_path / "engines"
    engines.mkdir()
    for f in MANIFEST.folder.iterdir():
        if f.suffix in (".onnx", ".toml"):
            (engines / f.name).symlink_to(f)
    manifest = Manifest.load(engines)
    embedders = DeviceEmbedders.for_device(manifest, EmbedderConfig(model="sface_128"), RuntimeConfig())
    store = open_store(embedders=embedders)
    assert store.install(make_bundle(1, embedder=SFACE)).outcome == "installed"
    damaged = bytearray((MANIFEST.folder / SFACE.file).read_bytes())
    damaged[-100] ^= 0xFF
    (engines / SFACE.file).unlink()
    (engines / SFACE.file).write_bytes(bytes(damaged))
    refused = store.install(make_bundle(2, embedder=SFACE)).refusal
    assert refused is not None and refused.code == "wrong_embedder" and "altered or replaced" in refused.message
    assert store.current is not None and store.current.header.version == 1


def test_a_list_whose_embedder_will_not_open_is_given_up_for_the_one_before(make_bundle, open_store, tmp_path):
    """The switch to a new list's embedder failed after install: the store goes back to the previous list (kept
    on disk), says why, and keeps the failed version as the highest, so only a newer one is taken."""
    folder = tmp_path / "wl"
    store = open_store(folder, embedders=on("sface_128"))
    assert store.install(make_bundle(1, embedder=SFACE)).outcome == "installed"
    assert store.install(make_bundle(2, embedder=SFACE)).outcome == "installed"
    restored = store.fall_back("its embedder sface_128 would not open: model file altered")
    assert restored is not None and restored.header.version == 1 and store.current is restored
    state = store.state()
    assert state.status == "active" and state.installed is not None and state.installed.version == 1
    assert state.last_refusal is not None and state.last_refusal.version == 2
    assert "would not open" in state.last_refusal.message and "back on version 1" in state.last_refusal.message
    reopened = open_store(folder, embedders=on("sface_128"))  # what a restart finds on disk
    assert reopened.current is not None and reopened.current.header.version == 1
    assert reopened.install(make_bundle(2, embedder=SFACE)).refusal.code == "version_not_newer"
    assert reopened.install(make_bundle(3, embedder=SFACE)).outcome == "installed"


def test_giving_up_the_first_list_leaves_none(make_bundle, open_store):
    store = open_store(embedders=on("sface_128"))
    assert store.install(make_bundle(1, embedder=SFACE)).outcome == "installed"
    assert store.fall_back("would not open") is None
    assert store.current is None and store.state().status == "unusable"


def test_a_list_for_a_model_without_group_curves_is_refused_not_installed(make_bundle, open_store, tmp_path):
    """The device takes a list only for a model it can build a threshold policy for: with MobileFaceNet's table
    stripped of its per-group curves, its list is refused at install (a device that took it would stop at start)."""
    engines = tmp_path / "engines"
    engines.mkdir()
    for f in MANIFEST.folder.iterdir():
        if f.suffix in (".onnx", ".toml") and f.name != "calibration-mobilefacenet_192.toml":
            (engines / f.name).symlink_to(f)
    table = (MANIFEST.folder / "calibration-mobilefacenet_192.toml").read_text()
    (engines / "calibration-mobilefacenet_192.toml").write_text(table.split("\n# Per-group errors measured")[0])
    embedders = DeviceEmbedders.for_device(Manifest.load(engines), EmbedderConfig(model="mobilefacenet_192"),
                                           RuntimeConfig())
    refused = open_store(embedders=embedders).install(make_bundle(1)).refusal
    assert refused is not None and refused.code == "wrong_embedder" and "no per-group false-alarm rates" in \
        refused.message
