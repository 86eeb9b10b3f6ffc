"""scripts/provision-device with the project's own commands (edge hq keys init, edge hq pki init, edge device
provision, edge hq pki issue), then scripts/flash staging what it made: a device from nothing to an overlay."""

import importlib.machinery
import importlib.util
import shutil
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest
from jetson_support import REPO, make_jetson_utils_tar, run

from edge.cli import main


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("provision_device", str(REPO / "scripts" / "provision-device"))
    spec = importlib.util.spec_from_loader("provision_device", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HQ's signing key and the fleet CA, made with the project's commands."""
    root = tmp_path_factory.mktemp("fleet")
    assert main(["hq", "keys", "init", "--out", str(root / "hq")]) == 0
    assert main(["hq", "pki", "init", "--out", str(root / "pki")]) == 0
    return root


def provision(fleet: Path, out: Path, device_id: str = "cam-0042"):
    return run([sys.executable, "scripts/provision-device", "--id", device_id, "--hq-pub",
                str(fleet / "hq" / "hq_signing.pub"), "--ca", str(fleet / "pki"), "--out", str(out)])


def test_provisioned_device_flashes(fleet: Path, tmp_path: Path, l4t_dir: Path, venv_tar: Path) -> None:
    out = tmp_path / "staging" / "cam-0042"
    result = provision(fleet, out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "device cam-0042 staged" in result.stdout
    for private in out.rglob("*.key"):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    assert (out / "hq_signing.pub").read_bytes() == (fleet / "hq" / "hq_signing.pub").read_bytes()
    assert 'signing_key = "/etc/edge/device_signing.key"' in (out / "device.toml").read_text()
    overlay = tmp_path / "overlay"
    staged = run([sys.executable, "scripts/flash", "--board", "jetson-orin-nano-devkit", "--jetpack", "6.1",
                  "--l4t-dir", str(l4t_dir), "--device-dir", str(out), "--venv-tar", str(venv_tar),
                  "--overlay-dir", str(overlay), "--dry-run", "--jetson-utils-tar",
                  str(make_jetson_utils_tar(tmp_path / "ju.tar.gz"))])
    assert staged.returncode == 0, staged.stderr
    assert "device cam-0042" in staged.stdout
    assert (overlay / "etc/edge/tls/device-cam-0042.crt").read_bytes() == (out / "tls/device-cam-0042.crt").read_bytes()


def test_staging_folder_is_never_reused(fleet: Path, tmp_path: Path) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "device.toml").write_text("[device]\nid = 'old'\n")
    result = provision(fleet, out)
    assert result.returncode == 2 and "never reused" in result.stderr


def test_missing_hq_key_and_arguments_are_refused(tmp_path: Path) -> None:
    result = run([sys.executable, "scripts/provision-device", "--id", "x", "--hq-pub", str(tmp_path / "nope.pub"),
                  "--ca", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.returncode == 2 and "edge hq keys init" in result.stderr
    result = run([sys.executable, "scripts/provision-device", "--id", "x"])
    assert result.returncode == 2 and "required" in result.stderr


def test_outputs_that_do_not_belong_together_are_caught(fleet: Path, tmp_path: Path) -> None:
    script = load_script()
    out = tmp_path / "cam-0042"
    assert provision(fleet, out).returncode == 0
    hq_pub = fleet / "hq" / "hq_signing.pub"
    script.check_outputs("cam-0042", hq_pub, out)

    other_hq = tmp_path / "other-hq"
    assert main(["hq", "keys", "init", "--out", str(other_hq)]) == 0
    with pytest.raises(script.ProvisionError, match="pinned HQ key"):
        script.check_outputs("cam-0042", other_hq / "hq_signing.pub", out)

    other_ca = tmp_path / "other-pki"
    assert main(["hq", "pki", "init", "--out", str(other_ca)]) == 0
    shutil.copyfile(other_ca / "ca.crt", out / "tls" / "ca.crt")
    with pytest.raises(script.ProvisionError, match="not issued by"):
        script.check_outputs("cam-0042", hq_pub, out)

    with pytest.raises(script.ProvisionError, match="did not write"):
        script.check_outputs("cam-0043", hq_pub, out)
