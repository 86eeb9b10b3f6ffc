"""`edge handheld provision` and `edge device provision` write a working key folder and never replace a key;
officers' PINs are asked for or read, and only their hashes are written."""

import io
import os
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.cli import main
from edge.config.handheld import HandheldFile, Officer
from edge.config.pin import PinHash
from edge.errors import ConfigError
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
    for private in (loaded.handheld.signing_key, loaded.handheld.encryption_key, out / "handheld.toml"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600  # handheld.toml holds the PIN hashes
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


PINS_TEXT = "# officer=PIN\n4711=24681357\n\n4712 = 97531864\n"
TWO = ["--officer", "4712=Cst. Bo Baker", "--two-officer-rule"]


def test_pins_from_a_file_or_stdin_are_stored_only_as_hashes(hq_pub: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pins = tmp_path / "pins.txt"
    pins.write_text(PINS_TEXT)
    assert _provision(hq_pub, tmp_path / "file", *TWO, "--pins-from", str(pins)) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(PINS_TEXT))
    assert _provision(hq_pub, tmp_path / "stdin", *TWO, "--pins-from", "-") == 0
    for out in ("file", "stdin"):
        toml = (tmp_path / out / "handheld.toml").read_text()
        assert "24681357" not in toml and "97531864" not in toml
        officers = HandheldFile.load(tmp_path / out / "handheld.toml").handheld.officers
        hashes = [PinHash.parse(o.pin or "") for o in officers]
        assert [h.matches(pin) for h, pin in zip(hashes, ("24681357", "97531864"), strict=True)] == [True, True]
        assert not hashes[0].matches("97531864")


@pytest.mark.parametrize(("pins", "extra", "message"), [
    (None, TWO, "needs a PIN for every officer, so that one person cannot decide as two; no PIN for officer(s) "
                "4711, 4712"),
    ("4711=24681357\n", TWO, "no PIN for officer(s) 4712:"),
    ("4711=24681357\n4712=24681357\n", TWO, "officers 4711 and 4712 were given the same PIN"),
    ("4711=12a4\n", [], "line 1 (officer 4711): a PIN is 6 to 12 digits (0-9), nothing else"),
    ("24681357\n", [], "line 1: expected ID=PIN"),
    ("24681357=4711\n", [], "line 1: the id there is none of the officers given with --officer (4711)"),
])
def test_missing_shared_or_malformed_pins_write_nothing_and_never_echo_a_pin(
        hq_pub: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], pins: str | None, extra: list[str],
        message: str) -> None:
    args = list(extra)
    if pins is not None:
        (tmp_path / "pins.txt").write_text(pins)
        args += ["--pins-from", str(tmp_path / "pins.txt")]
    assert _provision(hq_pub, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert message in err and "24681357" not in err and "12a4" not in err
    assert not (tmp_path / "out").exists()


def test_a_plain_pin_in_the_config_is_refused_without_echoing_it(hq_pub: Path, tmp_path: Path) -> None:
    out = tmp_path / "handheld-h1"
    assert _provision(hq_pub, out) == 0
    toml = out / "handheld.toml"
    toml.write_text(toml.read_text().replace('name = "Sgt. Alex Able" }', 'name = "Sgt. Alex Able", pin = "2468" }'))
    with pytest.raises(ConfigError, match="not a PIN hash") as refused:
        HandheldFile.load(toml)
    assert "2468" not in str(refused.value)


def _expect(fd: int, text: bytes, seen: bytearray) -> None:
    """Read the terminal until `text` appears in it (10 s at most)."""
    deadline = time.monotonic() + 10
    while text not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"{text!r} never appeared on the terminal: {bytes(seen)!r}"
        seen += os.read(fd, 4096)


def test_officer_pin_is_asked_twice_on_a_terminal_without_echo(hq_pub: Path, tmp_path: Path) -> None:
    """`--officer-pin` on a real pseudo-terminal, as an officer at HQ types it."""
    out = tmp_path / "handheld-h1"
    master, slave = os.openpty()
    process = subprocess.Popen([sys.executable, "-m", "edge", "handheld", "provision", "--id", "h1", "--hq-pub",
                                str(hq_pub), "--officer", OFFICER, "--officer-pin", "4711", "--out", str(out)],
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = bytearray()
    try:
        _expect(master, b"PIN for Sgt. Alex Able (4711), 6-12 digits: ", seen)
        os.write(master, b"24681357\n")
        _expect(master, b"PIN for Sgt. Alex Able (4711), again: ", seen)
        os.write(master, b"24681357\n")
        _expect(master, b"provisioned in", seen)
        assert process.wait(10) == 0
    finally:
        process.kill()
        os.close(master)
    assert b"24681357" not in seen  # the terminal did not echo it
    [officer] = HandheldFile.load(out / "handheld.toml").handheld.officers
    assert officer.pin is not None and PinHash.parse(officer.pin).matches("24681357")


def test_hash_pin_prints_a_hash_for_a_config_written_by_hand(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("97531864\n"))
    assert main(["handheld", "hash-pin"]) == 0
    printed = capsys.readouterr().out.strip()
    assert Officer(id="4712", name="Cst. Bo Baker", pin=printed).pin == printed
    assert PinHash.parse(printed).matches("97531864") and "97531864" not in printed
    monkeypatch.setattr(sys, "stdin", io.StringIO("975\n"))
    assert main(["handheld", "hash-pin"]) == 2
    assert "a PIN is 6 to 12 digits" in capsys.readouterr().err
