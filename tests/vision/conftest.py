import pytest

from edge.vision.stack import VisionStack


@pytest.fixture(scope="session")
def stack() -> VisionStack:
    return VisionStack.open()
