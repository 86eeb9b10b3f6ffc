"""`edge handheld --config FILE` (run the officer's handheld), `edge handheld provision` (its keys and config,
officers' PIN hashes) and `edge handheld hash-pin` (a PIN hash for a config written by hand)."""

import argparse
import getpass
import ipaddress
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from pydantic import ValidationError

from edge.cliargs import DEFAULT_PORT, Commands, parse_broker
from edge.config.handheld import HandheldConfig, HandheldFile
from edge.config.pin import PIN_DIGITS, PinHash, check_pin
from edge.errors import EdgeError
from edge.fsio import write_atomic
from edge.handheld.app import HandheldApp
from edge.handheld.web import PageServer
from edge.hardening import forbid_core_dumps
from edge.keys import HQ_SIGNING_PUB, KeyPairFiles, load_signing_public, refuse_existing, write_key_pairs

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
    provision.add_argument("--officer-pin", action="append", default=[], metavar="ID",
                           help="ask for this officer's PIN on the terminal (twice) and store its salted scrypt hash "
                                f"({PIN_DIGITS[0]}-{PIN_DIGITS[1]} digits; repeatable)")
    provision.add_argument("--pins-from", type=Path, metavar="FILE",
                           help="read PINs from FILE ('-': standard input), one ID=PIN a line, '#' comments; for "
                                "scripts. Only their hashes are written")
    provision.add_argument("--two-officer-rule", action="store_true",
                           help="count an alert as confirmed only after two different officers confirm it; every "
                                "officer then needs a PIN")
    provision.add_argument("--out", type=Path, required=True, help="folder to write (copied to the handheld)")
    provision.set_defaults(func=provision_handheld)
    hash_pin = sub.add_parser(
        "hash-pin", help="print the salted scrypt hash of a PIN, for an officer's pin in handheld.toml",
        description="Ask for a PIN on the terminal (twice), or read one line from standard input when it is not a "
                    "terminal, and print its hash: set `pin = \"<hash>\"` in that officer's handheld.officers entry.")
    hash_pin.set_defaults(func=print_pin_hash)


def run(args: argparse.Namespace) -> int:
    if args.config is None:
        raise EdgeError("give --config handheld.toml (make one with `edge handheld provision`)")
    forbid_core_dumps()  # before the first key, crop or decision is in memory
    loaded = HandheldFile.load(args.config)
    _owner_only(args.config)
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


def _owner_only(config: Path) -> None:
    """handheld.toml holds the officers' PIN hashes: one an older version wrote 0644 is narrowed to 0600."""
    mode = config.stat().st_mode & 0o777
    if mode & 0o077:
        config.chmod(0o600)
        log.warning("%s was readable by others (mode %o; it holds the PIN hashes): narrowed to 0600", config, mode)


def _loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"


def provision_handheld(args: argparse.Namespace) -> int:
    out: Path = args.out
    officers: list[dict[str, str]] = []
    for text in args.officer:
        officer_id, sep, name = text.partition("=")
        if not sep:
            raise EdgeError(f"--officer {text!r}: expected ID=NAME, e.g. --officer 4711='Sgt. Jane Roe'")
        officers.append({"id": officer_id.strip(), "name": name.strip()})
    host, port = parse_broker(str(args.broker))
    _handheld_config(args.id, officers, False)  # ids and names checked before anyone types a PIN
    refuse_existing(out, [HANDHELD_TOML, *KEYS.names])
    pins = _pins(args.pins_from, args.officer_pin, {o["id"]: o["name"] for o in officers})
    config = _handheld_config(args.id, [o | {"pin": PinHash.of(pins[o["id"]]).text()} if o["id"] in pins else o
                                        for o in officers], args.two_officer_rule)
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
        *(f"    {{ id = {json.dumps(o.id)}, name = {json.dumps(o.name)}"
          + (f", pin = {json.dumps(o.pin)}" if o.pin is not None else "") + " },"
          for o in config.officers),
        "]",
        "",
        "[link]",
        f"host = {json.dumps(host)}",
        f"port = {port}",
        'ca = "tls/ca.crt"',
        f'cert = "tls/{name}.crt"',
        f'key = "tls/{name}.key"',
    ]
    write_atomic(out / HANDHELD_TOML, "\n".join(lines) + "\n")  # 0600: it holds the PIN hashes
    print(f"handheld {config.id} provisioned in {out}.\n"
          f"  certificate: edge hq pki issue --role handheld --id {config.id} --ca-dir CA_DIR --out {out / 'tls'} "
          "--registry REGISTRY\n"
          f"  pairing:     edge hq pair --handheld {config.id} --device DEVICE --keys {out.parent} ...")
    return 0


def _handheld_config(handheld_id: str, officers: list[dict[str, str]], two_officer_rule: bool) -> HandheldConfig:
    try:
        return HandheldConfig.model_validate({"id": handheld_id, "officers": officers,
                                              "two_officer_rule": two_officer_rule})
    except ValidationError as exc:  # its own text would show the input, which can be a PIN
        problems = "; ".join((f"handheld.{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
                             + str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise EdgeError(f"cannot provision handheld {handheld_id!r}: {problems}") from None


def print_pin_hash(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        pin = _ask_pin("PIN")
    else:
        pin = sys.stdin.readline().strip()
        try:
            check_pin(pin)
        except ValueError as exc:
            raise EdgeError(f"standard input: {exc}") from None
    print(PinHash.of(pin).text())
    return 0


def _pins(source: Path | None, asked: list[str], names: dict[str, str]) -> dict[str, str]:
    """Each officer's PIN from `source` (ID=PIN lines) and from the terminal for the `asked` ids; refuses
    unknown officers, an officer given twice and two officers sharing a PIN (one could act as both)."""
    for officer_id in asked:
        if officer_id not in names:
            raise EdgeError(f"--officer-pin {officer_id}: no such officer; give it with --officer {officer_id}=NAME")
    pins = {} if source is None else _read_pins(source, names)
    for officer_id in asked:
        if officer_id in pins or asked.count(officer_id) > 1:
            raise EdgeError(f"officer {officer_id}'s PIN is asked for twice (--officer-pin, --pins-from): give it once")
    if asked and not sys.stdin.isatty():
        raise EdgeError("--officer-pin asks on a terminal, and there is none: use --pins-from FILE "
                        "(or --pins-from - to read ID=PIN lines from standard input)")
    for officer_id in asked:
        pins[officer_id] = _ask_pin(f"PIN for {names[officer_id]} ({officer_id})")
    owners: dict[str, str] = {}
    for officer_id, pin in pins.items():
        if pin in owners:
            raise EdgeError(f"officers {owners[pin]} and {officer_id} were given the same PIN: each officer needs "
                            "their own, or one of them can decide as both")
        owners[pin] = officer_id
    return pins


def _read_pins(source: Path, names: dict[str, str]) -> dict[str, str]:
    where = "standard input" if str(source) == "-" else str(source)
    try:
        text = sys.stdin.read() if str(source) == "-" else source.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeError(f"cannot read PINs from {where}: {getattr(exc, 'strerror', None) or exc}") from None
    pins: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        officer_id, sep, pin = (part.strip() for part in line.partition("="))
        if not sep:  # the line may be a bare PIN: never echo it
            raise EdgeError(f"{where} line {number}: expected ID=PIN")
        if officer_id not in names:
            raise EdgeError(f"{where} line {number}: the id there is none of the officers given with --officer "
                            f"({', '.join(names)}); write ID=PIN")  # not echoed: PIN=ID would show the PIN
        if officer_id in pins:
            raise EdgeError(f"{where} line {number}: officer {officer_id}'s PIN is given twice")
        try:
            pins[officer_id] = check_pin(pin)
        except ValueError as exc:
            raise EdgeError(f"{where} line {number} (officer {officer_id}): {exc}") from None
    return pins


def _ask_pin(what: str) -> str:
    low, high = PIN_DIGITS
    pin = getpass.getpass(f"{what}, {low}-{high} digits: ")
    try:
        check_pin(pin)
    except ValueError as exc:
        raise EdgeError(f"{what}: {exc}; nothing written") from None
    if getpass.getpass(f"{what}, again: ") != pin:
        raise EdgeError(f"{what}: the two entries differ; nothing written, run the command again")
    return pin
