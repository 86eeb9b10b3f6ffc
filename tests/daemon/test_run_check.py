"""`edge run --config FILE --check`: the config and the files it names are checked, nothing is started; what
`edge device provision` writes and every example config shipped in deploy/ and docs/ passes it."""

import re
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import EdgeConfig
from edge.config.handheld import HandheldFile
from edge.config.pin import PinHash
from edge.config.tomlio import tomllib

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "edge.toml.example"


@pytest.fixture(scope="module")
def hq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HQ's signing key (hq/) and fleet CA (pki/)."""
    root = tmp_path_factory.mktemp("hq")
    assert main(["hq", "keys", "init", "--out", str(root / "hq")]) == 0
    assert main(["hq", "pki", "init", "--out", str(root / "pki")]) == 0
    return root


def provision(hq: Path, device: str, out: Path, *options: str, certificate: bool = True) -> Path:
    """`edge device provision` and the device's certificate in OUT/tls, as the README does it."""
    assert main(["device", "provision", "--id", device, "--hq-pub", str(hq / "hq" / "hq_signing.pub"), "--out",
                 str(out), *options]) == 0
    if certificate:
        assert main(["hq", "pki", "issue", "--role", "device", "--id", device, "--ca-dir", str(hq / "pki"), "--out",
                     str(out / "tls")]) == 0
    return out / "edge.toml"


def check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["run", "--config", str(config), "--check"])
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())


def test_provisioned_edge_toml_passes_check(hq: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    config = provision(hq, "cam-01", tmp_path / "devices" / "device-cam-01", "--state-dir", str(state),
                       "--broker", "broker.example.org:8883", "--fleet", "north", certificate=False)
    code, _, err = check(config, capsys)
    assert code == 2 and "settings valid" in err and "'link.cert':" in err and "edge hq pki issue" in err
    assert "'device.signing_key'" not in err  # the keys provision wrote are there
    provision_tls = ["hq", "pki", "issue", "--role", "device", "--id", "cam-01", "--ca-dir", str(hq / "pki"), "--out",
                     str(config.parent / "tls")]
    assert main(provision_tls) == 0
    code, out, _ = check(config, capsys)
    assert code == 0 and "valid: device cam-01, embedder sface_128" in out
    cfg = EdgeConfig.model_validate(tomllib.loads(config.read_text()))
    assert (cfg.device.state_dir, cfg.device.fleet, cfg.link.host) == (state, "north", "broker.example.org")
    assert not state.exists(), "a check creates nothing"


def test_check_names_each_problem(hq: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = provision(hq, "cam-01", tmp_path / "device-cam-01")
    provision(hq, "cam-02", tmp_path / "device-cam-02")
    text = config.read_text()
    config.write_text(text.replace("device-cam-01/tls/device-cam-01", "device-cam-02/tls/device-cam-02"))
    code, _, err = check(config, capsys)
    assert code == 2 and "'link.cert':" in err and "certificate of device-cam-02, not device-cam-01" in err
    config.write_text(text.replace('signing_key = "', 'signing_key = "/nonexistent'))
    code, _, err = check(config, capsys)
    assert code == 2 and "'device.signing_key':" in err and "/nonexistent" in err
    config.write_text(text + "[match]\nthreshold = 0.2\n")
    code, _, err = check(config, capsys)
    assert code == 2 and "match.threshold 0.2 is below the floor" in err
    config.write_text(text.replace("[camera]", "[camera]\nsorce = 1"))
    code, _, err = check(config, capsys)
    assert code == 2 and "'camera.sorce': unknown key" in err


def test_shipped_example_passes_check_with_its_files_in_place(hq: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """deploy/edge.toml.example as shipped: settings valid, the /etc/edge files it names missing here (each named);
    with those paths pointing at a provisioned device's files, it passes."""
    code, _, err = check(EXAMPLE, capsys)
    assert code == 2 and "settings valid" in err
    for key in ("device.signing_key", "device.encryption_key", "device.hq_public_key", "link.ca", "link.cert",
                "link.key"):
        assert f"'{key}':" in err
    etc = provision(hq, "cam-001", tmp_path / "etc-edge").parent
    placed = tmp_path / "edge.toml"
    placed.write_text(EXAMPLE.read_text().replace("/etc/edge/", f"{etc}/").replace("/var/lib/edge",
                                                                                   str(tmp_path / "state")))
    code, out, err = check(placed, capsys)
    assert code == 0, err
    assert "valid: device cam-001" in out


def _doc_examples() -> list[tuple[str, str]]:
    blocks = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "deploy").rglob("*.md"))]:
        for n, block in enumerate(re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S)):
            blocks.append((f"{doc.relative_to(REPO)}#{n}", block))
    return blocks


@pytest.mark.parametrize(("where", "text"), _doc_examples(), ids=[w for w, _ in _doc_examples()])
def test_every_toml_example_in_the_docs_loads(where: str, text: str) -> None:
    """Examples in the docs validate with the model that reads them: handheld.toml, or a section of edge.toml
    (given a [device] id when the example shows other sections only). Elided PIN hashes are filled in."""
    data = tomllib.loads(text)
    if "handheld" in data:
        pin = PinHash.of("246810").text()
        for officer in data["handheld"].get("officers", []):
            officer["pin"] = pin
        HandheldFile.model_validate(data)
    else:
        EdgeConfig.model_validate({"device": {"id": "cam-1"}, **data})


def test_there_are_examples_to_check() -> None:
    assert len(_doc_examples()) >= 2
