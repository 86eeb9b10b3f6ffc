"""[track] section: how faces become tracks and tracks become decisions."""

from typing import Literal

from pydantic import Field

from edge.config.base import StrictModel

DecisionRule = Literal["aggregate", "votes"]


class TrackConfig(StrictModel):
    iou: float = Field(0.3, gt=0.0, lt=1.0, description="box overlap that continues a track")
    max_missed: int = Field(10, ge=0, le=300, description="detection rounds a track survives unseen")
    min_evidence: int = Field(2, ge=1, le=20, description="embeddings from distinct frames that must agree")
    decision: DecisionRule = Field(
        "aggregate", description="aggregate: the quality-weighted mean of the track's embeddings decides (after "
                                 "min_evidence looks, the latest naming the same person); votes: min_evidence looks "
                                 "must each match the same person")
    better_quality: float = Field(1.15, ge=1.0, description="re-embed when quality beats the best so far by this")
    reembed_every: int = Field(5, ge=1, description="undecided tracks also re-embed every N frames (if detected)")
    max_embeddings: int = Field(12, ge=1, le=100, description="per track; then it waits for a better face")
