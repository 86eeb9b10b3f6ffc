"""`edge watchlist build | inspect | install | publish | timestamp`: the whole group, declared here once.

HQ staff build and sign a bundle, inspect it, publish it retained on the broker for a fleet or one device,
and install it onto a device's state folder by hand (a device online gets it from the broker instead).
`timestamp` (run periodically, e.g. from a systemd timer) re-signs the freshness statement that says the
published bundle is still the current one (edge.watchlist.timestamp).
"""

import argparse
import hashlib
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import ValidationError

from edge.cliargs import Commands, add_broker_args, add_embedder_arg, add_renamed, link_config
from edge.config import explain
from edge.config.device import DeviceConfig
from edge.config.embedder import EmbedderConfig
from edge.config.match import MatchConfig
from edge.config.runtime import RuntimeConfig
from edge.config.tomlio import load_toml
from edge.config.watchlist import WatchlistConfig
from edge.errors import ConfigError, EdgeError
from edge.fsio import write_atomic
from edge.keys import (
    DEVICE_ENCRYPTION_PUB,
    DEVICE_TOML,
    key_id,
    load_encryption_private,
    load_encryption_public,
    load_signing_private,
    load_signing_public,
)
from edge.link.chunks import publish_bundle
from edge.link.mqtt import LinkError, MqttClient
from edge.models import ENGINES_DIR, Manifest
from edge.protocol import topics
from edge.watchlist.build import enroll
from edge.watchlist.bundle import DEVICE_ID_PATTERN, BundleRefused, BundleSpec, EmbedderRef, parse_header, split
from edge.watchlist.decryption import decrypt
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.entries import EntriesError, parse_time, read_entries
from edge.watchlist.opening import verify
from edge.watchlist.sealing import seal
from edge.watchlist.store import WatchlistStore
from edge.watchlist.timestamp import MAX_VALIDITY, sign_timestamp, timestamp_topic


def register(commands: Commands) -> None:
    group = commands.group("watchlist", "watchlists: build and sign at HQ, inspect, install on a device")

    build = group.add_parser("build", help="enroll photos and write a signed, encrypted bundle",
                             description="Enroll every row of ENTRIES with the devices' own models and seal the "
                                         "result for the recipient devices. See docs/watchlist-bundle.md.")
    build.add_argument("--photos", type=Path, required=True, help="folder the CSV's photo names are relative to")
    build.add_argument("--entries", type=Path, required=True,
                       help="CSV: subject_id,label,category,case_reference,legal_basis,approver,expires,photos"
                            "[,added]; several photos separated by ';'")
    build.add_argument("--hq-key", type=Path, required=True, help="HQ signing private key (hq_signing.key)")
    build.add_argument("--recipients", nargs="+", required=True, metavar="DEVICE",
                       help="ID=PATH of a device_encryption.pub, or a folder from `edge device provision`")
    build.add_argument("--list-version", type=int, required=True, dest="version",
                       help="this list's version number: must exceed every version devices have installed")
    add_renamed(build, "--version", "--list-version", type=int)
    build.add_argument("--expires", required=True, help="ISO 8601 time the whole watchlist stops matching")
    build.add_argument("--out", type=Path, required=True, help="bundle file to write")
    build.add_argument("--watchlist-id", default="default",
                       help="devices take only the ids their [watchlist] follow names; versions count per id "
                            "(default: default)")
    build.add_argument("--scope", default="fleet", help="who it is for, in words (default: fleet)")
    build.add_argument("--not-before", default=None, help="ISO 8601 time it becomes valid (default: now)")
    add_embedder_arg(build, help="embedder model the devices run")
    build.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="embedding storage")
    build.add_argument("--no-thumbnails", action="store_true", help="leave reference thumbnails out")
    build.add_argument("--skip-refused", action="store_true",
                       help="build without rows that have no usable photo instead of failing")
    build.add_argument("--threads", type=int, default=1, help="inference threads for enrollment")
    build.set_defaults(func=build_command)

    inspect = group.add_parser("inspect", help="show a bundle's header, and its entries given a device key")
    inspect.add_argument("bundle", type=Path, help="bundle file made by `edge watchlist build`")
    inspect.add_argument("--encryption-key", type=Path, dest="key",
                         help="a recipient's device_encryption.key: also list the entries")
    add_renamed(inspect, "--key", "--encryption-key", type=Path)
    inspect.add_argument("--hq-pub", type=Path, help="HQ public key: also check the signature")
    inspect.set_defaults(func=inspect_command)

    install = group.add_parser("install", help="install a bundle on this device (refused bundles change nothing)")
    install.add_argument("bundle", type=Path, help="bundle file made by `edge watchlist build`")
    install.add_argument("--config", type=Path, dest="device", metavar="FILE",
                         help=f"the device's TOML with a [device] section ({DEVICE_TOML} or edge.toml): keys and "
                              "state_dir")
    add_renamed(install, "--device", "--config", type=Path)
    install.add_argument("--encryption-key", type=Path, dest="key", help="device_encryption.key (instead of --config)")
    add_renamed(install, "--key", "--encryption-key", type=Path)
    install.add_argument("--hq-pub", type=Path, help="pinned hq_signing.pub (instead of --config)")
    install.add_argument("--state-dir", type=Path, help="watchlist folder (default: --config's [device] state_dir "
                         "+ /watchlist, i.e. /var/lib/edge/watchlist when state_dir is not set)")
    install.add_argument("--follow", nargs="+", metavar="ID", help="watchlist ids this device takes, highest "
                         "precedence first (default: --config's [watchlist] follow)")
    install.add_argument("--embedder", help="embedder model this device is configured for (default: --config's "
                         "[embedder] model, else the default embedder)")
    install.set_defaults(func=install_command)

    publish = group.add_parser(
        "publish",
        help="publish a bundle retained on the broker; devices offline now get it when they reconnect",
        description="Publish a watchlist bundle (opaque bytes, chunked) retained under the fleet's or the "
        "device's watchlist topic. Connect with an HQ certificate the broker ACL lets write there.",
    )
    publish.add_argument("bundle", type=Path, help="bundle file made by `edge watchlist build`")
    target = publish.add_mutually_exclusive_group(required=True)
    target.add_argument("--fleet", help="every device of this fleet")
    target.add_argument("--device", help="one device id")
    add_broker_args(publish)
    publish.add_argument("--chunk-kb", type=int, default=512, help="chunk size in KiB (broker max_packet_size: 1 MiB)")
    publish.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the broker's acks")
    _add_statement_args(publish, required=False)
    publish.set_defaults(func=publish_command)

    stamp = group.add_parser(
        "timestamp", help="re-sign and publish the freshness statement of a published bundle (run periodically)",
        description="Publish, retained beside the bundle, HQ's signed statement that BUNDLE is the current version "
        "of its watchlist as of now. Devices configured with watchlist.max_staleness_s report themselves stale "
        "(and may stop matching) when the newest statement gets older than that: run this more often.")
    stamp.add_argument("bundle", type=Path, help="the bundle published for this fleet or device")
    target = stamp.add_mutually_exclusive_group(required=True)
    target.add_argument("--fleet", help="the fleet it is published for")
    target.add_argument("--device", help="the id of the device it is published for")
    add_broker_args(stamp)
    _add_statement_args(stamp, required=True)
    stamp.set_defaults(func=timestamp_command)


def _add_statement_args(parser: argparse.ArgumentParser, required: bool) -> None:
    also = "" if required else " (given: also publish its freshness statement)"
    parser.add_argument("--hq-key", type=Path, required=required, help=f"HQ signing private key (hq_signing.key){also}")
    parser.add_argument("--valid-for", type=float, default=86400.0, metavar="SECONDS",
                        help=f"statement lifetime (default 86400, at most {MAX_VALIDITY.days} days); re-sign before")


def build_command(args: argparse.Namespace) -> int:
    now = datetime.now(timezone.utc)
    try:
        expires = parse_time(args.expires)
        not_before = parse_time(args.not_before) if args.not_before else now
    except ValueError as exc:
        raise EdgeError(f"--expires/--not-before: {exc}") from None
    if expires <= now:
        raise EdgeError(f"--expires {expires.isoformat()} is in the past: give a future time")
    hq_key = load_signing_private(args.hq_key)
    recipients = [_recipient(text) for text in args.recipients]
    spec_dim = Manifest.load().spec(args.embedder).dim
    rows = read_entries(args.entries, args.photos, now)
    from edge.vision.enroll import Enroller  # loads ONNX Runtime and OpenCV: only when building

    enroller = Enroller.open(embedder=args.embedder, threads=args.threads)
    report = enroll(rows, enroller, thumbnails=not args.no_thumbnails)
    for rejected in report.rejected:
        print(rejected)
    if report.refused_rows and not args.skip_refused:
        raise EntriesError(f"{args.entries}: {len(report.refused_rows)} row(s) refused (or pass --skip-refused):\n  "
                           + "\n  ".join(report.refused_rows))
    for line in report.refused_rows:
        print(f"left out: {line}")
    if not report.subjects:
        raise EntriesError(f"{args.entries}: no row has a usable photo: nothing to build")
    try:
        spec = BundleSpec(watchlist_id=args.watchlist_id, version=args.version, issued=now, not_before=not_before,
                          expires=expires, scope=args.scope, dtype=args.dtype,
                          embedder=EmbedderRef(name=args.embedder, sha256=enroller.model_sha256, dim=spec_dim))
    except ValidationError as exc:
        raise EdgeError(explain(exc, "watchlist build")) from None
    data = seal(spec, report.subjects, recipients, hq_key)
    write_atomic(args.out, data)
    print(f"wrote {args.out}: watchlist {spec.watchlist_id} version {spec.version}, {len(report.subjects)} entries, "
          f"{len(report.rejected)} photo(s) rejected, for {', '.join(d for d, _ in recipients)}, "
          f"expires {expires.isoformat()}")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    raw = split(_read(args.bundle))
    header = verify(raw, load_signing_public(args.hq_pub)) if args.hq_pub else parse_header(raw)
    print(f"bundle {args.bundle}: format {header.format}")
    print(f"signature: {'valid, by the given HQ key' if args.hq_pub else 'not checked (pass --hq-pub)'}")
    for name in ("watchlist_id", "version", "scope", "issued", "not_before", "expires", "entry_count",
                 "embedding_count", "dtype", "cipher", "payload_sha256", "signer"):
        print(f"{name}: {getattr(header, name)}")
    print(f"embedder: {header.embedder.name} sha256 {header.embedder.sha256} dim {header.embedder.dim}")
    for r in header.recipients:
        print(f"recipient: {r.device_id} key {r.key_id}")
    if args.key:
        entries = decrypt(raw, header, load_encryption_private(args.key)).entries
        for i in range(len(entries)):
            e, ref = entries.entry(i), entries.thumbnail(i)
            thumb = f"{ref[1]} B thumbnail" if ref else "no thumbnail"
            print(f"entry {i + 1}: {e.subject_id} | {e.label} | {e.category} | case {e.case_reference} | "
                  f"legal basis {e.legal_basis} | approved by {e.approver} | added {e.added.isoformat()} | "
                  f"expires {e.expires.isoformat()} | {entries.embeddings[i]} embedding(s) | {thumb}")
    return 0


def install_command(args: argparse.Namespace) -> int:
    config, embedder, runtime, match = WatchlistConfig(), EmbedderConfig(), RuntimeConfig(), MatchConfig()
    if args.device:
        device, config, embedder, runtime, match = _device_config(args.device)
        key_path, hq_path = args.key or device.encryption_key, args.hq_pub or device.hq_public_key
        state_dir = args.state_dir or device.state_dir / "watchlist"
    elif args.key and args.hq_pub and args.state_dir:
        key_path, hq_path, state_dir = args.key, args.hq_pub, args.state_dir
    else:
        raise EdgeError("say which device installs it: --config device.toml, or --encryption-key, --hq-pub and "
                        "--state-dir")
    if args.follow:
        config = WatchlistConfig(**{**config.model_dump(), "follow": tuple(args.follow)})
    elif not config.follow:
        raise EdgeError("say which watchlist ids this device takes: --follow ID (or [watchlist] follow in --config)")
    if args.embedder:
        embedder = embedder.model_copy(update={"model": args.embedder})
    # the device's own rules: its configured embedder, the one in use, and only models it can match with now
    embedders = DeviceEmbedders.for_device(Manifest.load(runtime.engines_dir or ENGINES_DIR), embedder, runtime,
                                           match)
    store = WatchlistStore.open(state_dir, device_key=load_encryption_private(key_path),
                                hq_public=load_signing_public(hq_path), embedders=embedders, config=config)
    result = store.install(_read(args.bundle))
    if result.refusal is not None:
        kept = result.state.installed
        raise BundleRefused(result.refusal.code, f"{args.bundle} refused ({result.refusal.code}): "
                            f"{result.refusal.message}; kept "
                            f"{f'version {kept.version} of {kept.watchlist_id}' if kept else 'no watchlist'}")
    print(f"{result.outcome}: {result.state.message} (in {state_dir})")
    return 0


def publish_command(args: argparse.Namespace) -> int:
    try:
        data = args.bundle.read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read bundle {args.bundle}: {exc}") from exc
    if not data:
        raise EdgeError(f"bundle {args.bundle} is empty")
    try:
        prefix = topics.fleet_bundle(args.fleet) if args.fleet is not None else topics.device_bundle(args.device)
    except ValueError as exc:
        raise EdgeError(str(exc)) from exc
    chunk_bytes = args.chunk_kb * 1024
    config = link_config(args, chunk_bytes=chunk_bytes, max_message_bytes=max(1_000_000, chunk_bytes + 4096))
    manifest = publish_bundle(config, prefix, data, args.timeout)
    print(f"published {args.bundle} ({manifest.size} bytes, sha256 {manifest.sha256}) in {manifest.chunks} "
          f"chunk(s), retained under {prefix}")
    if args.hq_key is not None:
        _publish_statement(args, data, prefix)
    return 0


def timestamp_command(args: argparse.Namespace) -> int:
    try:
        prefix = topics.fleet_bundle(args.fleet) if args.fleet is not None else topics.device_bundle(args.device)
    except ValueError as exc:
        raise EdgeError(str(exc)) from exc
    _publish_statement(args, _read(args.bundle), prefix)
    return 0


def _publish_statement(args: argparse.Namespace, data: bytes, prefix: str) -> None:
    """Sign "this bundle is the current version of its list, as of now" and publish it retained beside it."""
    if not 0 < args.valid_for <= MAX_VALIDITY.total_seconds():
        raise EdgeError(f"--valid-for {args.valid_for:g}: give 1 to {MAX_VALIDITY.total_seconds():.0f} seconds")
    hq_key = load_signing_private(args.hq_key)
    header = verify(split(data), hq_key.public_key())  # a statement only for a bundle this HQ key signed
    now = datetime.now(timezone.utc)
    statement = sign_timestamp(header.watchlist_id, header.version, hashlib.sha256(data).hexdigest(), hq_key, now,
                               timedelta(seconds=args.valid_for))
    topic = timestamp_topic(prefix)
    client = MqttClient(link_config(args))
    client.start()
    try:
        client.wait_connected(30.0)
        ack = client.publish_wait(topic, statement, True, 30.0)
    finally:
        client.stop()
    if not ack.ok:
        raise LinkError(f"broker refused the freshness statement on {topic}: {ack.reason}; does the ACL let "
                        f"{client.identity.name} write there?")
    print(f"freshness statement: {header.watchlist_id} version {header.version} is current as of {now.isoformat()}, "
          f"valid {args.valid_for:g} s, retained on {topic}")


def _recipient(text: str) -> tuple[str, X25519PublicKey]:
    """ID=PATH, or a provisioned device folder (its device.toml names the id)."""
    if "=" in text:
        device_id, path = text.split("=", 1)
        if not re.fullmatch(DEVICE_ID_PATTERN, device_id):
            raise EdgeError(f"recipient {text!r}: device id {device_id!r} may hold only letters, digits, _ . -")
        return device_id, load_encryption_public(Path(path))
    folder = Path(text)
    if not (folder / DEVICE_TOML).is_file():
        raise EdgeError(f"recipient {text!r}: give ID=PATH to a device_encryption.pub, or a folder from "
                        f"`edge device provision` (with {DEVICE_TOML})")
    device = _device_config(folder / DEVICE_TOML)[0]
    public = load_encryption_public(folder / DEVICE_ENCRYPTION_PUB)
    print(f"recipient {device.id}: key {key_id(public)[:16]}…", file=sys.stderr)
    return device.id, public


DeviceSections = tuple[DeviceConfig, WatchlistConfig, EmbedderConfig, RuntimeConfig, MatchConfig]


def _device_config(path: Path) -> DeviceSections:
    """The sections of a device.toml or edge.toml that installing a bundle depends on."""
    try:
        raw = load_toml(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if "device" not in raw:
        raise ConfigError(f"{path} has no [device] section: pass the device.toml written by `edge device provision`")
    try:
        return (DeviceConfig(**raw["device"]), WatchlistConfig(**raw.get("watchlist", {})),
                EmbedderConfig(**raw.get("embedder", {})), RuntimeConfig(**raw.get("runtime", {})),
                MatchConfig(**raw.get("match", {})))
    except ValidationError as exc:
        raise ConfigError(explain(exc, str(path))) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read bundle {path}: {exc.strerror}") from None
