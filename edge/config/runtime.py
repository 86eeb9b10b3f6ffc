"""[runtime] section: inference backend and threads."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RuntimeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["auto", "onnxruntime", "tensorrt"] = "auto"
    threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op threads per model")
    engines_dir: Path | None = Field(None, description="folder of models.toml and the ONNX files; default: shipped")
    engine_cache: Path | None = Field(None, description="where built TensorRT engines live")
