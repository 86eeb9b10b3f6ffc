"""Audit fixtures: a real device signing key and its public key as a PEM file."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.keys import save_public


@pytest.fixture(scope="session")
def device_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def pub_pem(tmp_path: Path, device_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "device.pub.pem"
    save_public(device_key.public_key(), path)
    return path
