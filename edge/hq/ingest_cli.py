"""`edge hq ingest` (run an ingest worker) and `edge hq events` (what HQ received)."""

import argparse
import datetime as dt
import json
import logging
import re
import signal
import sys
import threading
from pathlib import Path

from edge.cli import Commands
from edge.errors import EdgeError
from edge.hq.ingest import DeviceKeys, Ingest
from edge.hq.store import Event, EventStore
from edge.link.cli_args import add_broker_args, link_config
from edge.link.mqtt import LinkError

log = logging.getLogger(__name__)

_RELATIVE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def register(commands: Commands) -> None:
    hq = commands.group("hq", "HQ tools: keys, certificates, pairing, event ingest")
    ingest = hq.add_parser(
        "ingest",
        help="receive device events from the broker, verify signatures, store each once",
        description="Run one ingest worker until Ctrl-C or SIGTERM. Several workers (each with its own "
        "hq-<id> certificate) share the stream through the MQTT 5 shared subscription group.",
    )
    add_broker_args(ingest)
    ingest.add_argument("--db", required=True, help="SQLite file, or postgresql://user@host/db (needs psycopg)")
    ingest.add_argument("--device-keys", type=Path, required=True,
                        help="folder of <device-id>.pub (Ed25519 public key, PEM) used to verify signatures")
    ingest.add_argument("--group", default="hq", help="shared subscription group of the workers (default: hq)")
    ingest.set_defaults(func=_ingest)

    events = hq.add_parser("events", help="list what HQ received (accepted events, refusals, device status)")
    events.add_argument("--db", required=True, help="SQLite file or postgresql:// URL, as given to `edge hq ingest`")
    events.add_argument("--since", help="received since: ISO time (2025-01-31T08:00Z) or a span back (30m, 2h, 7d)")
    events.add_argument("--device", help="only this device id")
    events.add_argument("--kind", choices=("match", "audit", "watchlist_state"), help="only this kind")
    events.add_argument("--limit", type=int, default=1000)
    events.add_argument("--json", action="store_true", help="print each payload as received, one per line")
    show = events.add_mutually_exclusive_group()
    show.add_argument("--rejected", action="store_true", help="list refused messages and why, instead")
    show.add_argument("--status", action="store_true", help="list the last status of each device, instead")
    events.set_defaults(func=_events)


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
        raise EdgeError(f"--device-keys {args.device_keys} is not a folder of <device-id>.pub files")
    store = EventStore.open(args.db)
    worker = Ingest(link_config(args), store, DeviceKeys(args.device_keys), args.group)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    worker.start()
    print(f"edge hq ingest: {args.broker} -> {store.location} (group {args.group}); Ctrl-C to stop", file=sys.stderr)
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
    else:
        what = json.dumps(body["record"], sort_keys=True)[:120]
    return f"{event.received_at}  {event.device:<12} {event.kind:<15} {event.occurred_at}  {what}"


def _events(args: argparse.Namespace) -> int:
    if args.db.startswith(("postgresql://", "postgres://")) or Path(args.db).is_file():
        store = EventStore.open(args.db)
    else:
        raise EdgeError(f"--db {args.db}: no such store; `edge hq ingest --db {args.db}` creates it")
    try:
        if args.rejected:
            for r in store.rejections(args.limit):
                print(f"{r.received_at}  {r.topic}  {r.reason}")
        elif args.status:
            for s in store.statuses():
                print(f"{s.device:<12} {'online ' if s.online else 'offline'} {s.updated_at}  {s.payload}")
        else:
            since = parse_since(args.since) if args.since else None
            for event in store.events(since, args.device, args.kind, args.limit):
                print(event.payload if args.json else _line(event))
    finally:
        store.close()
    return 0
