"""edge.capture.jetson: refusing a missing or counterfeit jetson_utils, the reopen back-off and gap
accounting, and (where NVIDIA's jetson_utils is installed) reading the demo clip through videoSource."""

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from jetson_utils_rules import Calls, make_module

from edge.capture.jetson import Backoff, JetsonSource, Outage, v4l2_uri
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


@pytest.fixture
def clip(demo_dir: Path) -> Path:
    return demo_dir / "short_hamilton_clip.mp4"


def _with_rules(monkeypatch: pytest.MonkeyPatch, clip: Path, *, head: bool) -> Calls:
    module, calls = make_module(str(clip), head=head)
    monkeypatch.setitem(sys.modules, "jetson_utils", module)
    return calls


@pytest.mark.parametrize("head", [False, True], ids=["pinned-4152d8a", "head"])
def test_yuv_source_gives_bgr_frames_on_its_own_nonblocking_stream(monkeypatch: pytest.MonkeyPatch, clip: Path,
                                                                   head: bool) -> None:
    """Captured as rgb8 (YUV sources cannot give bgr8), made BGR on the GPU, and only capture's own stream is
    waited for: never cudaDeviceSynchronize, which would wait for TensorRT's work too."""
    calls = _with_rules(monkeypatch, clip, head=head)
    source = JetsonSource(f"file://{clip}")
    reference = cv2.VideoCapture(str(clip))
    try:
        for _ in range(5):
            frame = source.read()
            ok, expected = reference.read()
            assert frame is not None and ok
            assert np.array_equal(frame.image, expected)  # BGR, channel order right
    finally:
        source.close()
    assert calls.nonblocking == [True]
    stream = 0x7001
    assert set(calls.capture_streams) == {stream} and set(calls.synchronized) == {stream}
    assert calls.device_synchronize == 0


def test_file_timestamps_follow_the_stream_at_29_97(monkeypatch: pytest.MonkeyPatch, clip: Path) -> None:
    """GetFrameRate is an integer (29 for 29.97): timestamps come from the buffers' PTS, from the first frame."""
    _with_rules(monkeypatch, clip, head=True)
    source = JetsonSource(f"file://{clip}")
    try:
        stamps = [frame.timestamp for frame in iter(source.read, None)]
    finally:
        source.close()
    assert stamps[0] == 0.0
    assert stamps[-1] == pytest.approx((len(stamps) - 1) * 1001 / 30000, abs=1e-6)
    assert abs(stamps[-1] - (len(stamps) - 1) / 29) > 0.01  # what the integer rate gave


def test_udev_name_is_resolved_at_every_open(monkeypatch: pytest.MonkeyPatch, clip: Path, tmp_path: Path) -> None:
    """jetson-utils parses v4l2:// with sscanf("/dev/video%i"): the udev symlink is resolved on open and again on
    reopen, following the node it points to then."""
    calls = _with_rules(monkeypatch, clip, head=True)
    link = tmp_path / "edge" / "camera-0"
    link.parent.mkdir()
    link.symlink_to("/dev/video3")
    source = JetsonSource(f"v4l2://{link}", backoff=Backoff(initial=0.0, maximum=0.0))
    try:
        assert source.read() is not None
        link.unlink()
        link.symlink_to("/dev/video5")  # unplugged and back under another number
        source._drop("capture failed (test)")
        assert source.read() is not None
    finally:
        source.close()
    assert calls.opened == ["v4l2:///dev/video3", "v4l2:///dev/video5"]


def test_udev_name_that_is_not_a_video_node_is_explained(tmp_path: Path) -> None:
    target = tmp_path / "not-video"
    target.write_text("")
    link = tmp_path / "camera-0"
    link.symlink_to(target)
    with pytest.raises(SourceError, match="not a /dev/videoN node"):
        v4l2_uri(f"v4l2://{link}")
    with pytest.raises(SourceError, match="does not exist"):
        v4l2_uri(f"v4l2://{tmp_path / 'camera-9'}")
    assert v4l2_uri("csi://0") == "csi://0"


def test_frames_are_the_mapped_buffers_and_none_is_rewritten_while_held(monkeypatch: pytest.MonkeyPatch,
                                                                        clip: Path) -> None:
    """A frame's pixels are the mapped buffer the GPU converted into (no copy; `Frame.device` points at them for
    the GPU letterbox). A buffer is lent to one frame until that frame is dropped: frames held downstream keep
    their pictures; with every buffer out the next frame is a plain copy; dropped frames give theirs back."""
    _with_rules(monkeypatch, clip, head=True)
    source = JetsonSource(f"file://{clip}", frame_buffers=3)
    reference = cv2.VideoCapture(str(clip))
    expected = [reference.read()[1] for _ in range(8)]
    try:
        held = [source.read() for _ in range(4)]
        assert all(f is not None for f in held)
        lent = [f for f in held[:3] if f is not None]
        assert all(f.device is not None and f.device.pointer == f.image.ctypes.data for f in lent)
        assert len({f.device.pointer for f in lent if f.device}) == 3  # three buffers, one per frame
        copied = held[3]
        assert copied is not None and copied.device is None and copied.image.flags.owndata  # all lent: a copy
        for i, frame in enumerate(held):
            assert frame is not None and np.array_equal(frame.image, expected[i])  # nothing overwritten
        pointers = {f.device.pointer for f in lent if f.device}
        del held, lent, copied, frame
        again = [source.read() for _ in range(3)]
        assert {f.device.pointer for f in again if f is not None and f.device} == pointers  # given back, reused
        for i, frame in enumerate(again, start=4):
            assert frame is not None and np.array_equal(frame.image, expected[i])
    finally:
        source.close()


def test_a_frame_collected_while_the_pool_is_locked_does_not_hang_capture() -> None:
    """A lent frame caught in a reference cycle comes back when the cyclic GC runs, and that can be at any
    allocation, also inside FramePool.take's locked region on the capture thread: the give-back must not wait
    for the lock its own thread holds (a plain Lock hung capture there for good)."""
    import threading
    import weakref

    from edge.capture.pool import FramePool

    pool = FramePool(lambda w, h: np.zeros((h, w, 3), np.uint8), limit=2)
    buffer = pool.take(8, 4)
    view = buffer.view()
    pool.lend(view, buffer)
    gone = weakref.ref(view)
    del buffer

    def collected_inside_the_lock() -> None:
        nonlocal view
        with pool._lock:  # what take() holds when the GC runs there
            view = None
        assert gone() is None

    worker = threading.Thread(target=collected_inside_the_lock, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "the frame's give-back waits for the lock its own thread holds"
    assert pool.lent == 0 and pool.take(8, 4) is not None
