"""The model manifest (engines/models.toml): which ONNX files the device ships and how to feed them."""

import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field

from edge.config.base import StrictModel
from edge.config.quality import QualityGate
from edge.config.tomlio import load_toml
from edge.errors import ModelError


def _default_engines_dir() -> Path:
    """$EDGE_ENGINES_DIR, else the checkout's engines/ (development, editable install), else /opt/edge/engines
    (where the flash overlay and the container put the models beside a wheel install)."""
    if "EDGE_ENGINES_DIR" in os.environ:
        return Path(os.environ["EDGE_ENGINES_DIR"])
    source_tree = Path(__file__).resolve().parent.parent / "engines"
    return source_tree if (source_tree / "models.toml").is_file() else Path("/opt/edge/engines")


ENGINES_DIR = _default_engines_dir()


class ModelSpec(StrictModel):
    """One model: file, hash, input contract and provenance."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Literal["detector", "embedder"]
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: str
    layout: Literal["NCHW", "NHWC"]
    color: Literal["RGB", "BGR"]
    mean: tuple[float, float, float]
    scale: float
    size: Literal["dynamic"] | tuple[int, int]
    outputs: list[str]
    embedding_output: str | None = None
    dim: int | None = None
    quality_gate: QualityGate | None = None  # embedders: from `edge eval quality`
    description: str
    provenance: str
    licence: str


class Manifest(StrictModel):
    """All models in a manifest file, with the folder their files live in."""

    folder: Path
    models: dict[str, ModelSpec]

    @classmethod
    def load(cls, folder: Path = ENGINES_DIR) -> "Manifest":
        path = folder / "models.toml"
        if not path.is_file():
            raise ModelError(f"model manifest {path} not found: point engines_dir at the folder holding models.toml")
        raw = load_toml(path)
        models = {name: ModelSpec(name=name, **spec) for name, spec in raw.get("models", {}).items()}
        return cls(folder=folder, models=models)

    def spec(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise ModelError(f"model {name!r} is not in {self.folder / 'models.toml'}; known: {sorted(self.models)}")
        return self.models[name]

    def path(self, name: str, verify: bool = True) -> Path:
        """The model's file, checked against its sha256 so an altered file never loads."""
        spec = self.spec(name)
        path = self.folder / spec.file
        if not path.is_file():
            raise ModelError(f"model file {path} is missing: restore it from git or run scripts/rebuild-onnx")
        if verify:
            digest = sha256_file(path)
            if digest != spec.sha256:
                raise ModelError(
                    f"model file {path} has sha256 {digest}, the manifest expects {spec.sha256}: "
                    "the file was altered or replaced; restore it or rebuild with scripts/rebuild-onnx"
                )
        return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


