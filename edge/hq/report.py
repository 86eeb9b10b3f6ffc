"""Deployment report from a device's ingested audit records: each period of use, where, against which
watchlist, what was alerted and how people decided, and what was seen and let go.

An alert counts as confirmed only when `edge.protocol.adjudication.tally` says so under HQ's rule (`rule`:
2 for the two-officer rule, two different officers confirmed and nobody rejected), or a stricter one its
decisions were taken under: a handheld can raise the rule, never lower it. Every text a device or handheld
supplied is escaped in the Markdown (`edge.hq.text.markdown`). The report states the chain's integrity first
(verified with the device's public keys when given): a report built on records with problems says so instead
of looking clean. `edge hq report` builds it from the HQ store.
"""

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.audit.counters import FIELDS
from edge.audit.decisions import vote_of
from edge.audit.records import (
    AdjudicationBody,
    AlertBody,
    AuditRecord,
    CountersBody,
    PeriodStartBody,
    PeriodStopBody,
    WatchlistInstalledBody,
    WatchlistRefusedBody,
)
from edge.audit.verify import verify_records
from edge.config.base import StrictModel
from edge.errors import EdgeError
from edge.hq.group_rates import GroupRatesInForce, in_force, render
from edge.hq.text import markdown
from edge.protocol.adjudication import Adjudication, State, Tally, tally
from edge.watchlist.calibration import Calibration

Outcome = Literal["confirmed", "rejected", "unsure", "pending"]
_OUTCOME: dict[State, Outcome] = {
    "confirmed": "confirmed", "rejected": "rejected", "disputed": "rejected", "unsure": "unsure",
    "awaiting_second": "pending", "pending": "pending",
}


class CounterTotals(StrictModel):
    frames: int = 0
    faces_seen: int = 0
    faces_discarded: int = 0
    tracks_ended_without_match: int = 0
    alerts: int = 0
    messages_refused: int = 0  # inbound messages the device refused (absent from older records: 0)

    def add(self, body: "CountersBody | CounterTotals") -> None:
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + (getattr(body, name) or 0))


class Outcomes(StrictModel):
    """Alerts by what their decisions amount to. `rejected` includes disputed ones (a reject by anyone blocks
    confirmation); `pending` includes those still waiting for a second officer's confirmation."""

    alerts: int = 0
    confirmed: int = 0
    rejected: int = 0
    unsure: int = 0
    pending: int = 0


class WatchlistUse(StrictModel):
    watchlist_id: str | None
    version: int | None
    size: int
    since: float
    threshold: float | None = None  # from the install record, when it says (records before the group policy do not)
    threshold_policy: str | None = None


class PeriodReport(StrictModel):
    period_id: str
    start: float
    stop: float | None = None
    stop_reason: str | None = None
    place: str
    camera: str
    operator: str | None
    purpose: str | None
    threshold: float
    threshold_policy: str | None
    watchlists: list[WatchlistUse]
    outcomes: Outcomes
    counters: CounterTotals


class WatchlistRefusal(StrictModel):
    """A watchlist the device refused, as its audit log recorded it."""

    time: float
    watchlist_id: str | None
    version: int | None
    reason: str


class DeploymentReport(StrictModel):
    device: str
    generated_at: float
    since: float | None = None
    records: int
    first_seq: int
    last_seq: int
    signatures_checked: bool
    signed_through: int | None
    integrity_problems: list[str]
    periods: list[PeriodReport]
    refusals: list[WatchlistRefusal]
    config_changes: int
    outside_periods: Outcomes
    totals: Outcomes
    counters: CounterTotals
    disagreements: list[str]
    group_rates: list[GroupRatesInForce]
    notes: list[str]


def decide(decisions: Sequence[Adjudication | AdjudicationBody], rule: int = 1) -> Tally:
    """What the decisions on one alert amount to under `rule` (HQ's), or the stricter one they were taken under."""
    return tally(map(vote_of, decisions), max([rule, *(d.confirmations_required for d in decisions)]))


def hq_outcomes(decisions: Iterable[Adjudication], rule: int = 1) -> dict[str, Outcome]:
    """Alert event id -> outcome, from the signed decisions HQ ingested from paired handhelds, under `rule`."""
    by_alert: dict[str, list[Adjudication]] = {}
    for d in decisions:
        by_alert.setdefault(d.event_id, []).append(d)
    return {event_id: _OUTCOME[decide(ds, rule).state] for event_id, ds in by_alert.items()}


def build_report(records: Iterable[AuditRecord], outcomes: Mapping[str, Outcome] | None = None,
                 keys: Sequence[Ed25519PublicKey] = (), clock: Callable[[], float] = time.time,
                 since: float | None = None, calibrations: Mapping[str, Calibration] | None = None,
                 rule: int = 1) -> DeploymentReport:
    """Report on one device's records (any order, duplicates allowed).

    `outcomes` maps event id to the outcome of the decisions HQ ingested from the handhelds (`hq_outcomes`);
    it takes precedence over the device's own adjudication records, and where the two differ the event is
    listed in `disagreements`. `since` (POSIX seconds): report only periods of use still running at or after
    it, and alerts, counters and refusals outside periods from then on; the chain is verified whole.
    `calibrations` (by embedder sha256, `load_calibrations`) give the per-group rates at each threshold used.
    `rule`: HQ's two-officer rule (2) or not (1), also applied to the device's records of decisions.
    """
    unique = sorted({(r.seq, r.hash): r for r in records}.values(), key=lambda r: r.seq)
    if not unique:
        raise EdgeError("no audit records to report on: ingest the device's audit topic first")
    devices = sorted({r.device for r in unique})
    if len(devices) > 1:
        raise EdgeError(f"audit records of several devices ({', '.join(devices)}): build one report per device")
    check = verify_records(unique, keys)  # streams: beside `unique` it keeps ~55 bytes a record, no copies
    start = -math.inf if since is None else since
    periods: list[PeriodReport] = []
    alerts_in: dict[str, list[str]] = {}  # period id (or "" outside periods) -> alert event ids
    device_decisions: dict[str, list[AdjudicationBody]] = {}
    refusals: list[WatchlistRefusal] = []
    used: list[tuple[str, float, str | None]] = []  # (embedder sha256, threshold, policy) of periods and alerts
    outside, notes, config_changes = CounterTotals(), [], 0
    current: PeriodReport | None = None
    for r in unique:
        body = r.body
        if isinstance(body, PeriodStartBody):
            if current is not None:
                notes.append(f"period {current.period_id} has no stop record before the next start (seq {r.seq})")
            current = _period(r.time, body)
            periods.append(current)
            if r.time >= start and body.embedder_sha256 is not None:  # older records do not say
                used.append((body.embedder_sha256, body.threshold, body.threshold_policy))
        elif isinstance(body, PeriodStopBody):
            if current is not None and current.period_id == body.period_id:
                current.stop, current.stop_reason, current = r.time, body.reason, None
            else:
                notes.append(f"seq {r.seq}: stop of period {body.period_id}, which is not the one in progress")
        elif isinstance(body, WatchlistInstalledBody) and current is not None:
            current.watchlists.append(WatchlistUse(watchlist_id=body.watchlist_id, version=body.version,
                                                   size=body.entries, since=r.time, threshold=body.threshold,
                                                   threshold_policy=body.threshold_policy))
            if body.embedder_sha256 is not None and body.threshold is not None:
                used.append((body.embedder_sha256, body.threshold, body.threshold_policy))
        elif isinstance(body, WatchlistRefusedBody) and r.time >= start:
            refusals.append(WatchlistRefusal(time=r.time, watchlist_id=body.watchlist_id, version=body.version,
                                    reason=body.reason))
        elif isinstance(body, AlertBody) and (current is not None or r.time >= start):
            alerts_in.setdefault(current.period_id if current else "", []).append(body.event_id)
            used.append((body.embedder_sha256, body.threshold, body.threshold_policy))
        elif isinstance(body, AdjudicationBody):
            device_decisions.setdefault(body.event_id, []).append(body)
        elif isinstance(body, CountersBody):
            if current is not None:
                current.counters.add(body)
            elif r.time >= start:
                outside.add(body)
        elif r.kind == "config_changed" and r.time >= start:
            config_changes += 1
    if current is not None:
        notes.append(f"period {current.period_id} has no stop record yet")
    periods = [p for p in periods if p.stop is None or p.stop >= start]
    device_outcomes = {e: _OUTCOME[decide(ds, rule).state] for e, ds in device_decisions.items()}
    outcomes = dict(outcomes or {})
    final = device_outcomes | outcomes
    for period in periods:
        period.outcomes = _tally(alerts_in.get(period.period_id, []), final)
    totals = CounterTotals()
    for counters in [*(p.counters for p in periods), outside]:
        totals.add(counters)
    return DeploymentReport(
        device=devices[0],
        generated_at=clock(),
        since=since,
        records=len(unique),
        first_seq=unique[0].seq,
        last_seq=unique[-1].seq,
        signatures_checked=check.signatures_checked,
        signed_through=check.signed_through,
        integrity_problems=[p.message for p in check.problems],
        periods=periods,
        refusals=refusals,
        config_changes=config_changes,
        outside_periods=_tally(alerts_in.get("", []), final),
        totals=_tally([e for p in periods for e in alerts_in.get(p.period_id, [])] + alerts_in.get("", []), final),
        counters=totals,
        disagreements=sorted(e for e, o in outcomes.items() if device_outcomes.get(e, o) != o),
        group_rates=in_force(used, calibrations or {}),
        notes=notes,
    )


def _period(start: float, body: PeriodStartBody) -> PeriodReport:
    first = WatchlistUse(watchlist_id=body.watchlist_id, version=body.watchlist_version, size=body.watchlist_size,
                         since=start)
    return PeriodReport(period_id=body.period_id, start=start, place=body.place,
                        camera=", ".join(body.cameras) if body.cameras else body.camera,
                        operator=body.operator, purpose=body.purpose, threshold=body.threshold,
                        threshold_policy=body.threshold_policy, watchlists=[first],
                        outcomes=Outcomes(), counters=CounterTotals())


def _tally(event_ids: list[str], outcomes: Mapping[str, Outcome]) -> Outcomes:
    out = Outcomes(alerts=len(event_ids))
    for event_id in event_ids:
        outcome = outcomes.get(event_id, "pending")
        setattr(out, outcome, getattr(out, outcome) + 1)
    return out


def render_markdown(report: DeploymentReport) -> str:
    """The report as Markdown (also readable as plain text)."""
    lines = [
        f"# Deployment report: device {markdown(report.device)}",
        "",
        f"Generated {_when(report.generated_at)} from {report.records} audit records "
        f"(seq {report.first_seq}-{report.last_seq})"
        + (f"; periods of use running since {_when(report.since)}." if report.since is not None else "."),
        "",
    ]
    if report.integrity_problems:
        lines += ["**Integrity: the audit chain has problems; figures below may be incomplete or altered.**", ""]
        lines += [f"- {markdown(p)}" for p in report.integrity_problems]
    elif report.signatures_checked:
        lines.append(f"Integrity: chain intact; checkpoints signed by the device through seq {report.signed_through}.")
    else:
        lines.append("Integrity: chain intact; checkpoint signatures NOT checked (no device public key given).")
    lines += ["", "| Period | Start | Stop | Place | Camera | Watchlist | Alerts | Confirmed | Rejected | Unsure "
                  "| Pending |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in report.periods:
        o = p.outcomes
        lists = "; ".join(f"{w.watchlist_id or '-'} v{w.version if w.version is not None else '-'} ({w.size})"
                          for w in p.watchlists)  # escaped with the other cells below
        stop = _when(p.stop) if p.stop is not None else "not recorded"
        cells = [p.period_id, _when(p.start), stop, p.place, p.camera, lists, o.alerts, o.confirmed, o.rejected,
                 o.unsure, o.pending]
        lines.append("| " + " | ".join(markdown(str(c)) for c in cells) + " |")
    t, c = report.totals, report.counters
    lines += [
        "",
        f"Totals: {t.alerts} alerts, {t.confirmed} confirmed, {t.rejected} rejected, {t.unsure} unsure, "
        f"{t.pending} pending.",
        f"Counters: {c.frames} frames, {c.faces_seen} faces seen, {c.faces_discarded} faces discarded without a "
        f"match, {c.tracks_ended_without_match} tracks ended without a match"
        + (f", {c.messages_refused} inbound messages refused (malformed, forged, oversized…)." if c.messages_refused
           else "."),
    ]
    for p in report.periods:
        extra = [f"operator {p.operator}"] if p.operator else []
        extra += [f"purpose: {p.purpose}"] if p.purpose else []
        extra += [f"stop reason {p.stop_reason}"] if p.stop_reason else []
        rule = p.threshold_policy or "rule not recorded"
        changes = "".join(f"; from {_when(w.since)} with {w.watchlist_id} v{w.version}: {w.threshold:.4f} "
                          f"({w.threshold_policy or 'rule not recorded'})" for w in p.watchlists[1:]
                          if w.threshold is not None)
        lines.append("- " + markdown(f"Period {p.period_id}: threshold {p.threshold:.4f} ({rule}){changes}"
                                     + "".join(f"; {e}" for e in extra)))
    if report.outside_periods.alerts:
        lines.append(f"- {report.outside_periods.alerts} alerts outside any recorded period of use.")
    if report.refusals:
        lines += ["", "Watchlists refused:"]
        lines += ["- " + markdown(f"{_when(r.time)}: {r.watchlist_id or '?'} v{'?' if r.version is None else r.version}"
                                  f": {r.reason}") for r in report.refusals]
    lines.append("")
    if report.config_changes:
        lines.append(f"Configuration changes: {report.config_changes}.")
    if report.disagreements:
        lines.append("Decisions that differ between device and HQ: " + markdown(", ".join(report.disagreements)))
    lines += [f"Note: {markdown(n)}" for n in report.notes]
    lines += render(report.group_rates)
    return "\n".join(lines) + "\n"


def _when(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
