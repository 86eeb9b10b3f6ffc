"""Every MQTT payload the device publishes, as a versioned pydantic model.

Each payload names its own `schema` ("edge.match/1", …), so a receiver knows what it holds and refuses
what it does not know. Device-originated records (match, audit, watchlist state) carry a unique `event_id`
for de-duplication and the device's Ed25519 `signature` (edge.protocol.canonical). Field reference:
docs/messages.md.
"""

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field, JsonValue, ValidationError

from edge.config.base import check_id
from edge.protocol.canonical import WireModel, parse, validate
from edge.protocol.refused import Refused

MATCH = "edge.match/1"
STATUS = "edge.status/1"
WATCHLIST_STATE = "edge.watchlist_state/1"
AUDIT = "edge.audit/1"
BUNDLE_MANIFEST = "edge.bundle_manifest/1"
BUNDLE_CHUNK = "edge.bundle_chunk/1"

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
EventId = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
DeviceId = Annotated[str, AfterValidator(lambda v: check_id(v, "device id"))]
HandheldId = Annotated[str, AfterValidator(lambda v: check_id(v, "handheld id"))]
Text = Annotated[str, Field(max_length=512)]


def base64_of(size: int) -> AfterValidator:
    """Base64 text that decodes to exactly `size` bytes (a raw public key, a nonce)."""

    def check(value: str) -> str:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not base64") from None
        if len(data) != size:
            raise ValueError(f"must decode to {size} bytes, not {len(data)}")
        return value

    return AfterValidator(check)


class WatchlistRef(WireModel):
    """Which watchlist: its id, monotonically increasing version, and the sha256 of the bundle file."""

    id: Text
    version: int = Field(ge=0)
    sha256: Sha256Hex


class ModelHashes(WireModel):
    """sha256 of the detector and embedder models that produced the match."""

    detector: Sha256Hex
    embedder: Sha256Hex


class Box(WireModel):
    """Face box in frame pixels."""

    x1: float
    y1: float
    x2: float
    y2: float


class MatchEvent(WireModel):
    """A candidate match for a person to adjudicate: who, how sure, against which watchlist and models."""

    schema_: Literal["edge.match/1"] = Field(MATCH, alias="schema")
    event_id: EventId
    device: DeviceId
    camera: Text
    track: int = Field(ge=0)
    observed_at: AwareDatetime
    sent_at: AwareDatetime | None = None
    subject_id: Text
    label: Text
    category: Text
    case_ref: Text
    score: float = Field(ge=-1.0, le=1.0)
    threshold: float = Field(ge=-1.0, le=1.0)
    threshold_policy: Text | None = Field(None, description="which rule set the threshold, e.g. the floor or "
                                                            "constant FPIR for the worst demographic group (None "
                                                            "from devices that predate it)")
    margin: float = Field(ge=0.0, le=2.0, description="score minus the runner-up subject's score")
    probe_quality: float = Field(ge=0.0)
    box: Box
    watchlist: WatchlistRef
    models: ModelHashes
    probe_crop: str | None = Field(None, pattern=r"^[A-Za-z0-9+/]*={0,2}$", description="base64 JPEG, if policy allows")
    signature: str | None = None


class AuditHead(WireModel):
    """The last record of the device's audit log: announced outside the log, so a log cut short is noticed."""

    seq: int = Field(ge=0)
    hash: Sha256Hex

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> "AuditHead | None":
        """The head an audit record makes (its seq and hash), or None for an object that is not one."""
        try:
            return cls.model_validate({"seq": record.get("seq"), "hash": record.get("hash")})
        except ValidationError:
            return None


class DeviceStatus(WireModel):
    """Retained per device; the broker publishes the `online: false` form as the device's will."""

    schema_: Literal["edge.status/1"] = Field(STATUS, alias="schema")
    device: DeviceId
    online: bool
    at: AwareDatetime | None = Field(None, description="when the device said this; None in the will")
    reason: Text = ""
    software: Text = ""
    runtime: Text = Field("", description="what each model runs on, and why not TensorRT where it does not")
    watchlist: WatchlistRef | None = None
    counters: dict[str, int] = Field(default_factory=dict)
    audit_head: AuditHead | None = Field(None, description="the audit log's last record when this was said; HQ "
                                                           "flags a head that goes backwards")


class WatchlistState(WireModel):
    """What the device did with a watchlist it was offered, and what it runs now."""

    schema_: Literal["edge.watchlist_state/1"] = Field(WATCHLIST_STATE, alias="schema")
    event_id: EventId
    device: DeviceId
    at: AwareDatetime
    sent_at: AwareDatetime | None = None
    outcome: Literal["installed", "refused", "unchanged"]
    installed: WatchlistRef | None = Field(None, description="the watchlist active after this decision")
    offered: WatchlistRef | None = Field(None, description="the one that arrived, when it could be read")
    reason: Text = ""
    signature: str | None = None


class AuditEnvelope(WireModel):
    """Carries one audit record; its body is defined by edge.audit and travels as a JSON object."""

    schema_: Literal["edge.audit/1"] = Field(AUDIT, alias="schema")
    event_id: EventId
    device: DeviceId
    sent_at: AwareDatetime | None = None
    record: dict[str, JsonValue]
    signature: str | None = None


class BundleManifest(WireModel):
    """Retained; names the bundle whose chunks are retained beside it. Published after its chunks."""

    schema_: Literal["edge.bundle_manifest/1"] = Field(BUNDLE_MANIFEST, alias="schema")
    sha256: Sha256Hex
    size: int = Field(ge=1)
    chunks: int = Field(ge=1)
    chunk_bytes: int = Field(ge=1)
    published_at: AwareDatetime


class BundleChunk(WireModel):
    """Header line of one chunk message (`<header JSON>\\n<raw bytes>`)."""

    schema_: Literal["edge.bundle_chunk/1"] = Field(BUNDLE_CHUNK, alias="schema")
    sha256: Sha256Hex = Field(description="of the whole bundle")
    index: int = Field(ge=0)
    count: int = Field(ge=1)
    digest: Sha256Hex = Field(description="sha256 of this chunk's bytes")


_BY_SCHEMA: dict[str, type[WireModel]] = {
    MATCH: MatchEvent,
    STATUS: DeviceStatus,
    WATCHLIST_STATE: WatchlistState,
    AUDIT: AuditEnvelope,
    BUNDLE_MANIFEST: BundleManifest,
    BUNDLE_CHUNK: BundleChunk,
}


def new_event_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(when: dt.datetime) -> str:
    """UTC ISO 8601 with milliseconds and `Z`, the form devices write."""
    return when.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decode(payload: bytes) -> tuple[dict[str, Any], WireModel]:
    """Parse and validate a payload; return the raw dict (for signature checks) and the model.

    Raises Refused saying what is wrong; never anything else.
    """
    raw = parse(payload, "a payload")
    if not isinstance(raw, dict):
        raise Refused("malformed", f"payload is JSON {type(raw).__name__}, expected an object")
    schema = raw.get("schema")
    model = _BY_SCHEMA.get(schema) if isinstance(schema, str) else None
    if model is None:
        raise Refused("unknown_schema", f"unknown schema {schema!r}; known: {', '.join(sorted(_BY_SCHEMA))}")
    return raw, validate(raw, model, f"a valid {schema} payload")
