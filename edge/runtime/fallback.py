"""An engine for the shapes it was built for, ONNX Runtime for the others.

A detector engine holds one static profile per size the device configuration implies; a camera whose frames
give another size (an unexpected aspect ratio, a changed detector.long_side without a rebuild) would make
TensorRT refuse every frame and the daemon restart forever. Such a size runs on ONNX Runtime instead, said
once per size at WARNING, and the runtime's name says that it happened.
"""

import logging
from collections.abc import Callable

import numpy as np

from edge.runtime.base import Runtime
from edge.runtime.engine_file import Shape
from edge.runtime.profiles import Profile, find_profile

log = logging.getLogger(__name__)


def _dims(shapes: dict[str, Shape]) -> str:
    return ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in shapes.items())


class ShapeFallback:
    """`primary` for inputs its `profiles` accept; the rest on the runtime `open_fallback` makes on first need."""

    def __init__(self, primary: Runtime, profiles: list[Profile], open_fallback: Callable[[], Runtime],
                 model: str) -> None:
        self._primary = primary
        self._profiles = profiles
        self._open_fallback = open_fallback
        self._fallback: Runtime | None = None
        self._model = model
        self.fallback_shapes: list[dict[str, Shape]] = []

    @property
    def primary(self) -> Runtime:
        """The engine (for work that runs on the GPU beside it, e.g. the letterbox)."""
        return self._primary

    @property
    def name(self) -> str:
        if not self.fallback_shapes:
            return self._primary.name
        sizes = "; ".join(_dims(s) for s in self.fallback_shapes)
        fallback = self._fallback.name if self._fallback is not None else "onnxruntime"
        return f"{self._primary.name} + {fallback} for {sizes} (no engine profile)"

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shapes = {n: tuple(int(d) for d in a.shape) for n, a in inputs.items()}
        if find_profile(self._profiles, shapes) is not None:
            return self._primary.run(inputs)
        if shapes not in self.fallback_shapes:
            self.fallback_shapes.append(shapes)
            log.warning("%s: the TensorRT engine has no profile for %s; running that size on ONNX Runtime (CPU). "
                        "Build one with `edge engines build --config <the device's edge.toml>` (it derives the "
                        "sizes from detector.long_side) or `--detector-size WxH`", self._model, _dims(shapes))
        if self._fallback is None:
            self._fallback = self._open_fallback()
        return self._fallback.run(inputs)

    def close(self) -> None:
        try:
            self._primary.close()
        finally:
            if self._fallback is not None:
                self._fallback.close()
