"""`edge hq keys init` (HQ signing key) and `edge device provision` (a device's keys and config stub)."""

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from edge.cliargs import Commands
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
        "provision", help="create a device's key pairs and config stub",
        description=f"Write OUT/{DEVICE_TOML}, the device's Ed25519 signing and X25519 encryption key pairs, and "
                    f"a pinned copy of the HQ public key ({HQ_SIGNING_PUB}).")
    provision.add_argument("--id", required=True, help="device id (letters, digits, _ . -), as in its certificate")
    provision.add_argument("--hq-pub", type=Path, required=True, help=f"HQ's {HQ_SIGNING_PUB}")
    provision.add_argument("--out", type=Path, required=True, help="folder to write (copied to the device)")
    provision.add_argument("--key-dir", type=Path, default=None,
                           help="where the files will live on the device, for the paths in device.toml "
                                "(default: OUT itself)")
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
    try:
        device = DeviceConfig(id=device_id, signing_key=key_dir / DEVICE_KEYS.signing_key,
                              encryption_key=key_dir / DEVICE_KEYS.encryption_key,
                              hq_public_key=key_dir / HQ_SIGNING_PUB)
    except ValidationError:
        raise EdgeError(f"device id {device_id!r} is not allowed: use 1-64 letters, digits, '_', '.', '-'") from None
    hq_public = load_signing_public(args.hq_pub)
    write_key_pairs(out, DEVICE_KEYS, hq_public, reserved=[DEVICE_TOML])
    lines = [f"# Identity of device {device_id}, written by `edge device provision`.",
             "[device]", f"id = {json.dumps(device.id)}",
             *(f"{k} = {json.dumps(str(getattr(device, k)))}" for k in ("signing_key", "encryption_key",
                                                                       "hq_public_key"))]
    (out / DEVICE_TOML).write_text("\n".join(lines) + "\n")
    print(f"device {device_id} provisioned in {out}: give HQ {out / DEVICE_ENCRYPTION_PUB} as its watchlist "
          f"recipient key (--recipients {device_id}={out / DEVICE_ENCRYPTION_PUB}, or --recipients {out})")
    return 0
