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
    assert "deploy/edge.toml.example" in capsys.readouterr().err
