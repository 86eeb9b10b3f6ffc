"""Engines are named and stamped for one model, TensorRT version and GPU; anything else is refused with
a message that says how to rebuild. Pure functions: these run without TensorRT."""

from pathlib import Path

import pytest

from edge.errors import ModelError
from edge.models import Manifest
from edge.runtime.engine_file import (
    EngineMeta,
    ShapeRange,
    check_engine,
    engine_file_name,
    gpu_slug,
    pack_engine,
    plan_digest,
    read_engine,
    rebuild_hint,
)

TRT = "10.3.0.30"
GPU = "orin-sm87-8sm"
PLAN = b"\x00plan bytes as TensorRT serializes them\xff" * 50


def meta_for(manifest: Manifest, model: str, **changes: object) -> EngineMeta:
    spec = manifest.spec(model)
    fields = dict(model=model, model_sha256=spec.sha256, tensorrt=TRT, gpu=GPU, precision="fp16",
                  profiles=[{spec.input: ShapeRange(min=(1, 3, 112, 112), opt=(8, 3, 112, 112),
                                                    max=(32, 3, 112, 112))}],
                  inputs=[spec.input], outputs=list(spec.outputs), plan_sha256=plan_digest(PLAN),
                  built_at="2025-01-01T00:00:00+00:00", build_seconds=61.5)
    fields.update(changes)
    return EngineMeta(**fields)  # type: ignore[arg-type]


def write_engine(folder: Path, meta: EngineMeta, plan: bytes = PLAN, name: str | None = None) -> Path:
    path = folder / (name or engine_file_name(meta.model_sha256, meta.tensorrt, meta.gpu))
    path.write_bytes(pack_engine(meta, plan))
    return path


def load_and_check(path: Path, manifest: Manifest, model: str, tensorrt: str = TRT, gpu: str = GPU) -> EngineMeta:
    spec = manifest.spec(model)
    hint = rebuild_hint(model, path.parent)
    meta, _ = read_engine(path, hint)
    check_engine(path, meta, model=model, model_sha256=spec.sha256, input_name=spec.input, outputs=spec.outputs,
                 tensorrt_version=tensorrt, gpu=gpu, rebuild_hint=hint)
    return meta


@pytest.mark.parametrize(("name", "cc", "sms", "slug"), [
    ("Orin", (8, 7), 8, "orin-sm87-8sm"),
    ("Orin", (8, 7), 4, "orin-sm87-4sm"),
    ("NVIDIA Tegra X1", (5, 3), 1, "tegra-x1-sm53-1sm"),
    ("NVIDIA GeForce RTX 4090", (8, 9), 128, "geforce-rtx-4090-sm89-128sm"),
])
def test_gpu_slug_tells_boards_apart(name: str, cc: tuple[int, int], sms: int, slug: str) -> None:
    assert gpu_slug(name, cc, sms) == slug


def test_engine_name_carries_model_hash_tensorrt_and_gpu(manifest: Manifest) -> None:
    sha = manifest.spec("mobilefacenet_192").sha256
    assert engine_file_name(sha, TRT, GPU) == f"{sha[:16]}-trt{TRT}-{GPU}.engine"


def test_engine_round_trips_its_header_and_plan(manifest: Manifest, tmp_path: Path) -> None:
    meta = meta_for(manifest, "mobilefacenet_192")
    path = write_engine(tmp_path, meta)
    got, plan = read_engine(path, "rebuild")
    assert (got, plan) == (meta, PLAN)
    assert load_and_check(path, manifest, "mobilefacenet_192") == meta


@pytest.mark.parametrize(("case", "reason"), [
    ("other model", "built from model sha256"),
    ("other tensorrt", "built with TensorRT 10.0.1.6, this device has 10.3.0.30"),
    ("other gpu", "built for GPU orin-sm87-4sm, this device is orin-sm87-8sm"),
    ("renamed", "does not match its header"),
    ("other input", "inputs are"),
])
def test_mismatched_engine_is_refused_with_how_to_rebuild(case: str, reason: str, manifest: Manifest,
                                                          tmp_path: Path) -> None:
    sha = manifest.spec("faceres_1024").sha256
    meta = {
        "other model": meta_for(manifest, "mobilefacenet_192", model_sha256=sha),
        "other tensorrt": meta_for(manifest, "mobilefacenet_192", tensorrt="10.0.1.6"),
        "other gpu": meta_for(manifest, "mobilefacenet_192", gpu="orin-sm87-4sm"),
        "renamed": meta_for(manifest, "mobilefacenet_192"),
        "other input": meta_for(manifest, "mobilefacenet_192", inputs=["data"]),
    }[case]
    # An engine for another board or model copied in under this device's expected name, or renamed.
    expected = engine_file_name(manifest.spec("mobilefacenet_192").sha256, TRT, GPU)
    name = expected if case != "renamed" else expected.replace("8sm", "16sm")
    path = write_engine(tmp_path, meta, name=name)
    with pytest.raises(ModelError) as err:
        load_and_check(path, manifest, "mobilefacenet_192")
    assert reason in str(err.value)
    assert f"edge engines build --model mobilefacenet_192 --engine-dir {tmp_path}" in str(err.value)


def test_plain_trtexec_plan_is_refused(manifest: Manifest, tmp_path: Path) -> None:
    path = tmp_path / engine_file_name(manifest.spec("mobilefacenet_192").sha256, TRT, GPU)
    path.write_bytes(PLAN)
    with pytest.raises(ModelError, match="not an edge engine"):
        load_and_check(path, manifest, "mobilefacenet_192")


@pytest.mark.parametrize("damage", ["truncated plan", "flipped plan byte", "truncated header", "garbage header"])
def test_damaged_engine_is_refused(damage: str, manifest: Manifest, tmp_path: Path) -> None:
    meta = meta_for(manifest, "mobilefacenet_192")
    path = write_engine(tmp_path, meta)
    data = bytearray(path.read_bytes())
    header_end = len(data) - len(PLAN)
    if damage == "truncated plan":
        data = data[:-10]
    elif damage == "flipped plan byte":
        data[header_end + 5] ^= 0xFF
    elif damage == "truncated header":
        data = data[:header_end - 20]
    else:
        data[20:40] = b"{{{{{{{{{{{{{{{{{{{{"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="edge engines build --model mobilefacenet_192"):
        load_and_check(path, manifest, "mobilefacenet_192")
