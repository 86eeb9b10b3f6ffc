"""[embedder] section: which face embedder the device runs (must match the watchlist's)."""

from pydantic import Field

from edge.config.base import StrictModel


class EmbedderConfig(StrictModel):
    model: str = "mobilefacenet_192"
    max_batch: int = Field(16, ge=1, le=64, description="faces per embedder call")
    enroll_flip: bool = Field(True, description="enrollment adds the mirrored photo's embedding (no cost per query)")
