"""The device's models, opened once from config: the same detector and embedder at HQ and on the device."""

from dataclasses import dataclass
from pathlib import Path

from edge.config.detector import DetectorConfig
from edge.config.embedder import EmbedderConfig
from edge.config.runtime import RuntimeConfig
from edge.models import ENGINES_DIR, Manifest
from edge.runtime import open_runtime
from edge.runtime.letterbox_trt import gpu_letterbox
from edge.runtime.select import describe
from edge.vision.detect import Detector
from edge.vision.embed import Embedder


@dataclass
class VisionStack:
    detector: Detector
    embedder: Embedder
    manifest: Manifest
    embedder_sha256: str
    detector_sha256: str
    engine_dir: Path  # where built TensorRT engines live (also the GPU gallery's, edge.runtime.gallery_trt)

    @classmethod
    def open(cls, detector: DetectorConfig | None = None, embedder: EmbedderConfig | None = None,
             runtime: RuntimeConfig | None = None) -> "VisionStack":
        detector = detector or DetectorConfig()
        embedder = embedder or EmbedderConfig()
        runtime = runtime or RuntimeConfig()
        manifest = Manifest.load(runtime.engines_dir or ENGINES_DIR)
        engine_dir: Path | None = runtime.engine_cache
        det_rt = open_runtime(manifest, detector.model, runtime.backend, runtime.threads, engine_dir)
        emb_rt = open_runtime(manifest, embedder.model, runtime.backend, runtime.threads, engine_dir)
        long_side = None if detector.long_side == "full" else detector.long_side
        return cls(
            Detector(det_rt, manifest.spec(detector.model), long_side, detector.min_score, detector.nms_iou,
                     detector.max_faces, detector.refine, gpu_letterbox(det_rt, engine_dir or manifest.folder)),
            Embedder(emb_rt, manifest.spec(embedder.model), embedder.max_batch),
            manifest,
            manifest.spec(embedder.model).sha256,
            manifest.spec(detector.model).sha256,
            engine_dir or manifest.folder,
        )

    def switch_embedder(self, embedder: EmbedderConfig, runtime: RuntimeConfig | None = None) -> None:
        """Replace the embedder (a watchlist enrolled with another model was installed); the old one is closed
        once the new one is open, so a failure leaves the stack as it was."""
        runtime = runtime or RuntimeConfig()
        opened = Embedder(open_runtime(self.manifest, embedder.model, runtime.backend, runtime.threads,
                                       runtime.engine_cache), self.manifest.spec(embedder.model), embedder.max_batch)
        old, self.embedder = self.embedder, opened
        self.embedder_sha256 = self.manifest.spec(embedder.model).sha256
        old.runtime.close()

    def embedder_on_gpu(self) -> bool:
        """Whether the embedder runs on TensorRT: then a large gallery is scanned on the GPU too."""
        return self.embedder.runtime.name.startswith("tensorrt:")

    def runtimes(self) -> str:
        """What each model runs on, with the reason where it is not TensorRT (for the device's status)."""
        return f"detector {describe(self.detector.runtime)}; embedder {describe(self.embedder.runtime)}"

    def close(self) -> None:
        if self.detector.gpu is not None:
            self.detector.gpu.close()
        self.detector.runtime.close()
        self.embedder.runtime.close()
