"""Shared fixtures: the evaluation data beside the repository, and the repository's models."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    return Path(os.environ.get("EDGE_TEST_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "lfw").is_dir():
        pytest.skip(f"evaluation data not found at {root}: set EDGE_TEST_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session")
def demo_dir(data_dir: Path) -> Path:
    return data_dir / "demo"
