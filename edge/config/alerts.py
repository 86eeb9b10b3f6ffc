"""[alerts] section: what a match event carries beyond the decision itself."""

from pydantic import BaseModel, ConfigDict, Field


class AlertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    probe_crop: bool = Field(True, description="send the matched face's aligned crop (112 px JPEG) for review")
