"""Fixtures for the Jetson appliance tests: the inputs scripts/flash works on, built the way a maintainer
would have them (a Linux_for_Tegra folder's files that matter, a provisioned device folder with real keys
and a certificate from the project's own CA code, a venv tarball)."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from jetson_support import DEVICE_ID, JETPACK_DPKG_STATUS, L4T_36_4_0, make_jetson_utils_tar, make_venv_tar

from edge.hq import pki
from edge.models import Manifest
from edge.protocol.topics import Identity


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return Manifest.load()


def _pem_private(key: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_public(key: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def device_dir(tmp_path: Path) -> Path:
    """What scripts/provision-device leaves: config, the device's key pairs, the pinned HQ key, and a client
    certificate issued by a fleet CA made with edge.hq.pki."""
    out = tmp_path / "staging" / DEVICE_ID
    out.mkdir(parents=True)
    (out / "device.toml").write_text(f'[device]\nid = "{DEVICE_ID}"\n')
    signing, encryption, hq = ed25519.Ed25519PrivateKey.generate(), x25519.X25519PrivateKey.generate(), \
        ed25519.Ed25519PrivateKey.generate()
    (out / "device_signing.key").write_bytes(_pem_private(signing))
    (out / "device_signing.pub").write_bytes(_pem_public(signing))
    (out / "device_encryption.key").write_bytes(_pem_private(encryption))
    (out / "device_encryption.pub").write_bytes(_pem_public(encryption))
    (out / "hq_signing.pub").write_bytes(_pem_public(hq))
    ca = pki.init_ca(tmp_path / "pki")
    pki.issue(ca, Identity("device", DEVICE_ID), out / "tls")
    return out


@pytest.fixture
def l4t_dir(tmp_path: Path) -> Path:
    """The parts of an extracted Linux_for_Tegra (after apply_binaries.sh) that scripts/flash reads."""
    l4t = tmp_path / "Linux_for_Tegra"
    for name in ("flash.sh", "tools/kernel_flash/l4t_initrd_flash.sh", "jetson-orin-nano-devkit.conf",
                 "jetson-agx-orin-devkit.conf"):
        (l4t / name).parent.mkdir(parents=True, exist_ok=True)
        (l4t / name).write_text("#!/bin/bash\n")
    etc = l4t / "rootfs" / "etc"
    etc.mkdir(parents=True)
    (etc / "nv_tegra_release").write_text(L4T_36_4_0)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\nnvidia:x:1000:1000::/home/nvidia:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\nvideo:x:44:\nnvidia:x:1000:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\nnvidia:*:19000:0:99999:7:::\n")
    (etc / "gshadow").write_text("root:*::\nvideo:!::\nnvidia:!::\n")
    dpkg = l4t / "rootfs" / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    (dpkg / "status").write_text(JETPACK_DPKG_STATUS)  # as after `apt install nvidia-jetpack` in the rootfs
    return l4t


@pytest.fixture
def jetson_utils_tar(tmp_path: Path) -> Path:
    return make_jetson_utils_tar(tmp_path / "jetson-utils.tar.gz")


@pytest.fixture
def venv_tar(tmp_path: Path) -> Path:
    return make_venv_tar(tmp_path / "edge-venv.tar.gz")


@pytest.fixture
def pypi_jetson_utils(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A `jetson_utils` package like PyPI's unrelated `jetson-utils` (none of NVIDIA's API) first on sys.path;
    gone again, from sys.path and sys.modules, after the test."""
    site = tmp_path / "site"
    (site / "jetson_utils").mkdir(parents=True)
    (site / "jetson_utils" / "__init__.py").write_text('"""Unrelated helpers."""\n\ndef hello():\n    return "hi"\n')
    cached = {n: m for n, m in sys.modules.items() if n == "jetson" or n.startswith(("jetson.", "jetson_utils"))}
    for name in cached:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in [n for n in sys.modules if n == "jetson" or n.startswith(("jetson.", "jetson_utils"))]:
        del sys.modules[name]
    sys.modules.update(cached)
