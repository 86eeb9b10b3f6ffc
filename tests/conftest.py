"""Shared fixtures: the evaluation data beside the repository, and the repository's models."""

from pathlib import Path

import pytest

from edge.cliargs import data_root


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root().resolve()
    if not (root / "lfw").is_dir():
        pytest.skip(f"evaluation data not found at {root}: set EDGE_TEST_DATA to the shared data folder")
    return root


@pytest.fixture(scope="session")
def demo_dir(data_dir: Path) -> Path:
    return data_dir / "demo"
