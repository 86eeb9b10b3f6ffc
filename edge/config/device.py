"""[device] section: who this device is and where it keeps its state."""

from pathlib import Path

from pydantic import Field

from edge.config.base import StrictModel


class DeviceConfig(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="device id, as in its certificate")
    state_dir: Path = Field(Path("/var/lib/edge"), description="watchlist, outbox, audit log (only writable path)")
    fleet: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                              description="fleet whose watchlist this device also takes")
    place: str = Field("", description="where the device is deployed (reported in periods of use)")
    signing_key: Path = Field(Path("/etc/edge/device_signing.key"), description="Ed25519 private key (PEM)")
    encryption_key: Path = Field(Path("/etc/edge/device_encryption.key"), description="X25519 private key (PEM)")
    hq_public_key: Path = Field(Path("/etc/edge/hq_signing.pub"), description="pinned HQ signing key (PEM)")
