"""An officer's decision on an alert (`edge.adjudication/1`), signed by the handheld, and how decisions add up.

The handheld publishes each decision on `edge/v1/handhelds/<hid>/adjudications`; the device that raised
the alert and HQ verify it against the handheld's Ed25519 key from their pairing records, and the device
writes it to its audit log (edge.audit.decisions). Each decision is one message with its own id: two officers
deciding on one alert are two messages, and `tally` says what they amount to under the configured rule.
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field

from edge.config.base import StrictModel, check_id
from edge.protocol.alert import HandheldAlert
from edge.protocol.canonical import WireModel, encode, load_model, sign, verify
from edge.protocol.messages import DeviceId, EventId, HandheldId, new_event_id, utc_now
from edge.protocol.refused import Refused
from edge.protocol.topics import adjudications

ADJUDICATION = "edge.adjudication/1"
Decision = Literal["confirm", "reject", "unsure"]
DECISIONS: tuple[Decision, ...] = ("confirm", "reject", "unsure")
OfficerId = Annotated[str, AfterValidator(lambda v: check_id(v, "officer id"))]


class Vote(NamedTuple):
    """One officer's decision at one time on one handheld: what `tally` counts."""

    at: float
    officer: str
    decision: Decision
    handheld: str = ""


class Adjudication(WireModel):
    """One officer's decision on one alert, as the handheld signs and publishes it."""

    schema_: Literal["edge.adjudication/1"] = Field(ADJUDICATION, alias="schema")
    adjudication_id: EventId = Field(description="unique per decision: receivers de-duplicate by it")
    event_id: EventId = Field(description="the alert's (match event's) id")
    device: DeviceId = Field(description="the device that raised the alert")
    handheld: HandheldId
    officer_id: OfficerId
    officer_name: str = Field(min_length=1, max_length=120)
    decision: Decision
    note: str = Field("", max_length=500)
    confirmations_required: int = Field(1, ge=1, le=2, description="2 under the two-officer rule")
    decided_at: AwareDatetime
    signature: str | None = None

    @classmethod
    def create(cls, alert: HandheldAlert, officer_id: str, officer_name: str, decision: Decision, note: str = "",
               confirmations_required: int = 1, decided_at: dt.datetime | None = None) -> "Adjudication":
        return cls(adjudication_id=new_event_id(), event_id=alert.event_id, device=alert.device,
                   handheld=alert.handheld, officer_id=officer_id, officer_name=officer_name, decision=decision,
                   note=note, confirmations_required=confirmations_required, decided_at=decided_at or utc_now())

    def vote(self) -> "Vote":
        return Vote(self.decided_at.timestamp(), self.officer_id, self.decision, self.handheld)

    def signed(self, handheld_signing_key: Ed25519PrivateKey) -> bytes:
        """The payload to publish: this decision with the handheld's Ed25519 signature."""
        return encode(sign(self.body(), handheld_signing_key))


def verify_adjudication(payload: bytes, handheld_keys: Mapping[str, Ed25519PublicKey], topic: str | None = None,
                        device: str | None = None) -> Adjudication:
    """Parse a decision and check it is signed by a handheld we know (its key from the pairing record).

    `topic`, when given, must be that handheld's adjudications topic (a handheld cannot speak for another);
    `device`, when given, must be the device the decision is about (a device keeps only its own).
    """
    raw, adjudication = load_model(payload, Adjudication, f"an {ADJUDICATION} message")
    who = f"decision {adjudication.adjudication_id} by handheld {adjudication.handheld}"
    if topic is not None and topic != adjudications(adjudication.handheld):
        raise Refused("unknown_handheld", f"{who} arrived on {topic}, not on that handheld's topic")
    key = handheld_keys.get(adjudication.handheld)
    if key is None:
        raise Refused("unknown_handheld", f"{who}: handheld {adjudication.handheld} is not paired here")
    if not verify(raw, key):
        raise Refused("bad_signature", f"{who}: signature is not handheld {adjudication.handheld}'s")
    if device is not None and adjudication.device != device:
        raise Refused("not_ours", f"{who} is about device {adjudication.device}'s alert, not {device}'s")
    return adjudication


State = Literal["pending", "awaiting_second", "confirmed", "rejected", "disputed", "unsure"]


class Tally(StrictModel):
    """What the decisions on one alert amount to. A reject by anyone blocks confirmation."""

    model_config = ConfigDict(frozen=True)

    state: State
    confirmations: int
    required: int
    text: str
    officers: dict[str, Decision] = Field(description="each officer's standing decision: their latest on each "
                                                      "handheld, a reject on any of them standing")


def tally(votes: Iterable[Vote], required: int) -> Tally:
    """Count each officer's latest decision on each handheld; confirmed once `required` different officers
    confirmed and nobody rejected.

    `required` is the receiver's rule (HQ's, the handheld's own), never lowered by what a decision claims.
    Votes are keyed by (handheld, officer): a later decision on another handheld under the same officer id
    cannot replace a reject. An officer counts once however many handhelds carry their id, and any reject of
    theirs stands.

    Takes the votes of the handheld's signed decisions (HQ, the device on receipt) or of the device's audit
    records of them (edge.audit.decisions.vote_of).
    """
    latest: dict[tuple[str, str], Vote] = {}
    for vote in sorted(votes, key=lambda v: v.at):
        latest[(vote.handheld, vote.officer)] = vote
    officers: dict[str, Decision] = {}
    for (_, officer), vote in latest.items():
        before = officers.get(officer)  # the same officer id's vote on another handheld
        if vote.decision == "reject" or before == "reject":
            officers[officer] = "reject"
        elif vote.decision == "confirm" or before == "confirm":
            officers[officer] = "confirm"
        else:
            officers[officer] = vote.decision
    confirms = sum(1 for v in officers.values() if v == "confirm")
    rejects = sum(1 for v in officers.values() if v == "reject")
    count = f"{confirms} of {required} confirmations" if required > 1 else ""
    if confirms and rejects:
        state: State = "disputed"
        text = f"Disputed: {confirms} confirm, {rejects} reject"
    elif rejects:
        state, text = "rejected", "Rejected"
    elif confirms >= required:
        state, text = "confirmed", f"Confirmed ({count})" if count else "Confirmed"
    elif confirms:
        state, text = "awaiting_second", count
    elif officers:
        state, text = "unsure", "Unsure: needs another look"
    else:
        state, text = "pending", "Awaiting decision"
    return Tally(state=state, confirmations=confirms, required=required, text=text, officers=officers)
