"""scripts/flash: the checks before flashing and the overlay it stages, file by file, owner and mode; then
the staging steps it prints, run for real against a root file system folder (NVIDIA's flash is not run)."""

import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from jetson_support import DEVICE_ID, REPO, make_jetson_utils_tar, make_venv_tar, run

from edge import __version__
from edge.models import Manifest

UID = 479
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="owners can only be set and checked as root")


def flash(l4t: Path, device: Path, venv: Path, overlay: Path, *extra: str, jetpack: str = "6.1",
          jetson_utils: bool = True):
    utils = venv.parent / "jetson-utils.tar.gz"
    if jetson_utils and not utils.exists():
        make_jetson_utils_tar(utils)
    return run([sys.executable, "scripts/flash", "--board", "jetson-orin-nano-devkit", "--jetpack", jetpack,
                "--l4t-dir", str(l4t), "--device-dir", str(device), "--venv-tar", str(venv),
                "--overlay-dir", str(overlay), "--dry-run", *(["--jetson-utils-tar", str(utils)] if jetson_utils
                                                              else []), *extra])


def expected_overlay(manifest: Manifest) -> dict[str, tuple[str, int, int, int]]:
    """Every path outside the venv: (kind, uid, gid, mode)."""
    d, f = "dir", "file"
    table = {
        ".": (d, 0, 0, 0o755), "etc": (d, 0, 0, 0o755),
        "etc/edge": (d, 0, UID, 0o750), "etc/edge/edge.toml": (f, 0, UID, 0o640),
        "etc/edge/device_signing.key": (f, 0, UID, 0o640), "etc/edge/device_signing.pub": (f, 0, 0, 0o644),
        "etc/edge/device_encryption.key": (f, 0, UID, 0o640), "etc/edge/device_encryption.pub": (f, 0, 0, 0o644),
        "etc/edge/hq_signing.pub": (f, 0, 0, 0o644), "etc/edge/tls": (d, 0, UID, 0o750),
        "etc/edge/tls/ca.crt": (f, 0, 0, 0o644), f"etc/edge/tls/device-{DEVICE_ID}.crt": (f, 0, 0, 0o644),
        f"etc/edge/tls/device-{DEVICE_ID}.key": (f, 0, UID, 0o640),
        "etc/systemd": (d, 0, 0, 0o755), "etc/systemd/system": (d, 0, 0, 0o755),
        "etc/systemd/system/edge.service": (f, 0, 0, 0o644),
        "etc/systemd/system/edge-engines.service": (f, 0, 0, 0o644),
        "etc/systemd/system/multi-user.target.wants": (d, 0, 0, 0o755),
        "etc/systemd/system/multi-user.target.wants/edge.service": ("link", 0, 0, 0o777),
        "etc/udev": (d, 0, 0, 0o755), "etc/udev/rules.d": (d, 0, 0, 0o755),
        "etc/udev/rules.d/70-edge-cameras.rules": (f, 0, 0, 0o644),
        "etc/udev/rules.d/71-edge-camera-ports.rules": (f, 0, 0, 0o644),
        "usr": (d, 0, 0, 0o755), "usr/lib": (d, 0, 0, 0o755), "usr/lib/sysusers.d": (d, 0, 0, 0o755),
        "usr/lib/sysusers.d/edge.conf": (f, 0, 0, 0o644),
        "opt": (d, 0, 0, 0o755), "opt/edge": (d, 0, 0, 0o755), "opt/edge/engines": (d, 0, 0, 0o755),
        "opt/edge/engines/models.toml": (f, 0, 0, 0o644), "opt/edge/docs": (d, 0, 0, 0o755),
        "opt/edge/docs/jetson.md": (f, 0, 0, 0o644),
        "var": (d, 0, 0, 0o755), "var/lib": (d, 0, 0, 0o755),
        "var/lib/edge": (d, UID, UID, 0o750), "var/lib/edge/engines": (d, UID, UID, 0o750),
    }
    for spec in manifest.models.values():
        table[f"opt/edge/engines/{spec.file}"] = (f, 0, 0, 0o644)
    # jetson-utils, as `make install` lays it out (tests/jetson/jetson_support.make_jetson_utils_tar)
    for folder in ("usr/lib/python3.10", "usr/lib/python3.10/dist-packages", "usr/lib/python3.10/dist-packages/"
                   "jetson_utils", "usr/lib/python3.10/dist-packages/jetson", "usr/lib/python3.10/dist-packages/"
                   "jetson/utils", "usr/local", "usr/local/lib", "usr/local/include", "usr/local/include/jetson-utils"):
        table[folder] = (d, 0, 0, 0o755)
    for file in ("usr/lib/python3.10/dist-packages/jetson_utils/__init__.py",
                 "usr/lib/python3.10/dist-packages/jetson_utils_python.so",
                 "usr/lib/python3.10/dist-packages/jetson/utils/__init__.py", "usr/local/lib/libjetson-utils.so",
                 "usr/local/include/jetson-utils/videoSource.h"):
        table[file] = (f, 0, 0, 0o644)
    return table


def walk(root: Path) -> dict[str, os.stat_result]:
    found = {".": root.lstat()}
    for path in root.rglob("*"):
        found[path.relative_to(root).as_posix()] = path.lstat()
    return found


def kind(st: os.stat_result) -> str:
    return "link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "file"


@ROOT_ONLY
def test_overlay_has_every_file_with_its_owner_and_mode(l4t_dir: Path, device_dir: Path, tmp_path: Path,
                                                        manifest: Manifest) -> None:
    venv = make_venv_tar(tmp_path / "venv.tar.gz", extra={
        "venv/bin/world-writable": (b"x", 0o666), "venv/bin/setuid-tool": (b"#!/bin/sh\n", 0o4755)})
    overlay = tmp_path / "overlay"
    result = flash(l4t_dir, device_dir, venv, overlay)
    assert result.returncode == 0, result.stderr
    found = walk(overlay)
    expected = expected_overlay(manifest)
    outside_venv = {p: st for p, st in found.items() if p != "opt/edge/venv" and not p.startswith("opt/edge/venv/")}
    assert sorted(outside_venv) == sorted(expected)
    for path, (want_kind, uid, gid, mode) in expected.items():
        st = found[path]
        assert (kind(st), st.st_uid, st.st_gid) == (want_kind, uid, gid), path
        if want_kind != "link":
            assert stat.S_IMODE(st.st_mode) == mode, f"{path}: {oct(stat.S_IMODE(st.st_mode))}"
    venv_paths = {p: st for p, st in found.items() if p not in outside_venv}
    assert "opt/edge/venv/bin/edge" in venv_paths
    for path, st in venv_paths.items():
        assert (st.st_uid, st.st_gid) == (0, 0), path
        if kind(st) != "link":
            assert not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID), path
    assert stat.S_IMODE(found["opt/edge/venv/bin/edge"].st_mode) == 0o755
    assert stat.S_IMODE(found["opt/edge/venv/bin/setuid-tool"].st_mode) == 0o755
    assert stat.S_IMODE(found["opt/edge/venv/bin/world-writable"].st_mode) == 0o644
    assert os.readlink(overlay / "opt/edge/venv/bin/python3") == "/usr/bin/python3.10"


def test_overlay_contents_are_the_staged_files(l4t_dir: Path, device_dir: Path, venv_tar: Path, tmp_path: Path,
                                               manifest: Manifest) -> None:
    overlay = tmp_path / "overlay"
    assert flash(l4t_dir, device_dir, venv_tar, overlay).returncode == 0
    etc = overlay / "etc" / "edge"
    assert (etc / "edge.toml").read_bytes() == (device_dir / "device.toml").read_bytes()
    assert not (etc / "device.toml").exists()
    for name in ("device_signing.key", "device_encryption.key", "hq_signing.pub", f"tls/device-{DEVICE_ID}.crt"):
        assert (etc / name).read_bytes() == (device_dir / name).read_bytes(), name
    units = overlay / "etc" / "systemd" / "system"
    for unit in ("edge.service", "edge-engines.service"):
        assert (units / unit).read_bytes() == (REPO / "deploy" / "systemd" / unit).read_bytes()
    assert os.readlink(units / "multi-user.target.wants" / "edge.service") == "/etc/systemd/system/edge.service"
    for spec in manifest.models.values():
        data = (overlay / "opt" / "edge" / "engines" / spec.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == spec.sha256
    sysusers = (overlay / "usr/lib/sysusers.d/edge.conf").read_text().splitlines()
    assert f"g edge {UID}" in sysusers and "m edge video" in sysusers
    assert f'u edge {UID}:{UID} "edge firmware" /var/lib/edge /usr/sbin/nologin' in sysusers


@ROOT_ONLY
def test_printed_staging_steps_create_the_user_and_install_the_firmware(l4t_dir: Path, device_dir: Path,
                                                                         venv_tar: Path, tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers not installed (apt install systemd)")
    overlay = tmp_path / "overlay"
    result = flash(l4t_dir, device_dir, venv_tar, overlay)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith(("board ", "overlay "))]
    assert len(lines) == 3
    copy, sysusers = shlex.split(lines[0]), shlex.split(lines[1])
    assert copy == ["cp", "-a", "--no-target-directory", str(overlay), str(l4t_dir / "rootfs")]
    assert lines[2] == (f"(cd {l4t_dir} && ./tools/kernel_flash/l4t_initrd_flash.sh --external-device nvme0n1p1 "
                        "-c tools/kernel_flash/flash_l4t_t234_nvme.xml "
                        "-p '-c bootloader/generic/cfg/flash_t234_qspi.xml' "
                        "--showlogs --network usb0 jetson-orin-nano-devkit internal)")
    for command in (copy, sysusers):
        subprocess.run(command, check=True, capture_output=True)
    rootfs = l4t_dir / "rootfs"
    passwd = (rootfs / "etc" / "passwd").read_text().splitlines()
    assert f"edge:x:{UID}:{UID}:edge firmware:/var/lib/edge:/usr/sbin/nologin" in passwd
    video = next(line for line in (rootfs / "etc" / "group").read_text().splitlines() if line.startswith("video:"))
    assert video.split(":")[3].split(",") == ["edge"]
    key = (rootfs / "etc" / "edge" / "device_signing.key").stat()
    assert (key.st_uid, key.st_gid, stat.S_IMODE(key.st_mode)) == (0, UID, 0o640)
    assert stat.S_IMODE(rootfs.stat().st_mode) == 0o755


@pytest.mark.parametrize(("change", "message"), [
    ("jetpack", "JetPack 6.1"),
    ("no-release", "apply_binaries.sh"),
    ("no-key", "device_encryption.key"),
    ("no-cert", f"device-{DEVICE_ID}.crt"),
    ("bad-config", "unknown key"),
    ("no-system-site", "--system-site-packages"),
    ("other-version", "edge 9.9.9"),
    ("python38", "3.10"),
    ("uid-taken", "--edge-uid"),
    ("overlay-not-empty", "not empty"),
])
def test_flash_refuses_what_would_make_a_broken_device(change: str, message: str, l4t_dir: Path, device_dir: Path,
                                                       tmp_path: Path) -> None:
    venv = make_venv_tar(tmp_path / "venv.tar.gz", system_site=change != "no-system-site",
                         version="9.9.9" if change == "other-version" else __version__,
                         python="3.8.10" if change == "python38" else "3.10.12")
    overlay = tmp_path / "overlay"
    jetpack = "6.2" if change == "jetpack" else "6.1"
    if change == "no-release":
        (l4t_dir / "rootfs" / "etc" / "nv_tegra_release").unlink()
    if change == "no-key":
        (device_dir / "device_encryption.key").unlink()
    if change == "no-cert":
        (device_dir / "tls" / f"device-{DEVICE_ID}.crt").unlink()
    if change == "bad-config":
        (device_dir / "device.toml").write_text(f'[device]\nid = "{DEVICE_ID}"\nbrokr = "typo"\n')
    if change == "uid-taken":
        with open(l4t_dir / "rootfs" / "etc" / "passwd", "a") as f:
            f.write(f"other:x:{UID}:{UID}::/:/usr/sbin/nologin\n")
    if change == "overlay-not-empty":
        overlay.mkdir()
        (overlay / "leftover").write_text("x")
    result = flash(l4t_dir, device_dir, venv, overlay, jetpack=jetpack)
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert result.stderr.startswith("flash: error:")
    if change != "overlay-not-empty":
        assert not (overlay / "etc").exists()


def test_flash_knows_its_boards_and_jetpacks(l4t_dir: Path, device_dir: Path, venv_tar: Path, tmp_path: Path) -> None:
    result = run([sys.executable, "scripts/flash", "--board", "jetson-nano", "--jetpack", "6.1", "--l4t-dir",
                  str(l4t_dir), "--device-dir", str(device_dir), "--venv-tar", str(venv_tar), "--dry-run"])
    assert result.returncode == 2 and "invalid choice: 'jetson-nano'" in result.stderr
    result = run([sys.executable, "scripts/flash", "--board", "jetson-agx-orin-devkit", "--jetpack", "6.1",
                  "--l4t-dir", str(l4t_dir), "--device-dir", str(device_dir), "--venv-tar", str(venv_tar),
                  "--overlay-dir", str(tmp_path / "o"), "--dry-run", "--jetson-utils-tar",
                  str(make_jetson_utils_tar(tmp_path / "ju.tar.gz"))])
    assert result.returncode == 0, result.stderr
    assert f"(cd {l4t_dir} && ./flash.sh jetson-agx-orin-devkit internal)" in result.stdout


def test_jetson_utils_is_installed_from_its_tarball(l4t_dir: Path, device_dir: Path, venv_tar: Path,
                                                   tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    assert flash(l4t_dir, device_dir, venv_tar, overlay).returncode == 0
    assert (overlay / "usr/lib/python3.10/dist-packages/jetson_utils_python.so").is_file()
    assert (overlay / "usr/local/lib/libjetson-utils.so").is_file()


@pytest.mark.parametrize(("change", "message"), [
    ("no-jetpack", "lacks TensorRT (libnvinfer10), TensorRT's Python bindings (python3-libnvinfer), the CUDA "
                   "runtime (cuda-cudart-12-*)"),
    ("l4t-only", "lacks TensorRT (libnvinfer10)"),
    ("no-jetson-utils", "has no jetson-utils"),
    ("utils-without-bindings", "jetson_utils_python.so is missing"),
    ("utils-outside-usr", "etc/ld.so.conf.d/x.conf is outside usr/"),
])
def test_flash_refuses_a_root_file_system_without_the_gpu_stack(change: str, message: str, l4t_dir: Path,
                                                                device_dir: Path, venv_tar: Path,
                                                                tmp_path: Path) -> None:
    """apply_binaries.sh installs the L4T drivers only: no CUDA, TensorRT or jetson-utils (never packaged)."""
    status = l4t_dir / "rootfs" / "var" / "lib" / "dpkg" / "status"
    if change == "no-jetpack":
        status.unlink()
    if change == "l4t-only":  # what apply_binaries.sh leaves: nvidia-l4t-* packages, nothing of JetPack
        status.write_text("Package: nvidia-l4t-core\nStatus: install ok installed\n\n"
                          "Package: libnvinfer10\nStatus: deinstall ok config-files\n\n")
    utils = tmp_path / "ju.tar.gz"
    if change == "utils-without-bindings":
        make_jetson_utils_tar(utils, drop="usr/lib/python3.10/dist-packages/jetson_utils_python.so")
    if change == "utils-outside-usr":
        make_jetson_utils_tar(utils, extra="etc/ld.so.conf.d/x.conf")
    extra = [] if change in ("no-jetson-utils",) or not utils.exists() else ["--jetson-utils-tar", str(utils)]
    result = flash(l4t_dir, device_dir, venv_tar, tmp_path / "overlay", *extra,
                   jetson_utils=change not in ("no-jetson-utils", "utils-without-bindings", "utils-outside-usr"))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr, result.stderr
    assert not (tmp_path / "overlay" / "etc").exists()


def test_install_jetpack_plans_the_chroot_install(l4t_dir: Path, device_dir: Path, venv_tar: Path,
                                                  tmp_path: Path) -> None:
    (l4t_dir / "rootfs" / "var" / "lib" / "dpkg" / "status").unlink()
    result = flash(l4t_dir, device_dir, venv_tar, tmp_path / "overlay", "--install-jetpack")
    assert result.returncode == 0, result.stderr
    rootfs = str(l4t_dir / "rootfs")
    commands = [shlex.split(line) for line in result.stdout.splitlines() if line.startswith(("mount", "chroot",
                                                                                               "umount"))]
    assert ["chroot", rootfs, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
            "--no-install-recommends", "nvidia-jetpack"] in commands
    mounted = [c[-1] for c in commands if c[0] == "mount"]
    assert mounted == [f"{rootfs}/dev", f"{rootfs}/proc", f"{rootfs}/sys", f"{rootfs}/run"]
    assert [c[-1] for c in commands if c[0] == "umount"] == mounted[::-1]


def test_only_recovery_mode_counts_as_a_board_to_flash() -> None:
    """AGX Orin's debug microcontroller (0955:7045) is on USB whenever the board is powered."""
    from importlib.machinery import SourceFileLoader
    from importlib.util import module_from_spec, spec_from_loader

    loader = SourceFileLoader("flash_script", str(REPO / "scripts" / "flash"))
    spec = spec_from_loader("flash_script", loader)
    assert spec is not None
    module = module_from_spec(spec)
    loader.exec_module(module)
    agx = module.BOARDS["jetson-agx-orin-devkit"]
    running = "Bus 001 Device 004: ID 0955:7045 NVIDIA Corp. Tegra On-Platform Operator\n"
    recovery = "Bus 001 Device 009: ID 0955:7023 NVIDIA Corp. APX\n"
    assert not module.in_recovery(running, agx)
    assert module.in_recovery(running + recovery, agx)
    nano = module.BOARDS["jetson-orin-nano-devkit"]
    assert module.in_recovery("Bus 003 Device 002: ID 0955:7523 NVIDIA Corp. APX\n", nano)
    assert not module.in_recovery(recovery, nano)
