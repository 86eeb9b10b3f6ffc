"""`edge hq keys init` (HQ signing key) and `edge device provision` (a device's keys, its identity and a complete
edge.toml to edit)."""

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from edge.cliargs import DEFAULT_PORT, Commands, parse_broker
from edge.config import EdgeConfig, explain
from edge.config.camera import CameraConfig
from edge.config.device import DeviceConfig
from edge.errors import EdgeError
from edge.keys import (
    DEVICE_ENCRYPTION_PUB,
    DEVICE_KEYS,
    DEVICE_TOML,
    HQ_SIGNING_KEY,
    HQ_SIGNING_PUB,
    generate_signing,
    key_id,
    load_signing_public,
    refuse_existing,
    save_private,
    save_public,
    write_key_pairs,
)

EDGE_TOML = "edge.toml"


def register(commands: Commands) -> None:
    hq = commands.group("hq")
    keys = hq.add_parser("keys", help="HQ signing keys", description="HQ signing keys")
    keys_sub = keys.add_subparsers(dest="hq_keys_command", metavar="COMMAND")
    keys_sub.required = True
    init = keys_sub.add_parser("init", help="create the HQ watchlist signing key pair (Ed25519)",
                               description=f"Write OUT/{HQ_SIGNING_KEY} (0600, keep it offline) and "
                                           f"OUT/{HQ_SIGNING_PUB} (pinned on every device).")
    init.add_argument("--out", type=Path, required=True, help="folder for the key pair")
    init.set_defaults(func=hq_keys_init)

    device = commands.group("device", "device identity")
    provision = device.add_parser(
        "provision", help="create a device's key pairs, identity and edge.toml",
        description=f"Write the device's Ed25519 signing and X25519 encryption key pairs, a pinned copy of the "
                    f"HQ public key ({HQ_SIGNING_PUB}), OUT/{DEVICE_TOML} (its identity) and OUT/{EDGE_TOML}: "
                    "a complete configuration (state folder, camera, link to the broker with the TLS files of "
                    "`edge hq pki issue --role device --id ID --out TLS_DIR`) to edit and check with "
                    f"`edge run --config {EDGE_TOML} --check`. Every key: deploy/edge.toml.example.")
    provision.add_argument("--id", required=True, help="device id (letters, digits, _ . -), as in its certificate")
    provision.add_argument("--hq-pub", type=Path, required=True, help=f"HQ's {HQ_SIGNING_PUB}")
    provision.add_argument("--out", type=Path, required=True,
                           help="folder to write (copied to the device); HQ reads its public keys from here, so "
                                "name it device-<id> inside the folder given to `edge hq ingest --device-keys`")
    provision.add_argument("--key-dir", type=Path, default=None,
                           help="where the files will live on the device, for the paths in the configs "
                                "(default: OUT itself)")
    provision.add_argument("--tls-dir", type=Path, default=None,
                           help="where the device's TLS files (ca.crt, device-<id>.crt/.key) will live on it "
                                "(default: KEY_DIR/tls)")
    provision.add_argument("--state-dir", type=Path, default=DeviceConfig.model_fields["state_dir"].default,
                           help="[device] state_dir, the folder of its watchlist, outbox and audit log "
                                "(default: %(default)s)")
    provision.add_argument("--broker", metavar="HOST[:PORT]", default=f"localhost:{DEFAULT_PORT}",
                           help="the fleet broker, as named in its certificate (default: %(default)s; edit it)")
    provision.add_argument("--fleet", help="the fleet whose watchlist the device also takes")
    provision.add_argument("--follow", nargs="+", metavar="ID",
                           help="[watchlist] follow: the watchlist ids the device installs, highest precedence first "
                                "(default: the --fleet id, the list HQ builds with --watchlist-id FLEET)")
    provision.add_argument("--source", default=CameraConfig.model_fields["source"].default,
                           help="[camera] source (default: %(default)s)")
    provision.set_defaults(func=device_provision)


def hq_keys_init(args: argparse.Namespace) -> int:
    out: Path = args.out
    refuse_existing(out, [HQ_SIGNING_KEY, HQ_SIGNING_PUB])
    key = generate_signing()
    save_private(key, out / HQ_SIGNING_KEY)
    save_public(key.public_key(), out / HQ_SIGNING_PUB)
    print(f"HQ signing key {key_id(key.public_key())[:16]}… written to {out / HQ_SIGNING_KEY} (keep it offline); "
          f"provision devices with {out / HQ_SIGNING_PUB}")
    return 0


def device_provision(args: argparse.Namespace) -> int:
    device_id: str = args.id
    out: Path = args.out
    key_dir = (args.key_dir or out).resolve()
    tls_dir = (args.tls_dir or key_dir / "tls").resolve()
    host, port = parse_broker(args.broker)
    settings = {
        "device": {"id": device_id, "state_dir": str(args.state_dir.resolve()), "signing_key":
                   str(key_dir / DEVICE_KEYS.signing_key), "encryption_key": str(key_dir / DEVICE_KEYS.encryption_key),
                   "hq_public_key": str(key_dir / HQ_SIGNING_PUB),
                   **({"fleet": args.fleet} if args.fleet is not None else {})},
        "camera": {"source": args.source},
        "watchlist": {"follow": list(args.follow or ([args.fleet] if args.fleet is not None else []))},
        "link": {"host": host, "port": port, "ca": str(tls_dir / "ca.crt"),
                 "cert": str(tls_dir / f"device-{device_id}.crt"), "key": str(tls_dir / f"device-{device_id}.key")},
    }
    try:
        DeviceConfig(id=device_id)
    except ValidationError:
        raise EdgeError(f"device id {device_id!r} is not allowed: use 1-64 letters, digits, '_', '.', '-'") from None
    try:
        EdgeConfig.model_validate(settings)
    except ValidationError as exc:
        raise EdgeError(explain(exc, "edge device provision")) from None
    hq_public = load_signing_public(args.hq_pub)
    write_key_pairs(out, DEVICE_KEYS, hq_public, reserved=[DEVICE_TOML, EDGE_TOML])
    identity = [f"# Identity of device {device_id}, written by `edge device provision`.", "[device]",
                *_lines(settings["device"], ("id", "signing_key", "encryption_key", "hq_public_key"))]
    (out / DEVICE_TOML).write_text("\n".join(identity) + "\n")
    (out / EDGE_TOML).write_text(_edge_toml(settings, device_id))
    staging = out / "tls"
    print(f"device {device_id} provisioned in {out}: give HQ {out / DEVICE_ENCRYPTION_PUB} as its watchlist "
          f"recipient key (--recipients {out})")
    print(f"config to edit: {out / EDGE_TOML}. Its [link] reads TLS files from {tls_dir}: make them with "
          f"`edge hq pki issue --role device --id {device_id} --ca-dir PKI --out {staging}`"
          + ("" if staging.resolve() == tls_dir else " and install them there on the device")
          + f"; then `edge run --config {out / EDGE_TOML} --check`")
    if out.name != f"device-{device_id}":
        print(f"note: HQ looks for this device's public key in device-{device_id}/{DEVICE_KEYS.signing_pub} under "
              f"`edge hq ingest --device-keys DIR`: name this folder device-{device_id} (or copy the file there)")
    return 0


def _lines(section: dict[str, str | int | list[str]], keys: tuple[str, ...]) -> list[str]:
    return [f"{k} = {json.dumps(section[k])}" for k in keys if k in section]


def _edge_toml(settings: dict[str, dict[str, str | int | list[str]]], device_id: str) -> str:
    """edge.toml as provisioned: what this device needs, with a word on what to edit; the rest stays default."""
    device = settings["device"]
    return "\n".join([
        f"# Configuration of device {device_id}, written by `edge device provision`. Edit it, then check it with",
        "# `edge run --config edge.toml --check`. Every key, with its default: deploy/edge.toml.example.",
        "", "[device]", *_lines(device, ("id", "state_dir")),
        "# the fleet whose watchlist the device also takes (omit for lists sent to this device only)",
        *(_lines(device, ("fleet",)) or ['# fleet = "north"']),
        "# where the device is deployed, reported with each period of use", 'place = ""',
        *_lines(device, ("signing_key", "encryption_key", "hq_public_key")),
        "", "[camera]", "# csi://N, /dev/edge/camera-N, v4l2:///dev/videoN, rtsp://…, or a video file",
        *_lines(settings["camera"], ("source",)),
        "", "[watchlist]", "# the watchlist ids this device installs, highest precedence first; a bundle of any other "
        "id is refused", *_lines(settings["watchlist"], ("follow",)),
        "", "[link]", "# the fleet broker, as named in its certificate; the TLS files come from `edge hq pki issue`",
        *_lines(settings["link"], ("host", "port", "ca", "cert", "key")), ""])
