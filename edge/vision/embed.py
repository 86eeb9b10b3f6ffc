"""Batched face embedding with L2 normalisation, for any embedder in the manifest."""

import numpy as np

from edge.models import ModelSpec
from edge.runtime.base import Runtime
from edge.vision.align import align_faces


class Embedder:
    """Turns aligned crops into unit vectors. Batches all faces of a frame into one call."""

    def __init__(self, runtime: Runtime, spec: ModelSpec, max_batch: int = 16) -> None:
        if spec.role != "embedder" or spec.embedding_output is None or spec.size == "dynamic":
            raise ValueError(f"{spec.name} is not an embedder with a fixed input size")
        self.runtime = runtime
        self.spec = spec
        self.size = spec.size[0]
        self.dim = spec.dim or 0
        self.max_batch = max_batch
        self._mean = np.array(spec.mean, np.float32)

    def crops(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Aligned BGR crops (N, S, S, 3) uint8 for these faces' landmarks (N, 5, 2)."""
        return align_faces(image, landmarks, self.size)

    def _blob(self, crops: np.ndarray) -> np.ndarray:
        x = crops.astype(np.float32)
        if self.spec.color == "RGB":
            x = x[..., ::-1]
        x = (x - self._mean) * self.spec.scale
        if self.spec.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def embed(self, crops: np.ndarray, flip: bool = False) -> np.ndarray:
        """(N, D) float32 unit vectors. `flip` adds the mirrored crop's embedding before normalising."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        batch = np.concatenate([crops, crops[:, :, ::-1]]) if flip else crops
        out = []
        for start in range(0, len(batch), self.max_batch):
            blob = self._blob(batch[start:start + self.max_batch])
            out.append(self.runtime.run({self.spec.input: blob})[self.spec.embedding_output])
        emb = np.concatenate(out).astype(np.float32)
        if flip:
            emb = emb[: len(crops)] + emb[len(crops):]
        return normalise(emb)


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
