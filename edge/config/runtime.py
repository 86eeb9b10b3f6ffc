"""[runtime] section: inference backend and threads."""

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.config.base import StrictModel

ENGINES_SUBDIR = "engines"  # under device.state_dir: where built engines live unless engine_cache says otherwise


class RuntimeConfig(StrictModel):
    backend: Literal["auto", "onnxruntime", "tensorrt"] = "auto"
    threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op threads per model")
    engines_dir: Path | None = Field(None, description="folder of models.toml and the ONNX files; default: shipped")
    engine_cache: Path | None = Field(None, description="where built TensorRT engines live; default: "
                                                        "<device.state_dir>/engines")
