"""A throwaway fleet on loopback for the daemon's end-to-end tests (skipped where mosquitto is not installed)."""

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.demo.trial import TrialFleet
from edge.hq.broker import find_mosquitto


@pytest.fixture
def make_fleet(tmp_path: Path) -> Callable[[str, str], TrialFleet]:
    """make_fleet(fleet, device): keys, PKI, a provisioned device and HQ's ingest, publisher and pairing clients."""
    try:
        find_mosquitto()
    except Exception as exc:
        pytest.skip(f"mosquitto not installed: {exc}")

    def make(fleet: str, device: str) -> TrialFleet:
        return TrialFleet(tmp_path / "fleet", fleet=fleet).create(devices=(device,),
                                                                  hq_clients=("ingest", "publisher", "pairing"))

    return make
