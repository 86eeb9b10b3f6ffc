"""deploy/systemd: the units as systemd itself reads them (systemd-analyze verify and security, offline,
against the overlay scripts/flash stages), and the properties the appliance relies on."""

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jetson_support import REPO, make_jetson_utils_tar, run

UNITS = REPO / "deploy" / "systemd"
HOST_UNITS = Path("/lib/systemd/system")


def directives(unit: Path) -> dict[str, list[str]]:
    """`Section.Key` -> every value, in order (systemd allows a key more than once)."""
    found: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


@pytest.fixture
def staged_root(tmp_path: Path, l4t_dir: Path, device_dir: Path, venv_tar: Path) -> Path:
    """The overlay scripts/flash stages, plus the host's own units (for targets such as multi-user.target)."""
    if shutil.which("systemd-analyze") is None or not (HOST_UNITS / "multi-user.target").is_file():
        pytest.skip("systemd-analyze or the host's systemd units are missing (apt install systemd)")
    overlay = tmp_path / "overlay"
    result = run([sys.executable, "scripts/flash", "--board", "jetson-orin-nano-devkit", "--jetpack", "6.1",
                  "--l4t-dir", str(l4t_dir), "--device-dir", str(device_dir), "--venv-tar", str(venv_tar),
                  "--overlay-dir", str(overlay), "--dry-run", "--jetson-utils-tar",
                  str(make_jetson_utils_tar(tmp_path / "ju.tar.gz"))])
    assert result.returncode == 0, result.stderr
    shutil.copytree(HOST_UNITS, overlay / "usr" / "lib" / "systemd" / "system", symlinks=True)
    return overlay


def test_units_pass_systemd_analyze_verify(staged_root: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", f"--root={staged_root}", "edge.service",
                             "edge-engines.service"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys and bad values are only warnings


def test_units_expose_little(staged_root: Path) -> None:
    for unit, ceiling in (("edge.service", 3.0), ("edge-engines.service", 2.0)):
        result = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={staged_root}", unit],
                                capture_output=True, text=True, timeout=60)
        match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+) (\w+)", result.stdout)
        assert match, result.stdout[-500:] + result.stderr
        assert float(match.group(1)) <= ceiling, match.group(0)


def test_edge_service_runs_the_daemon_unprivileged_and_confined() -> None:
    unit = directives(UNITS / "edge.service")
    assert unit["Service.ExecStart"] == ["/opt/edge/venv/bin/edge run --config /etc/edge/edge.toml"]
    assert unit["Service.User"] == ["edge"] and unit["Service.SupplementaryGroups"] == ["video"]
    assert unit["Service.Type"] == ["notify"] and unit["Service.WatchdogSec"]
    assert unit["Service.Restart"] == ["on-failure"] and unit["Unit.StartLimitIntervalSec"] == ["0"]
    assert unit["Service.ProtectSystem"] == ["strict"] and unit["Service.ReadWritePaths"] == ["/var/lib/edge"]
    for key in ("PrivateTmp", "NoNewPrivileges", "ProtectHome", "ProtectKernelModules", "RestrictSUIDSGID"):
        assert unit[f"Service.{key}"] == ["yes"], key
    assert unit["Service.CapabilityBoundingSet"] == [""]
    assert unit["Service.DevicePolicy"] == ["closed"]
    allowed = unit["Service.DeviceAllow"]
    assert "char-video4linux rw" in allowed
    assert all(entry.startswith(("char-video4linux", "char-nv", "char-host1x", "/dev/nvmap", "char-drm",
                                 "char-media", "char-*.gpu", "/dev/nvhost-", "/dev/nvgpu/igpu0/"))
               for entry in allowed)
    assert unit["Service.BindPaths"] == ["-/tmp/argus_socket"]
    assert unit["Install.WantedBy"] == ["multi-user.target"]
    assert "edge-engines.service" in unit["Unit.Wants"][0] and "edge-engines.service" in unit["Unit.After"][0]


@pytest.mark.parametrize("name", ["edge.service", "edge-engines.service"])
def test_units_write_private_files_and_no_core_dumps(name: str) -> None:
    """A core file of the daemon would hold frames, face crops and keys: none is written."""
    unit = directives(UNITS / name)
    assert unit["Service.LimitCORE"] == ["0"] and unit["Service.UMask"] == ["0077"]


def test_engine_build_unit_is_pulled_in_not_enabled() -> None:
    unit = directives(UNITS / "edge-engines.service")
    assert unit["Service.Type"] == ["oneshot"] and unit["Service.User"] == ["edge"]
    assert "--if-missing" in unit["Service.ExecStart"][0]
    assert "--config /etc/edge/edge.toml" in unit["Service.ExecStart"][0]
    assert not any(key.startswith("Install.") for key in unit)
    assert unit["Service.PrivateNetwork"] == ["yes"]


# What an Orin running JetPack 6 has (nvgpu, os/linux/ioctl.c): its char devices are registered with
# alloc_chrdev_region(..., dev_name(dev)), the GPU platform device's name, and named by nvgpu_devnode
# ("nvhost-gpu" for the channel, "nvhost-<name>-gpu" otherwise) and nvgpu_devnode_v2 ("nvgpu/igpu0/<name>").
ORIN_GPU_GROUP = "17000000.gpu"
CUDA_NODES = ["/dev/nvhost-gpu", "/dev/nvhost-ctrl-gpu", "/dev/nvhost-as-gpu", "/dev/nvhost-power-gpu",
              "/dev/nvhost-tsg-gpu", "/dev/nvgpu/igpu0/ctrl", "/dev/nvgpu/igpu0/as", "/dev/nvgpu/igpu0/channel",
              "/dev/nvgpu/igpu0/power", "/dev/nvgpu/igpu0/tsg", "/dev/nvmap"]


def device_allowed(entries: list[str], node: str, group: str) -> bool:
    """systemd.resource-control(5): an entry is a /dev path (that node) or char-GROUP, GROUP matched with
    file-name globbing against the names in /proc/devices."""
    for entry in entries:
        spec, _, access = entry.partition(" ")
        if "r" not in access or "w" not in access:
            continue
        if spec == node or (spec.startswith("char-") and fnmatch.fnmatchcase(group, spec[len("char-"):])):
            return True
    return False


@pytest.mark.parametrize("unit", ["edge.service", "edge-engines.service"])
@pytest.mark.parametrize("node", CUDA_NODES)
def test_units_allow_the_gpu_nodes_cuda_opens(unit: str, node: str) -> None:
    entries = directives(UNITS / unit)["Service.DeviceAllow"]
    group = "misc" if node == "/dev/nvmap" else ORIN_GPU_GROUP  # nvmap is a misc device
    assert device_allowed(entries, node, group), f"{unit} denies {node} ({group})"
    assert not device_allowed(["char-nvhost* rw", "char-nvgpu* rw"], node, group)  # the list before
