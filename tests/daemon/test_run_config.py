"""`edge run` refuses a bad config before touching anything, naming the key and what is allowed."""

import pytest

from edge.cli import main


@pytest.mark.parametrize(("toml", "expected"), [
    ('[device]\nid = "cam-1"\ncolour = "red"\n', "'device.colour': unknown key"),
    ('[device]\nid = "cam-1"\n[detector]\nlong_side = "big"\n', "'detector.long_side': bad value 'big'"),
    ('[device]\nid = "cam 1"\n', "'device.id': bad value 'cam 1'"),
    ('[camera]\nsource = "csi://0"\n', "'device': missing key"),
    ('[device]\nid = "cam-1"\n[track]\nmin_evidence = 0\n', "'track.min_evidence'"),
    ('[device\nid = 1', "not valid TOML"),
    ('[device]\nid = "cam-1"\n[embedder]\nenrol_flip = true\n', "renamed to embedder.enroll_flip"),
    ('[device]\nid = "cam-1"\n[match]\nthreshold = 0.2\n', "match.threshold 0.2 is below the floor"),
    ('[device]\nid = "cam-1"\n[match]\nfloor = nan\n', "'match.floor'"),
    ('[device]\nid = "cam-1"\n[embedder]\nmodel = "nope"\n', "model 'nope' is not in"),
    ('[device]\nid = "cam-1"\n[embedder]\nmodel = "retinaface_mnet025"\n', "is not an embedder"),
    ('[device]\nid = "cam-1"\n[embedder]\nmodel = "faceres_1024"\n', "faceres_1024 has no calibration table"),
    ('[device]\nid = "cam-1"\n[match]\nthreshold = true\n', "must be a number"),
    ('[device]\nid = "cam-1"\n[match]\nfloor = -1.0\nthreshold = 0.0\n', "'match.floor'"),
    ('[device]\nid = "cam-1"\n[camera]\nid = "a"\n[[cameras]]\nid = "b"\n',
     "both [camera] and [[cameras]] given"),
    ('[device]\nid = "cam-1"\n[[cameras]]\nid = "a"\n[[cameras]]\nid = "a"\n',
     "cameras.id 'a' given to more than one [[cameras]] table"),
    ('[device]\nid = "cam-1"\n[[cameras]]\nid = "a"\nqueue = 0\n', "'cameras.0.queue'"),
])
def test_bad_config_is_named(tmp_path, capsys, toml, expected):
    path = tmp_path / "edge.toml"
    path.write_text(toml)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert list(tmp_path.iterdir()) == [path], "nothing may be created when the config is refused"


def test_missing_config_says_where_to_start(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err
    assert "deploy/edge.toml.example" in err
    assert "edge device provision" in err, "the command that writes a complete, valid edge.toml is named first"


def test_the_shipped_example_config_is_accepted():
    """deploy/edge.toml.example validates, and its [match] section holds for its embedder."""
    from pathlib import Path

    from edge.config import load_config
    from edge.daemon.embedders import MatchingModels
    from edge.models import Manifest

    cfg = load_config(Path(__file__).resolve().parents[2] / "deploy" / "edge.toml.example")
    manifest = Manifest.load()
    models = MatchingModels(cfg, manifest)
    assert models.for_embedder(cfg.embedder.model).for_gallery(100).value >= models.for_embedder(
        cfg.embedder.model).floor


def test_a_configured_model_that_cannot_run_stops_only_a_device_with_nothing_else(tmp_path):
    """A damaged SFace file is logged, not fatal, while an installed list of another model can still match
    (the store decides that list's fate); with no such list the device stops, saying why."""
    from edge.config import load_config
    from edge.daemon.embedders import MatchingModels
    from edge.errors import ConfigError
    from edge.models import ENGINES_DIR, Manifest

    engines = tmp_path / "engines"
    engines.mkdir()
    for f in ENGINES_DIR.iterdir():
        if f.suffix in (".onnx", ".toml"):
            (engines / f.name).symlink_to(f)
    damaged = bytearray((ENGINES_DIR / "sface_128.onnx").read_bytes())
    damaged[-10] ^= 1
    (engines / "sface_128.onnx").unlink()
    (engines / "sface_128.onnx").write_bytes(bytes(damaged))
    path = tmp_path / "edge.toml"
    path.write_text(f'[device]\nid = "cam-1"\n[runtime]\nengines_dir = "{engines}"\n')
    cfg = load_config(path)
    models = MatchingModels(cfg, Manifest.load(engines))
    assert models.configured_problem is not None and "altered or replaced" in models.configured_problem
    with pytest.raises(ConfigError, match="no installed watchlist was enrolled with a model"):
        models.check_startable(None)
