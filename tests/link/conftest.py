"""Fixtures: a throwaway fleet (edge.demo.trial: CA, certificates, provisioned devices) and a real mosquitto with
the deploy config.

`fleet` is built once per session; `broker` is a fresh mosquitto per test on a free 127.0.0.1 port with
its own ACL copy and persistence folder, stoppable and restartable mid-test (`broker.local.stop()`,
`.start()`, `.reload()`).
"""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from link_helpers import FLEETS, IDENTITIES, SIGNING, Broker, Fleet

from edge.demo.trial import TrialFleet
from edge.hq import pki
from edge.hq.acl import write_acl
from edge.hq.broker import LocalBroker, find_mosquitto
from edge.protocol.topics import Identity


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    root = tmp_path_factory.mktemp("fleet")
    trial = TrialFleet(root / "trial")
    trial.init_ca()
    for identity in IDENTITIES:
        trial.issue(identity.role, identity.id, FLEETS.get(identity.id), registered=identity.id != "unlisted")
    trial.init_hq_keys()
    for device in SIGNING:
        trial.provision_device(device)
    # the two certificates the broker must refuse: not made by any set-up command, so made here
    pki.init_ca(root / "other-ca")
    pki.issue(root / "other-ca", Identity("device", "a"), root / "other-certs")
    two_days_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    pki.issue(trial.pki, Identity("device", "a"), root / "expired-certs", days=1, not_before=two_days_ago)
    return Fleet(trial, root / "other-certs", root / "expired-certs")


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
