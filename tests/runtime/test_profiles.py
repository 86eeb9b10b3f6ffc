"""Optimization profiles per model, picking one at run time, and the trtexec equivalent."""

import shlex
from pathlib import Path

import pytest

from edge.errors import ConfigError, ModelError
from edge.models import Manifest
from edge.runtime.profiles import build_profiles, parse_batch, parse_size, pick_profile, trtexec_command


def test_detector_gets_one_static_profile_per_size(manifest: Manifest) -> None:
    profiles = build_profiles(manifest.spec("retinaface_mnet025"), ((640, 384), (640, 640), (640, 384)))
    assert [(p["input"].min, p["input"].max) for p in profiles] == [
        ((1, 3, 384, 640), (1, 3, 384, 640)), ((1, 3, 640, 640), (1, 3, 640, 640))]


def test_embedders_get_a_batch_range_in_their_layout(manifest: Manifest) -> None:
    (nchw,) = build_profiles(manifest.spec("mobilefacenet_192"), batch=(1, 8, 32))
    assert (nchw["input"].min, nchw["input"].opt, nchw["input"].max) == (
        (1, 3, 112, 112), (8, 3, 112, 112), (32, 3, 112, 112))
    (nhwc,) = build_profiles(manifest.spec("faceres_1024"), batch=(2, 4, 16))
    assert (nhwc["input_1:0"].min, nhwc["input_1:0"].max) == ((2, 224, 224, 3), (16, 224, 224, 3))


def test_runtime_picks_the_profile_that_fits(manifest: Manifest) -> None:
    profiles = build_profiles(manifest.spec("retinaface_mnet025"), ((640, 384), (640, 640)))
    assert pick_profile(profiles, {"input": (1, 3, 384, 640)}) == 0
    assert pick_profile(profiles, {"input": (1, 3, 640, 640)}) == 1
    with pytest.raises(ModelError, match=r"input 1x3x384x640\.\.1x3x384x640.*--detector-size"):
        pick_profile(profiles, {"input": (1, 3, 360, 640)})
    (batch,) = build_profiles(manifest.spec("mobilefacenet_192"))
    assert pick_profile([batch], {"input": (32, 3, 112, 112)}) == 0
    with pytest.raises(ModelError):
        pick_profile([batch], {"input": (33, 3, 112, 112)})
    with pytest.raises(ModelError):
        pick_profile([batch], {"data": (1, 3, 112, 112)})


@pytest.mark.parametrize("text", ["640", "640x360", "0x384", "640x-32", "axb", "640x384x3"])
def test_bad_detector_sizes_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(text)


def test_sizes_and_batches_parse() -> None:
    assert parse_size("1280X736") == (1280, 736)
    assert parse_batch("1,8,32") == (1, 8, 32)
    for bad in ("8,1,32", "0,1,2", "1,2", "a,b,c"):
        with pytest.raises(ConfigError):
            parse_batch(bad)


def test_trtexec_line_builds_the_same_profiles(manifest: Manifest) -> None:
    spec = manifest.spec("faceres_1024")
    profiles = build_profiles(spec, batch=(1, 8, 32))
    line = trtexec_command(Path("engines/faceres_1024.onnx"), Path("/tmp/f.plan"), profiles, "int8", 2048,
                           Path("/var/lib/edge/engines/t.timing-cache"), Path("/var/lib/edge/engines/c.calib-cache"))
    args = shlex.split(line)
    assert args[:3] == ["trtexec", "--onnx=engines/faceres_1024.onnx", "--saveEngine=/tmp/f.plan"]
    # trtexec wants names holding ':' wrapped in single quotes, which the shell must pass through.
    assert "--minShapes='input_1:0':1x224x224x3" in args and "--maxShapes='input_1:0':32x224x224x3" in args
    assert {"--fp16", "--int8", "--calib=/var/lib/edge/engines/c.calib-cache", "--memPoolSize=workspace:2048",
            "--timingCacheFile=/var/lib/edge/engines/t.timing-cache"} <= set(args)
    detector = trtexec_command(Path("d.onnx"), Path("d.plan"), build_profiles(manifest.spec("retinaface_mnet025")),
                               "fp32", 1024)
    detector_args = shlex.split(detector)
    assert [a for a in detector_args if a.startswith("--optShapes")] == [
        "--optShapes=input:1x3x288x512", "--optShapes=input:1x3x384x512",  # detector.long_side 512, 16:9 and 4:3
        "--optShapes=input:1x3x160x160"]  # and detector.refine's crop
    assert "--fp16" not in detector_args
