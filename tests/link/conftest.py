"""Fixtures: a throwaway fleet (CA, certificates, device keys) and a real mosquitto with the deploy config.

`fleet` is built once per session; `broker` is a fresh mosquitto per test on a free 127.0.0.1 port with
its own ACL copy and persistence folder, stoppable and restartable mid-test (`broker.local.stop()`,
`.start()`, `.reload()`).
"""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from link_helpers import IDENTITIES, Broker, Fleet

from edge.hq import pki
from edge.hq.acl import write_acl
from edge.hq.broker import LocalBroker, find_mosquitto
from edge.protocol.topics import Identity


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    root = tmp_path_factory.mktemp("fleet")
    pki.init_ca(root / "ca")
    for identity in IDENTITIES:
        pki.issue(root / "ca", identity, root / "certs")
    pki.init_ca(root / "other-ca")
    pki.issue(root / "other-ca", Identity("device", "a"), root / "other-certs")
    two_days_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    pki.issue(root / "ca", Identity("device", "a"), root / "expired-certs", days=1, not_before=two_days_ago)
    (root / "device-keys").mkdir()
    signing = {}
    for device in ("a", "b"):
        key = Ed25519PrivateKey.generate()
        signing[device] = root / f"{device}.signing.pem"
        signing[device].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (root / "device-keys" / f"{device}.pub").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return Fleet(root, root / "ca", root / "certs", root / "other-certs", root / "expired-certs",
                 root / "device-keys", signing)


@pytest.fixture
def broker(fleet: Fleet, tmp_path: Path) -> Iterator[Broker]:
    try:
        find_mosquitto()
    except Exception as exc:
        pytest.skip(f"mosquitto broker not installed: {exc}")
    registry = fleet.registry()
    acl = tmp_path / "acl"
    write_acl(registry, acl)
    local = LocalBroker(tmp_path / "broker", fleet.ca, acl)
    local.start()
    try:
        yield Broker(local, fleet, acl, registry, tmp_path)
    finally:
        local.stop()
