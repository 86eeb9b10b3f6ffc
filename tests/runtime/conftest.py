"""Fixtures for the runtime tests (engine file, profiles, verification, TensorRT): the shipped manifest."""

import pytest

from edge.models import Manifest


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return Manifest.load()
