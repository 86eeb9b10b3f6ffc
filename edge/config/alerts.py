"""[alerts] section: what a match event carries beyond the decision itself."""

from pydantic import Field

from edge.config.base import StrictModel


class AlertsConfig(StrictModel):
    probe_crop: bool = Field(True, description="send the matched face's aligned crop (112 px JPEG) for review")
