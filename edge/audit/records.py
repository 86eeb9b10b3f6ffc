"""Audit record format `edge.audit/1`: one pydantic body per kind, canonical bytes, hashes, signatures.

A record's hash is sha256 over its canonical bytes (JSON, sorted keys, no spaces, UTF-8) without the
`hash` field; `prev` is the previous record's hash, so the records form a chain from GENESIS. Each line of
the log file is exactly the canonical bytes of the whole record, so the file and an MQTT payload hash alike.
Times are POSIX seconds as JSON numbers: plain JSON types only, so every reader re-serialises them identically.
"""

import hashlib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
    NonNegativeInt,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from edge.config.base import StrictModel
from edge.protocol.canonical import canonical

AUDIT_SCHEMA = "edge.audit/1"
GENESIS = "0" * 64
CHECKPOINT_DOMAIN = b"edge.audit/1 checkpoint\n"

Kind = Literal[
    "checkpoint",
    "period_start",
    "period_stop",
    "watchlist_installed",
    "watchlist_refused",
    "config_changed",
    "alert",
    "adjudication",
    "counters",
]
Decision = Literal["confirmed", "rejected", "unsure"]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
REASON_MAX = 600  # a refusal's reason says what to do, which can take a few sentences
Reason = Annotated[str, StringConstraints(min_length=1, max_length=REASON_MAX)]
Scalar = str | bool | int | float | None


class _Body(StrictModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)


class _GrownBody(_Body):
    """A body that gained fields after records were first written: those fields are left out when absent, so the
    older records hash (and verify) as they were written."""

    added_later: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if not (k in self.added_later and v is None)}


class TornTail(_Body):
    """An unfinished last line found when the log was reopened: a write cut short by a crash or power loss."""

    length: NonNegativeInt
    sha256: Sha256Hex


class CheckpointBody(_Body):
    """Signs the chain head: the signature covers this whole record except `signature` (and `hash`).

    Reason `open` starts every session of the log (seq 0 of a new log, or after a restart). The policy is
    signed too, so a verifier knows how many records may legitimately follow without a checkpoint.
    """

    reason: Literal["open", "count", "time", "close"]
    key_id: Sha256Hex = Field(description="sha256 of the raw Ed25519 public key that signed")
    checkpoint_every: int = Field(ge=1, description="at most this many records follow before the next checkpoint")
    checkpoint_seconds: float = Field(gt=0)
    torn_tail: TornTail | None = Field(None, description="open only: unfinished line removed at restart")
    late: bool = Field(False, description="an earlier checkpoint could not be written: this one ends a longer run")
    signature: str = Field(description="base64 Ed25519 signature")


class PeriodStartBody(_GrownBody):
    """A period of use begins (EU AI Act Art. 12(3)(a)); what it searches against (Art. 12(3)(b))."""

    period_id: Text
    place: str = Field(max_length=200, description="deployment place as configured or entered by the operator")
    camera: Text
    operator: str | None = Field(None, max_length=200)
    purpose: str | None = Field(None, max_length=500, description="case or legal basis of the deployment")
    watchlist_id: str | None = None
    watchlist_version: NonNegativeInt | None = None
    watchlist_size: NonNegativeInt = Field(description="entries in the installed watchlist")
    threshold: float
    threshold_policy: Text | None = Field(None, description="which rule set the threshold (None in records written "
                                                            "before it was recorded)")
    embedder_sha256: Sha256Hex | None = Field(None, description="embedder the threshold was calibrated for")
    cameras: list[Text] | None = Field(None, description="every camera of the period when the device serves "
                                                         "several (`camera` is then the first); None: one camera")

    added_later = ("threshold_policy", "embedder_sha256", "cameras")  # with the group policy; several cameras


class PeriodStopBody(_Body):
    period_id: Text
    reason: Text = Field(description="e.g. operator, shutdown, watchlist_expired, error")


class WatchlistInstalledBody(_GrownBody):
    watchlist_id: Text
    version: NonNegativeInt
    entries: NonNegativeInt
    expires: float
    bundle_sha256: Sha256Hex
    model_sha256: Sha256Hex = Field(description="embedder the bundle was enrolled with")
    previous_version: NonNegativeInt | None = None
    threshold: float | None = Field(None, description="the threshold in force with this list (its size sets it)")
    threshold_policy: Text | None = Field(None, description="which rule set it")
    embedder_sha256: Sha256Hex | None = Field(None, description="embedder that threshold was calibrated for")

    added_later = ("threshold", "threshold_policy", "embedder_sha256")  # with the group policy


class WatchlistRefusedBody(_Body):
    """A bundle the device would not install, why, and which watchlist it kept."""

    watchlist_id: str | None = Field(None, description="None when the header could not be read")
    version: NonNegativeInt | None = None
    bundle_sha256: Sha256Hex
    reason: Reason
    kept_watchlist_id: str | None = None
    kept_version: NonNegativeInt | None = None


class ConfigChange(_Body):
    key: Text = Field(description="dotted key, e.g. match.threshold")
    old: Scalar
    new: Scalar


class ConfigChangedBody(_Body):
    source: Text = Field(description="where the change came from: a file path, hq, operator")
    changes: list[ConfigChange] = Field(min_length=1)


class AlertBody(_GrownBody):
    """An alert and the input that matched (Art. 12(3)(c)). Only ever written for a face that matched.

    The crop itself travels in the match event; its sha256 here binds the event to this record.
    """

    event_id: Text
    track_id: NonNegativeInt
    frame: NonNegativeInt
    frame_time: float
    subject_id: Text
    watchlist_id: Text
    watchlist_version: NonNegativeInt
    score: float
    threshold: float
    threshold_policy: Text | None = Field(None, description="which rule set the threshold (None in records written "
                                                            "before it was recorded)")
    margin: float = Field(description="score minus the runner-up subject's score")
    probe_quality: float = Field(ge=0.0, le=1.0)
    box: tuple[float, float, float, float]
    detector_sha256: Sha256Hex
    embedder_sha256: Sha256Hex
    crop_sha256: Sha256Hex | None = None
    camera: Text | None = Field(None, description="the camera that saw the face (None in records written before "
                                                  "a device served several cameras)")

    added_later = ("threshold_policy", "camera")  # with the group policy; with several cameras


class AdjudicationBody(_Body):
    """A person's decision on an alert (Art. 12(3)(d), Art. 14(5)), and the rule it was taken under.

    `confirmations_required` is left out of the record when it is 1, so records written before the field
    existed hash (and verify) as they did.
    """

    event_id: Text
    decision: Decision
    by: Text = Field(description="the person who decided, as the handheld identifies them")
    handheld_id: str | None = None
    decided_at: float
    note: str | None = Field(None, max_length=500)
    confirmations_required: int = Field(1, ge=1, description="different officers who must confirm (2: two-officer "
                                                             "rule); edge.protocol.adjudication.tally applies it")

    @model_serializer(mode="wrap")
    def _omit_default_rule(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("confirmations_required") == 1:
            del data["confirmations_required"]
        return data


class CountersBody(_GrownBody):
    """What was seen and let go in [minute_start, minute_end): non-retention shown, not just claimed."""

    minute_start: NonNegativeInt
    minute_end: NonNegativeInt
    frames: NonNegativeInt = 0
    faces_seen: NonNegativeInt = 0
    faces_discarded: NonNegativeInt = 0
    tracks_ended_without_match: NonNegativeInt = 0
    alerts: NonNegativeInt = 0
    # Inbound messages refused in the minute (malformed, forged, oversized, unpaired, dropped for a full disk):
    # an attack on the device's link leaves its trace in the chain, as a count, never the messages themselves.
    messages_refused: NonNegativeInt | None = None
    camera: Text | None = Field(None, description="the camera whose frames are counted; None: the device's own "
                                                  "counts (refused messages), and records written before it")
    added_later = ("messages_refused", "camera")  # with the inbound rule; with several cameras

    @model_validator(mode="after")
    def _whole_minutes(self) -> "CountersBody":
        if self.minute_start % 60 or self.minute_end % 60 or self.minute_end <= self.minute_start:
            raise ValueError("minute_start and minute_end must be minute boundaries with end after start")
        return self


Body = (
    CheckpointBody
    | PeriodStartBody
    | PeriodStopBody
    | WatchlistInstalledBody
    | WatchlistRefusedBody
    | ConfigChangedBody
    | AlertBody
    | AdjudicationBody
    | CountersBody
)

BODIES: dict[str, type[_Body]] = {
    "checkpoint": CheckpointBody,
    "period_start": PeriodStartBody,
    "period_stop": PeriodStopBody,
    "watchlist_installed": WatchlistInstalledBody,
    "watchlist_refused": WatchlistRefusedBody,
    "config_changed": ConfigChangedBody,
    "alert": AlertBody,
    "adjudication": AdjudicationBody,
    "counters": CountersBody,
}


class AuditRecord(StrictModel):
    """One link of the chain; also the MQTT payload on `devices/{id}/audit` (`model_dump_json()`)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    schema_: Literal["edge.audit/1"] = Field(AUDIT_SCHEMA, alias="schema")
    device: Text
    seq: NonNegativeInt
    time: float
    kind: Kind
    body: Body
    prev: Sha256Hex
    hash: Sha256Hex

    @model_validator(mode="before")
    @classmethod
    def _body_for_kind(cls, data: Any) -> Any:
        """Parse the body with the model its kind names (bodies of different kinds may look alike)."""
        if isinstance(data, dict) and isinstance(data.get("body"), dict) and data.get("kind") in BODIES:
            return {**data, "body": BODIES[data["kind"]].model_validate(data["body"])}
        return data

    @model_validator(mode="after")
    def _kind_matches_body(self) -> "AuditRecord":
        if type(self.body) is not BODIES[self.kind]:
            raise ValueError(f"a {self.kind} record needs a {BODIES[self.kind].__name__} body")
        return self

    def as_dict(self) -> dict[str, Any]:
        """The record as the plain JSON object that was hashed (and written as one log line)."""
        return self.model_dump(mode="json", by_alias=True)


def content_hash(record: dict[str, Any]) -> str:
    """sha256 hex of a record's canonical bytes without its `hash` field."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def signed_bytes(record: dict[str, Any]) -> bytes:
    """What a checkpoint's signature covers: the record without `hash` and without `body.signature`."""
    body = {k: v for k, v in record["body"].items() if k != "signature"}
    unsigned = {k: v for k, v in record.items() if k != "hash"} | {"body": body}
    return CHECKPOINT_DOMAIN + canonical(unsigned)
