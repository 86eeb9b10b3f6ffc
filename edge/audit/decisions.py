"""An officer's signed decision as the device's audit log keeps it, and back to a vote for counting."""

from typing import Literal

from edge.audit.records import AdjudicationBody
from edge.protocol.adjudication import Adjudication, Decision, Vote

_AUDITED: dict[Decision, Literal["confirmed", "rejected", "unsure"]] = {
    "confirm": "confirmed", "reject": "rejected", "unsure": "unsure",
}
_FROM_AUDIT: dict[str, Decision] = {audited: decision for decision, audited in _AUDITED.items()}


def audit_body(adjudication: Adjudication) -> AdjudicationBody:
    """The device's audit record of a verified decision (`AuditLog.append("adjudication", audit_body(a))`)."""
    note = f"{adjudication.officer_name}: {adjudication.note}" if adjudication.note else adjudication.officer_name
    return AdjudicationBody(event_id=adjudication.event_id, decision=_AUDITED[adjudication.decision],
                            by=adjudication.officer_id, handheld_id=adjudication.handheld,
                            decided_at=adjudication.decided_at.timestamp(), note=note[:500],
                            confirmations_required=adjudication.confirmations_required)


def vote_of(decision: Adjudication | AdjudicationBody) -> Vote:
    """The vote a decision casts, as the handheld signed it or as the device audited it."""
    if isinstance(decision, Adjudication):
        return decision.vote()
    return Vote(decision.decided_at, decision.by, _FROM_AUDIT[decision.decision], decision.handheld_id or "")
