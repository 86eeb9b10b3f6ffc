"""The audit head a device announced, against the audit records HQ holds: a log cut short shows here.

A device's log alone cannot show that its end was cut off (`head -n 7 audit.log` leaves a valid chain). Its
status message announces the head (seq and hash of the last record) outside the file, HQ keeps the latest
one and every time it went backwards (`EventStore.head`, `EventStore.regressions`), and the report names
what that means: records cut off, a chain rewritten from some seq on, or records announced but not received.
"""

from collections.abc import Sequence

from edge.audit.records import AuditRecord
from edge.hq.store import Head, Regression


def head_findings(records: Sequence[AuditRecord], head: Head | None, regressions: Sequence[Regression],
                  seen: Sequence[Head] = ()) -> tuple[list[str], list[str]]:
    """(integrity problems, notes) about one device's announced audit heads and its `records` HQ holds; `seen`:
    every head it announced, so a log cut and written on past an earlier head shows even when the head did not go
    backwards in between (the records cut off had not reached HQ)."""
    problems = [f"audit head went backwards (noticed {r.noticed_at}): the device announced seq {r.after.seq} after "
                f"it had announced seq {r.before.seq}: its log's end was cut off (or an older copy put back, or, "
                "under audit.fsync = \"checkpoint\", records lost in a power cut); "
                f"`edge audit verify LOG --anchor {r.before.seq}:{r.before.hash}` names what is missing"
                for r in regressions if r.after.seq < r.before.seq]
    problems += [f"audit head replaced (noticed {r.noticed_at}): the device announced seq {r.after.seq} with "
                 f"hash {r.after.hash[:12]}…, where it had announced {r.before.hash[:12]}…: its log was rewritten"
                 for r in regressions if r.after.seq >= r.before.seq]
    by_seq: dict[int, set[str]] = {}
    for r in records:
        by_seq.setdefault(r.seq, set()).add(r.hash)
    lost = [h for h in seen if h.seq in by_seq and h.hash not in by_seq[h.seq] and h != head]
    if lost:
        problems.append(f"{len(lost)} audit head(s) the device announced are not the records HQ holds at those seqs "
                        f"(first: seq {lost[0].seq}, {lost[0].hash[:12]}…): its log was cut and written again from "
                        f"there or earlier; `edge audit verify LOG --anchor {lost[0].seq}:{lost[0].hash}`")
    notes: list[str] = []
    if head is None:
        return problems, notes
    held = {r.hash for r in records if r.seq == head.seq}
    last = max((r.seq for r in records), default=-1)
    if held and head.hash not in held:
        problems.append(f"the device's announced audit head seq {head.seq} ({head.hash[:12]}…) is not the record "
                        f"HQ holds at that seq: the log was rewritten from there or earlier")
    elif head.seq > last:
        notes.append(f"records {last + 1}-{head.seq} announced by the device are not at HQ yet (still in its "
                     "outbox, or lost)")
    notes.append(f"last announced audit head: seq {head.seq}, hash {head.hash}; check a copy of the device's log "
                 f"with `edge audit verify LOG --anchor {head.seq}:{head.hash}`")
    return problems, notes
