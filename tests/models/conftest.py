"""Fixtures for the model tests: the shipped manifest, and scripts/ on the import path for rebuild_onnx."""

import sys
from pathlib import Path

import pytest

from edge.models import Manifest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:  # scripts/rebuild-onnx's helper package is not part of the installed `edge`
    sys.path.insert(0, str(SCRIPTS))


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return Manifest.load()
