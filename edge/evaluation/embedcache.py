"""One embedding per evaluation image, computed once per run (and optionally kept on disk between runs).

Every image goes through the device's own path: `stack.detector` (RetinaFace at the configured input
size), the face the photo is about (`select_face(..., "central")`), `Embedder.crops` (five-point
alignment) and `Embedder.embed` (batched, optionally with the mirrored crop added). Detections are kept
separately from embeddings, so a second embedder or flip setting reuses the detector's work.
"""

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.capture.opencv import read_image
from edge.errors import SourceError
from edge.fsio import write_atomic
from edge.runtime.progress import progress
from edge.vision.select import select_face
from edge.vision.stack import VisionStack

CHECKPOINT = 2000  # images between saves of the disk cache


@dataclass(frozen=True)
class Face:
    """The selected face of one image (landmarks (5, 2) and detection score), or why there is none."""

    landmarks: np.ndarray | None
    score: float
    reason: str | None


@dataclass(frozen=True)
class Embedded:
    """Embeddings (N, D) of a list of images, in order; rows of failed images are zero and `ok` is False."""

    embeddings: np.ndarray
    ok: np.ndarray
    failed: dict[str, str]  # image path as given -> reason (no_face, unreadable)


class EmbedCache:
    """Faces and embeddings by image path for one VisionStack; `cache_dir` keeps them across runs.

    On-disk files are keyed by the detector's and embedder's sha256 and the settings that change the
    result, so a cache made with another model or input size is never reused.
    """

    def __init__(self, stack: VisionStack, cache_dir: Path | None = None, progress: bool = True) -> None:
        self.stack = stack
        self.cache_dir = cache_dir
        self.progress = progress
        det = stack.detector
        self.faces_key = _key(stack.detector_sha256, det.long_side, det.min_score, det.nms_iou, "central",
                              *(("refine",) if det.refines else ()))
        self._faces: dict[str, Face] = self._load_faces()
        self._embeddings: dict[bool, dict[str, np.ndarray]] = {}

    @property
    def embedder(self) -> str:
        return self.stack.embedder.spec.name

    def embed(self, paths: Sequence[Path], flip: bool = False, desc: str = "embedding") -> Embedded:
        """Embeddings of these images (flip: mirrored crop added, as the Enroller does)."""
        keys = [image_key(p) for p in paths]
        if flip not in self._embeddings:
            self._embeddings[flip] = self._load_embeddings(flip)
        known = self._embeddings[flip]
        todo = list(dict.fromkeys(k for k in keys if k not in known and self._face_ok(k)))
        if todo:
            self._compute(todo, flip, known, desc)
        dim = self.stack.embedder.dim
        out = np.zeros((len(keys), dim), np.float32)
        ok = np.zeros(len(keys), bool)
        failed: dict[str, str] = {}
        for i, k in enumerate(keys):
            if k in known:
                out[i], ok[i] = known[k], True
            else:
                failed[str(paths[i])] = self._faces[k].reason or "no_face"
        return Embedded(out, ok, failed)

    def faces(self, paths: Sequence[Path], desc: str = "detecting") -> list[Face]:
        """The selected face of each image (landmarks on the photo itself), detected where not known yet."""
        keys = [image_key(p) for p in paths]
        todo = [k for k in dict.fromkeys(keys) if k not in self._faces]
        for key in progress(todo, desc=desc, unit="img", enabled=self.progress):
            try:
                self._faces[key] = self.detect(read_image(Path(key.rsplit("|", 2)[0])))
            except SourceError:
                self._faces[key] = Face(None, 0.0, "unreadable")
        if todo:
            self._save_faces()
        return [self._faces[k] for k in keys]

    def _face_ok(self, key: str) -> bool:
        face = self._faces.get(key)
        return face is None or face.landmarks is not None

    def _compute(self, keys: list[str], flip: bool, known: dict[str, np.ndarray], desc: str) -> None:
        """Detect (where not known yet), align and embed, batching crops as the pipeline does."""
        emb = self.stack.embedder
        batch_keys: list[str] = []
        batch_crops: list[np.ndarray] = []

        def flush() -> None:
            if batch_keys:
                vectors = emb.embed(np.stack(batch_crops), flip=flip)
                known.update(zip(batch_keys, vectors, strict=True))
                batch_keys.clear()
                batch_crops.clear()

        new_faces = False
        for n, key in enumerate(progress(keys, desc=f"{desc} ({self.embedder}{', flip' if flip else ''})", unit="img",
                                         enabled=self.progress), 1):
            if n % CHECKPOINT == 0:  # an interrupted run keeps what it has done
                flush()
                self._save_faces()
                self._save_embeddings(flip, known)
            try:
                image = read_image(Path(key.rsplit("|", 2)[0]))
            except SourceError:
                self._faces[key] = Face(None, 0.0, "unreadable")
                new_faces = True
                continue
            face = self._faces.get(key)
            if face is None:
                face = self._faces[key] = self.detect(image)
                new_faces = True
            if face.landmarks is None:
                continue
            batch_keys.append(key)
            batch_crops.append(emb.crops(image, face.landmarks[None])[0])
            if len(batch_keys) >= emb.max_batch:
                flush()
        flush()
        if new_faces:
            self._save_faces()
        self._save_embeddings(flip, known)

    def detect(self, image: np.ndarray) -> Face:
        detector = self.stack.detector
        det = detector(image)
        index, reason = select_face(det, image.shape, "central")
        if index is None:
            return Face(None, 0.0, reason)
        face = detector.refine(image, det.take(np.array([index])))  # as the pipeline does before embedding
        return Face(face.landmarks[0].copy(), float(face.scores[0]), None)

    # -- disk ------------------------------------------------------------------------------------------

    def _file(self, kind: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / f"{kind}.npz"

    def _emb_kind(self, flip: bool) -> str:
        return "emb-" + _key(self.stack.embedder_sha256, self.faces_key, "flip" if flip else "plain")

    def _load_faces(self) -> dict[str, Face]:
        data = _load(self._file("faces-" + self.faces_key), ("paths", "landmarks", "scores", "reasons"))
        if data is None:
            return {}
        return {str(k): Face(None if r else lm, float(s), str(r) or None)
                for k, lm, s, r in zip(data["paths"], data["landmarks"], data["scores"], data["reasons"], strict=True)}

    def _save_faces(self) -> None:
        path = self._file("faces-" + self.faces_key)
        if path is None:
            return
        keys = list(self._faces)
        faces = [self._faces[k] for k in keys]
        _save(path, paths=np.array(keys), scores=np.array([f.score for f in faces], np.float32),
              landmarks=np.stack([f.landmarks if f.landmarks is not None else np.zeros((5, 2), np.float32)
                                  for f in faces]).astype(np.float32),
              reasons=np.array([f.reason or "" for f in faces]))

    def _load_embeddings(self, flip: bool) -> dict[str, np.ndarray]:
        data = _load(self._file(self._emb_kind(flip)), ("paths", "embeddings"))
        return {} if data is None else dict(zip(map(str, data["paths"]), data["embeddings"], strict=True))

    def _save_embeddings(self, flip: bool, known: dict[str, np.ndarray]) -> None:
        path = self._file(self._emb_kind(flip))
        if path is not None and known:
            _save(path, paths=np.array(list(known)), embeddings=np.stack(list(known.values())).astype(np.float32))


def image_key(path: Path) -> str:
    """Resolved path, size and modification time: an image changed in place is never served from cache."""
    resolved = path.resolve()
    try:
        st = resolved.stat()
    except OSError:
        return f"{resolved}|-|-"
    return f"{resolved}|{st.st_size}|{st.st_mtime_ns}"


def _key(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _load(path: Path | None, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when absent or damaged (then it is recomputed, never trusted)."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    return arrays if len({len(a) for a in arrays.values()}) == 1 else None


def _save(path: Path, **arrays: np.ndarray) -> None:
    """Write atomically, so an interrupted run leaves the previous cache file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getbuffer(), mode=None)
