"""edge.capture.jetson: refusing a missing or counterfeit jetson_utils, the reopen back-off and gap
accounting, and (where NVIDIA's jetson_utils is installed) reading the demo clip through videoSource."""

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.jetson import Backoff, JetsonSource, Outage
from edge.errors import SourceError


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial=0.5, factor=2.0, maximum=30.0)
    assert [backoff.delay(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_outage_reports_its_gap_once_and_keeps_the_first_reason() -> None:
    outage = Outage(Backoff(initial=1.0, maximum=4.0))
    assert outage.resumed(5.0) is None
    outage.dropped(10.0, "capture failed (device unplugged)")
    outage.dropped(11.0, "open failed (no such device)")
    assert [outage.next_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert outage.resumed(17.5) == (7.5, "capture failed (device unplugged)", 4)
    assert outage.resumed(18.0) is None
    assert outage.next_delay() == 1.0  # a new outage starts its back-off over


@pytest.mark.skipif(importlib.util.find_spec("jetson_utils") is not None, reason="jetson_utils is installed here")
def test_missing_jetson_utils_is_named() -> None:
    with pytest.raises(SourceError, match=r"jetson_utils is missing.*dusty-nv/jetson-utils"):
        JetsonSource("csi://0")


@pytest.mark.usefixtures("pypi_jetson_utils")
def test_pypi_lookalike_is_refused() -> None:
    with pytest.raises(SourceError, match=r"PyPI's unrelated `jetson-utils`.*pip uninstall jetson-utils"):
        JetsonSource("v4l2:///dev/video0")


def test_unknown_uri_scheme_is_refused() -> None:
    with pytest.raises(SourceError, match="csi://"):
        JetsonSource("http://camera.local/stream")


def test_demo_clip_through_videosource(demo_dir: Path) -> None:
    pytest.importorskip("jetson_utils", reason="jetson_utils is not installed (build dusty-nv/jetson-utils)")
    clip = demo_dir / "short_hamilton_clip.mp4"
    source = JetsonSource(f"file://{clip}")
    reference = cv2.VideoCapture(str(clip))
    frames = 0
    try:
        while (frame := source.read()) is not None:
            ok, expected = reference.read()
            assert ok and frame.image.shape == expected.shape == (360, 640, 3) and frame.image.dtype == np.uint8
            assert frame.index == frames
            # Different decoders, same picture: BGR channel order and content agree closely.
            assert np.abs(frame.image.astype(int) - expected.astype(int)).mean() < 8
            frames += 1
    finally:
        source.close()
    assert frames == 275
