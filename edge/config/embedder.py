"""[embedder] section: which face embedder the device runs.

SFace-128 by default; MobileFaceNet-192 for the smallest boards (docs/models.md gives both models' figures). A
watchlist is matched with the model it was enrolled with: a device whose installed list was enrolled with
another shipped model keeps matching with that model until a list for this one verifies
(docs/watchlist-migration.md).
"""

from pydantic import Field

from edge.config.base import StrictModel

DEFAULT_EMBEDDER = "sface_128"


class EmbedderConfig(StrictModel):
    model: str = Field(DEFAULT_EMBEDDER, description="embedder model from engines/models.toml")
    max_batch: int = Field(16, ge=1, le=64, description="faces per embedder call")
    enroll_flip: bool = Field(True, description="enrollment adds the mirrored photo's embedding (no cost per query)")
