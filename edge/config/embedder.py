"""[embedder] section: which face embedder the device runs (must match the watchlist's)."""

from pydantic import BaseModel, ConfigDict, Field


class EmbedderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "mobilefacenet_192"
    max_batch: int = Field(16, ge=1, le=64, description="faces per embedder call")
    enrol_flip: bool = Field(True, description="enrolment adds the mirrored photo's embedding (no cost per query)")
