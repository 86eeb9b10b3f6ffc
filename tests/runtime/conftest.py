"""Fixtures for the runtime tests (engine file, profiles, verification, TensorRT): the shipped manifest, and the
face aligner edge.engines hands the runtime (an embedder is checked on aligned faces)."""

from collections.abc import Iterator

import pytest

from edge.engines.faces import FaceAligner
from edge.models import Manifest


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    return Manifest.load()


@pytest.fixture(scope="session")
def aligner(manifest: Manifest) -> Iterator[FaceAligner]:
    aligner = FaceAligner(manifest, threads=2)
    yield aligner
    aligner.close()
