"""udev/: the rules parse (udevadm verify where systemd >= 254 has it; the project's strict reader always),
and give the right devices the right names and permissions."""

import shutil
import subprocess
from pathlib import Path

import pytest
from jetson_support import REPO
from jetson_udev import Device, apply, parse

RULES = sorted((REPO / "udev").glob("*.rules"))
UVC = {"ID_BUS": "usb", "ID_SERIAL": "Logitech_HD_Pro_Webcam_C920_ABCD1234",
       "ID_PATH": "platform-3610000.usb-usb-0:2.1:1.0", "ID_V4L_CAPABILITIES": ":capture:"}


def evaluate(device: Device) -> Device:
    rules = [rule for path in RULES for rule in parse(path)]
    return apply(rules, device)


def test_rules_files_are_installed_in_order() -> None:
    assert [p.name for p in RULES] == ["70-edge-cameras.rules", "71-edge-camera-ports.rules"]


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_rules_parse(path: Path) -> None:
    assert parse(path)


def test_udevadm_verify_accepts_the_rules() -> None:
    udevadm = shutil.which("udevadm")
    if udevadm is None:
        pytest.skip("udevadm not installed (apt install udev)")
    help_text = subprocess.run([udevadm, "--help"], capture_output=True, text=True).stdout
    if "verify" not in help_text:
        version = subprocess.run([udevadm, "--version"], capture_output=True, text=True).stdout.strip()
        pytest.skip(f"udevadm {version} has no `verify` (needs systemd >= 254)")
    result = subprocess.run([udevadm, "verify", "--no-style", *map(str, RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("line", [
    'SUBSYSTEM="video4linux", SYMLINK+="x"',          # match-only key assigned
    'GROUP=="video"',                                 # assign-only key matched
    'ENV="x"',                                        # ENV without {name}
    'MODE="rw-rw----"',                               # not octal
    'KERNEL=="video*", GOTO="nowhere"',               # no such LABEL
    'KERNEL=="video*" GROUP="video"',                 # missing comma
    'SYMLINK+="edge/$serial"',                        # unknown substitution
    'FOO=="bar"',                                     # unknown key
])
def test_reader_rejects_broken_rules(line: str, tmp_path: Path) -> None:
    path = tmp_path / "99-broken.rules"
    path.write_text(line + "\n")
    with pytest.raises(ValueError):
        parse(path)


def test_usb_camera_capture_node_gets_serial_and_port_names() -> None:
    device = evaluate(Device("video0", env=dict(UVC)))
    assert (device.group, device.mode) == ("video", "0660")
    assert sorted(device.symlinks) == ["edge/by-serial/Logitech_HD_Pro_Webcam_C920_ABCD1234", "edge/camera-2"]


def test_usb_camera_metadata_node_gets_permissions_but_no_name() -> None:
    device = evaluate(Device("video1", env={**UVC, "ID_V4L_CAPABILITIES": ":"}))
    assert (device.group, device.mode, device.symlinks) == ("video", "0660", [])


def test_usb_camera_on_an_unlisted_port_keeps_its_serial_name() -> None:
    device = evaluate(Device("video2", env={**UVC, "ID_PATH": "platform-3610000.usb-usb-0:1:1.0"}))
    assert device.symlinks == ["edge/by-serial/Logitech_HD_Pro_Webcam_C920_ABCD1234"]


@pytest.mark.parametrize(("name", "link"), [
    ("vi-output, imx219 9-0010", ["edge/camera-0"]),
    ("vi-output, imx477 10-0010", ["edge/camera-1"]),
    ("vi-output, imx219 2-001a", []),
])
def test_csi_sensor_is_named_by_its_connector(name: str, link: list[str]) -> None:
    device = evaluate(Device("video0", env={"ID_V4L_CAPABILITIES": ":capture:"}, attrs={"name": name}))
    assert (device.group, device.mode, device.symlinks) == ("video", "0660", link)
    assert device.env["EDGE_CSI"] == "1"


def test_other_devices_and_removals_are_untouched() -> None:
    assert evaluate(Device("event3", subsystem="input")).symlinks == []
    assert evaluate(Device("event3", subsystem="input")).group == "root"
    removed = evaluate(Device("video0", action="remove", env=dict(UVC)))
    assert (removed.group, removed.symlinks) == ("root", [])
