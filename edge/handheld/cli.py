"""`edge handheld --config FILE` (run the officer's handheld) and `edge handheld provision` (its keys and config)."""

import argparse
import ipaddress
import json
import logging
import signal
import threading
from pathlib import Path

from edge.cli import Commands
from edge.config.handheld import HandheldConfig, HandheldFile, Officer
from edge.errors import EdgeError
from edge.handheld.app import HandheldApp
from edge.handheld.web import PageServer
from edge.keys import HQ_SIGNING_PUB, KeyPairFiles, load_signing_public, write_key_pairs
from edge.link.cli_args import DEFAULT_PORT, parse_broker

log = logging.getLogger(__name__)

HANDHELD_TOML = "handheld.toml"
KEYS = KeyPairFiles.of("handheld")


def register(commands: Commands) -> None:
    parser = commands.add("handheld", "officer's handheld: live alerts from paired devices, human decisions")
    parser.add_argument("--config", type=Path, help=f"{HANDHELD_TOML} (make one with `edge handheld provision`)")
    parser.add_argument("--bind", help="serve the page on this address instead of handheld.bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="serve the page on this port instead of handheld.port (0: any free)")
    parser.set_defaults(func=run)
    sub = parser.add_subparsers(dest="handheld_command", metavar="COMMAND")
    provision = sub.add_parser(
        "provision", help="create a handheld's key pairs and config",
        description=f"Write OUT/{HANDHELD_TOML}, the handheld's Ed25519 signing and X25519 encryption key pairs "
                    f"({KEYS.signing_pub} and {KEYS.encryption_pub} go to HQ for `edge hq pair`) and a pinned copy "
                    "of the HQ public key. Use OUT = <keys folder>/handheld-<id> so `edge hq pair --keys` finds them.")
    provision.add_argument("--id", required=True, help="handheld id (letters, digits, _ . -), as in its certificate")
    provision.add_argument("--hq-pub", type=Path, required=True, help=f"HQ's {HQ_SIGNING_PUB}")
    provision.add_argument("--officer", action="append", required=True, metavar="ID=NAME",
                           help="an officer who decides on this handheld (repeatable; the first is preselected)")
    provision.add_argument("--broker", default=f"localhost:{DEFAULT_PORT}", metavar="HOST[:PORT]",
                           help="MQTT broker (TLS)")
    provision.add_argument("--two-officer-rule", action="store_true",
                           help="count an alert as confirmed only after two different officers confirm it")
    provision.add_argument("--out", type=Path, required=True, help="folder to write (copied to the handheld)")
    provision.set_defaults(func=provision_handheld)


def run(args: argparse.Namespace) -> int:
    if args.config is None:
        raise EdgeError("give --config handheld.toml (make one with `edge handheld provision`)")
    loaded = HandheldFile.load(args.config)
    overrides = {k: v for k, v in (("bind", args.bind), ("port", args.port)) if v is not None}
    config = HandheldConfig.model_validate(loaded.handheld.model_dump() | overrides)
    app = HandheldApp(config, loaded.link)
    try:
        server = PageServer(app, config.bind, config.port)
    except OSError as exc:
        app.stop()
        raise EdgeError(f"cannot serve the page on {config.bind}:{config.port}: {exc.strerror}; "
                        "choose another --port") from exc
    if not _loopback(config.bind):
        log.warning("the page is reachable from the network on %s: anyone with its address (token included) can "
                    "decide on alerts; keep it on 127.0.0.1 unless the network is trusted", config.bind)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    app.start()
    server.start()
    print(f"handheld {config.id}: open {server.url}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        app.stop()
    return 0


def _loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"


def provision_handheld(args: argparse.Namespace) -> int:
    out: Path = args.out
    officers = []
    for text in args.officer:
        officer_id, sep, name = text.partition("=")
        if not sep:
            raise EdgeError(f"--officer {text!r}: expected ID=NAME, e.g. --officer 4711='Sgt. Jane Roe'")
        officers.append(Officer(id=officer_id.strip(), name=name.strip()))
    host, port = parse_broker(str(args.broker))
    try:
        config = HandheldConfig(id=args.id, officers=officers, two_officer_rule=args.two_officer_rule)
    except ValueError as exc:
        raise EdgeError(f"cannot provision handheld {args.id!r}: {exc}") from None
    hq_public = load_signing_public(args.hq_pub)
    write_key_pairs(out, KEYS, hq_public, reserved=[HANDHELD_TOML])
    name = f"handheld-{config.id}"
    lines = [
        f"# Handheld {config.id}, written by `edge handheld provision`. Paths are relative to this file.",
        "[handheld]",
        f"id = {json.dumps(config.id)}",
        f"signing_key = {json.dumps(KEYS.signing_key)}",
        f"encryption_key = {json.dumps(KEYS.encryption_key)}",
        f"hq_public_key = {json.dumps(HQ_SIGNING_PUB)}",
        f"pairing = {json.dumps(str(config.pairing))}",
        f"state = {json.dumps(str(config.state))}",
        f"bind = {json.dumps(config.bind)}",
        f"port = {config.port}",
        f"two_officer_rule = {json.dumps(config.two_officer_rule)}",
        f"retention_hours = {config.retention_hours:g}",
        "officers = [",
        *(f"    {{ id = {json.dumps(o.id)}, name = {json.dumps(o.name)} }}," for o in officers),
        "]",
        "",
        "[link]",
        f"host = {json.dumps(host)}",
        f"port = {port}",
        'ca = "tls/ca.crt"',
        f'cert = "tls/{name}.crt"',
        f'key = "tls/{name}.key"',
    ]
    (out / HANDHELD_TOML).write_text("\n".join(lines) + "\n")
    print(f"handheld {config.id} provisioned in {out}.\n"
          f"  certificate: edge hq pki issue --role handheld --id {config.id} --ca CA_DIR --out {out / 'tls'} "
          "--registry REGISTRY\n"
          f"  pairing:     edge hq pair --handheld {config.id} --device DEVICE --keys {out.parent} ...")
    return 0
