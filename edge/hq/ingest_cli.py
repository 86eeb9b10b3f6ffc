"""`edge hq ingest` (run an ingest worker), `edge hq events` (what HQ received) and `edge hq report` (the
deployment report built from it)."""

import argparse
import datetime as dt
import json
import logging
import re
import signal
import sys
import threading
from pathlib import Path

from pydantic import ValidationError

from edge.audit.records import AuditRecord
from edge.cliargs import Commands, add_broker_args, link_config
from edge.config.base import check_id
from edge.errors import EdgeError
from edge.hq.group_rates import load_calibrations
from edge.hq.heads import head_findings
from edge.hq.ingest import Ingest, PublicKeys
from edge.hq.pairings import PairingHistory
from edge.hq.refused import retry_refused
from edge.hq.report import DeploymentReport, build_report, hq_outcomes, render_markdown
from edge.hq.store import Event, EventStore
from edge.hq.text import json_line, terminal
from edge.hq.versions import version_drops
from edge.keys import load_signing_public
from edge.link.mqtt import LinkError
from edge.models import ENGINES_DIR
from edge.protocol.adjudication import Adjudication
from edge.watchlist.calibration import Calibration

log = logging.getLogger(__name__)

_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_KINDS = ("match", "audit", "watchlist_state", "adjudication", "pairing")
_KEYS_HELP = ("folder of public keys as provisioning lays them out: device-<id>/device_signing.pub (or "
              "<device-id>.pub) and handheld-<id>/handheld_signing.pub (Ed25519, PEM)")


def register(commands: Commands) -> None:
    hq = commands.group("hq")
    ingest = hq.add_parser(
        "ingest",
        help="receive device events and officers' decisions from the broker, verify signatures, store each once",
        description="Run one ingest worker until Ctrl-C or SIGTERM. It subscribes to match events, audit "
        "records, watchlist states and device status of every device, and to every handheld's adjudications, "
        "with plain persistent subscriptions: they survive a broker restart, so what devices send while the "
        "worker is away waits for it at the broker. --group NAME makes several workers (each with its own "
        "hq-<id> certificate) share the stream through MQTT 5 shared subscriptions instead: clustered brokers "
        "(EMQX, HiveMQ) keep those across restarts, but single-node mosquitto 2.0 forgets an offline worker's "
        "shared subscriptions when it restarts; until a worker reconnects devices keep their messages in "
        "their outboxes (PUBACK 0x10) and handhelds' decisions published then are lost to HQ. On mosquitto "
        "prefer one worker without --group.",
    )
    add_broker_args(ingest)
    ingest.add_argument("--db", required=True, help="SQLite file, or postgresql://user@host/db (needs psycopg)")
    ingest.add_argument("--device-keys", type=Path, required=True, help=_KEYS_HELP + "; used to verify signatures")
    ingest.add_argument("--hq-pub", type=Path, metavar="FILE",
                        help="HQ's hq_signing.pub: checks the pairing records on devices/+/pairing, which say whose "
                        "decisions count; without it every officer's decision is refused")
    ingest.add_argument("--group", metavar="NAME",
                        help="share the stream with other workers of this MQTT 5 shared subscription group "
                        "(default: none, a plain persistent subscription; see above)")
    ingest.add_argument("--retry-refused", action="store_true",
                        help="first check every refused message kept in --db again (with the keys now in "
                        "--device-keys) and store those that pass, then run as usual")
    ingest.set_defaults(func=_ingest)

    events = hq.add_parser("events", help="list what HQ received (accepted events, refusals, device status)")
    events.add_argument("--db", required=True, help="SQLite file or postgresql:// URL, as given to `edge hq ingest`")
    events.add_argument("--since", help="received since: ISO time (2025-01-31T08:00Z) or a span back (30m, 2h, 7d)")
    events.add_argument("--device", help="only this device id")
    events.add_argument("--kind", choices=_KINDS, help="only this kind (adjudication: officers' decisions)")
    events.add_argument("--limit", type=int, default=1000,
                        help="list at most this many, oldest first (default %(default)s)")
    events.add_argument("--json", action="store_true", help="print each payload as received, one per line")
    show = events.add_mutually_exclusive_group()
    show.add_argument("--rejected", action="store_true", help="list refused messages and why, instead")
    show.add_argument("--status", action="store_true", help="list the last status of each device, instead")
    events.set_defaults(func=_events)

    report = hq.add_parser(
        "report", help="deployment report per device from what HQ ingested: periods, alerts, decisions, counters",
        description="Build each device's deployment report from the audit records and officers' decisions HQ "
        "ingested: periods of use (place, camera, watchlist and its size), alerts and how they were decided "
        "(confirmed only when the decisions satisfy the rule they were taken under, e.g. two officers), "
        "refused watchlists and the counters of faces seen and discarded. The audit chain is verified first.",
    )
    report.add_argument("--db", required=True, help="SQLite file or postgresql:// URL, as given to `edge hq ingest`")
    report.add_argument("--since", help="only periods of use running since: ISO time (2025-01-31T08:00Z) or a "
                        "span back (30m, 2h, 7d)")
    report.add_argument("--device", help="only this device id (default: every device with audit records)")
    report.add_argument("--device-keys", type=Path,
                        help=_KEYS_HELP + "; checks the signed checkpoints of each device's audit chain")
    report.add_argument("--two-officer-rule", action="store_true",
                        help="an alert counts as confirmed only once two different officers confirmed it (HQ's rule; "
                        "without it, decisions taken under the rule on the handheld still need two)")
    report.add_argument("--json", action="store_true", help="print the reports as a JSON list instead of Markdown")
    report.set_defaults(func=_report)


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """`30m`, `2h`, `7d`, `45s` back from now, or an ISO 8601 time (UTC if no offset given)."""
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        span = dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now or dt.datetime.now(dt.timezone.utc)) - span
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise EdgeError(f"--since {text!r}: use an ISO time like 2025-01-31T08:00Z or a span like 30m, 2h, 7d") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _ingest(args: argparse.Namespace) -> int:
    if not args.device_keys.is_dir():
        raise EdgeError(f"--device-keys {args.device_keys} is not a folder: give the {_KEYS_HELP}")
    if args.group is not None:
        try:
            check_id(args.group, "--group")
        except ValueError as exc:
            raise EdgeError(str(exc)) from None
    hq_public = load_signing_public(args.hq_pub) if args.hq_pub is not None else None
    if hq_public is None:
        log.warning("no --hq-pub: pairing records cannot be checked, so officers' decisions will be refused")
    store = EventStore.open(args.db)
    worker = Ingest(link_config(args), store, PublicKeys(args.device_keys), args.group, hq_public=hq_public)
    if args.retry_refused:
        print(f"edge hq ingest: refused messages checked again: {retry_refused(store, worker.recheck).summary()}",
              file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker.start()
    sharing = f"shared subscription group {args.group}" if args.group else "plain persistent subscriptions"
    print(f"edge hq ingest: {args.broker} -> {store.location} ({sharing}); Ctrl-C to stop", file=sys.stderr)
    try:
        worker.wait_connected(10.0)
        print("edge hq ingest: connected and subscribed", file=sys.stderr, flush=True)
    except LinkError as exc:
        log.warning("%s; still trying", exc)
    while not stop.wait(10.0):
        log.info("ingest: %s", worker.stats)
    worker.stop()
    store.close()
    print(f"edge hq ingest stopped: {worker.stats}", file=sys.stderr)
    return 0


def _line(event: Event) -> str:
    body = json.loads(event.payload)
    if event.kind == "match":
        what = (f"{body['subject_id']} ({body['label']}, {body['category']}, case {body['case_ref']}) "
                f"score {body['score']:.3f} >= {body['threshold']:.3f} margin {body['margin']:.3f} "
                f"camera {body['camera']} track {body['track']}")
    elif event.kind == "watchlist_state":
        installed = body.get("installed") or {}
        what = (f"{body['outcome']} {body.get('reason', '')} "
                f"now {installed.get('id', '-')} v{installed.get('version', '-')}")
    elif event.kind == "adjudication":
        what = (f"{body['decision']} by {body['officer_id']} ({body['officer_name']}) on handheld {body['handheld']} "
                f"for alert {body['event_id']}"
                + (f" (rule: {body['confirmations_required']} officers)" if body["confirmations_required"] > 1 else ""))
    elif event.kind == "pairing":
        what = "paired handhelds: " + (", ".join(h["id"] for h in body["handhelds"]) or "none")
    else:
        what = json.dumps(body["record"], sort_keys=True)[:120]
    return terminal(f"{event.received_at}  {event.device:<12} {event.kind:<15} {event.occurred_at}  {what}")


def _open_existing(db: str) -> EventStore:
    if db.startswith(("postgresql://", "postgres://")) or Path(db).is_file():
        return EventStore.open(db)
    raise EdgeError(f"--db {db}: no such store; `edge hq ingest --db {db}` creates it")


def _events(args: argparse.Namespace) -> int:
    store = _open_existing(args.db)
    try:
        if args.rejected:
            refusals = store.rejections(args.limit)
            for r in refusals:
                print(terminal(f"{r.received_at}  {r.topic}  {r.reason}"))
            if refusals:
                print("each is kept as received; once HQ has what was missing (a key in --device-keys), "
                      "`edge hq ingest … --retry-refused` accepts those that now pass", file=sys.stderr)
        elif args.status:
            for s in store.statuses():
                print(f"{s.device:<12} {'online ' if s.online else 'offline'} {s.updated_at}  {json_line(s.payload)}")
        else:
            since = parse_since(args.since) if args.since else None
            for event in store.events(since, args.device, args.kind, args.limit):
                print(json_line(event.payload) if args.json else _line(event))
    finally:
        store.close()
    return 0


def _report(args: argparse.Namespace) -> int:
    since = parse_since(args.since).timestamp() if args.since else None
    keys = PublicKeys(args.device_keys) if args.device_keys is not None else None
    if keys is not None and not keys.folder.is_dir():
        raise EdgeError(f"--device-keys {keys.folder} is not a folder: give the {_KEYS_HELP}")
    store = _open_existing(args.db)
    try:
        devices = [args.device] if args.device else store.devices("audit")
        if not devices:
            raise EdgeError(f"no audit records in {store.location}: run `edge hq ingest` while devices are running")
        calibrations, damaged = load_calibrations(ENGINES_DIR)
        rule = 2 if args.two_officer_rule else 1
        reports = [_device_report(store, device, keys, since, calibrations, rule) for device in devices]
        for r in reports:
            r.notes.extend(f"calibration table not read, its model's group rates are not shown: {d}" for d in damaged)
    finally:
        store.close()
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
    else:
        print("\n".join(render_markdown(r) for r in reports), end="")
    return 0


def _device_report(store: EventStore, device: str, keys: PublicKeys | None, since: float | None,
                   calibrations: dict[str, Calibration], rule: int) -> DeploymentReport:
    records, unreadable = [], 0
    for event in store.events(device=device, kind="audit", limit=None):
        try:
            records.append(AuditRecord.model_validate(json.loads(event.payload)["record"]))
        except (ValidationError, ValueError, KeyError):
            unreadable += 1
    if not records:
        raise EdgeError(f"no audit records of device {device!r} in {store.location}")
    pairings = PairingHistory.of(store, device)
    decisions, unpaired = [], 0
    for e in store.events(device=device, kind="adjudication", limit=None):
        decision = Adjudication.model_validate_json(e.payload)
        if pairings.paired(decision.handheld, decision.decided_at):
            decisions.append(decision)
        else:  # ingested before HQ checked pairings
            unpaired += 1
    key = keys.device(device) if keys is not None else None
    if keys is not None and key is None:
        expected = " or ".join(map(str, keys.device_paths(device)))
        raise EdgeError(f"no public key for device {device!r}: expected {expected}")
    report = build_report(records, hq_outcomes(decisions, rule), [key] if key is not None else [], since=since,
                          calibrations=calibrations, rule=rule)
    problems, notes = head_findings(records, store.head(device), store.regressions(device),
                                     store.heads_seen(device))
    report.integrity_problems.extend(problems)
    report.notes.extend(notes)
    if unpaired:
        report.notes.append(f"{unpaired} decision(s) from handhelds not paired with {device} at the time: not counted")
    if unreadable:
        report.notes.append(f"{unreadable} ingested audit payload(s) are not edge.audit/1 records: left out")
    report.notes.extend(version_drops(store.events(device=device, kind="watchlist_state", limit=None)))
    return report
