"""`[link]`: how a device or HQ process reaches the MQTT broker, and where the device keeps its outbox."""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge.config.base import StrictModel


class LinkConfig(StrictModel):
    """Broker address, mutual-TLS files, session and delivery settings.

    The client id is the certificate's CN (the broker enforces that with `use_username_as_clientid`),
    so it is read from `cert` and not configured here.
    """

    host: str = Field("localhost", min_length=1, description="broker host name or IP; must match its certificate")
    port: int = Field(8883, ge=1, le=65535)
    ca: Path = Field(Path("/etc/edge/tls/ca.crt"), description="fleet CA certificate (PEM)")
    cert: Path = Field(Path("/etc/edge/tls/client.crt"), description="this client's certificate (PEM)")
    key: Path = Field(Path("/etc/edge/tls/client.key"), description="this client's private key (PEM, mode 0600)")
    keepalive_s: int = Field(30, ge=5, le=65535, description="MQTT keepalive; the broker's will fires after 1.5x this")
    session_expiry_s: int = Field(
        30 * 24 * 3600, ge=0,
        description="how long the broker keeps this client's subscriptions and queue while it is offline",
    )
    reconnect_min_s: int = Field(1, ge=1, description="first reconnect delay; doubles on each failure")
    reconnect_max_s: int = Field(60, ge=1, description="longest reconnect delay")
    outbox: Path = Field(Path("outbox.sqlite"), description="device outbox (SQLite, WAL); relative: in state_dir")
    outbox_sync: Literal["full", "normal"] = Field(
        "full", description="SQLite synchronous mode: full survives power loss, normal only a process crash"
    )
    outbox_reserve_mb: int = Field(
        64, ge=0, le=4096, description="disk space a device holds back beside its outbox and releases when the disk "
        "fills, so the alerts and audit records being written then are still kept; 0: none"
    )
    inflight: int = Field(100, ge=1, le=65000, description="QoS 1 messages sent and awaiting PUBACK at once")
    max_message_bytes: int = Field(
        1_000_000, ge=4096, description="largest payload sent; keep under the broker's max_packet_size"
    )
    chunk_bytes: int = Field(512 * 1024, ge=1024, description="watchlist bundles are published in chunks of this size")
    bundle_spool: Path = Field(
        Path("incoming"), description="a device writes watchlist bundle chunks here as they arrive, never holding a "
        "bundle in memory; relative: beside the outbox"
    )

    @model_validator(mode="after")
    def _check(self) -> "LinkConfig":
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError(
                f"link.reconnect_max_s ({self.reconnect_max_s}) must be >= "
                f"link.reconnect_min_s ({self.reconnect_min_s})"
            )
        if self.chunk_bytes > self.max_message_bytes - 1024:
            raise ValueError(
                f"link.chunk_bytes ({self.chunk_bytes}) must leave 1024 bytes of headroom under "
                f"link.max_message_bytes ({self.max_message_bytes})"
            )
        return self
