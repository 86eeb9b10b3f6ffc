"""`edge handheld provision` and `edge device provision` write a working key folder and never replace a key."""

import stat
from pathlib import Path

import pytest

from edge.cli import main
from edge.config.handheld import HandheldFile
from edge.keys import load_encryption_private, load_signing_private

OFFICER = "4711=Sgt. Alex Able"


@pytest.fixture
def hq_pub(tmp_path: Path) -> Path:
    assert main(["hq", "keys", "init", "--out", str(tmp_path / "hq")]) == 0
    return tmp_path / "hq" / "hq_signing.pub"


def _provision(hq_pub: Path, out: Path, *extra: str) -> int:
    return main(["handheld", "provision", "--id", "h1", "--hq-pub", str(hq_pub), "--officer", OFFICER,
                 "--out", str(out), *extra])


def test_provisioned_handheld_folder_loads_and_is_never_overwritten(hq_pub: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "handheld-h1"
    assert _provision(hq_pub, out, "--broker", "broker.example.org:18883") == 0
    loaded = HandheldFile.load(out / "handheld.toml")
    assert (loaded.link.host, loaded.link.port) == ("broker.example.org", 18883)
    load_signing_private(loaded.handheld.signing_key)
    load_encryption_private(loaded.handheld.encryption_key)
    for key in (loaded.handheld.signing_key, loaded.handheld.encryption_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert loaded.handheld.hq_public_key.read_bytes() == hq_pub.read_bytes()

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert _provision(hq_pub, out) == 2
    assert "refusing to overwrite keys" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_broker_without_port_gets_the_tls_default_and_a_bad_one_writes_nothing(
        hq_pub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _provision(hq_pub, tmp_path / "a", "--broker", "broker.example.org") == 0
    assert HandheldFile.load(tmp_path / "a" / "handheld.toml").link.port == 8883
    assert _provision(hq_pub, tmp_path / "b", "--broker", "broker.example.org:tls") == 2
    assert "expected HOST or HOST:PORT" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_config_file_already_there_stops_provisioning_before_any_key_is_made(
        hq_pub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command, config in (("handheld", "handheld.toml"), ("device", "device.toml")):
        out = tmp_path / command
        out.mkdir()
        (out / config).write_text("# someone's\n")
        args = ["--officer", OFFICER] if command == "handheld" else []
        assert main([command, "provision", "--id", "x1", "--hq-pub", str(hq_pub), "--out", str(out), *args]) == 2
        assert f"already holds {config}" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == [config]
