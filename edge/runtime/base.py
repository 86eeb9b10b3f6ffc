"""The one interface every inference backend implements."""

from typing import Protocol

import numpy as np


class Runtime(Protocol):
    """A loaded model. `run` takes and returns arrays by tensor name; shapes follow the manifest."""

    name: str
    """Backend and model, e.g. 'onnxruntime:retinaface_mnet025' (shown by bench and status)."""

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...
