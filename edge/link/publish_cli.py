"""`edge watchlist publish`: put a signed bundle on the broker, retained, for a fleet or one device."""

import argparse
from pathlib import Path

from edge.cli import Commands
from edge.errors import EdgeError
from edge.link.chunks import publish_bundle
from edge.link.cli_args import add_broker_args, link_config
from edge.protocol import topics


def register(commands: Commands) -> None:
    group = commands.group("watchlist", "build, inspect, install and publish watchlist bundles")
    parser = group.add_parser(
        "publish",
        help="publish a bundle retained on the broker; devices offline now get it when they reconnect",
        description="Publish a watchlist bundle (opaque bytes, chunked) retained under the fleet's or the "
        "device's watchlist topic. Connect with an HQ certificate the broker ACL lets write there.",
    )
    parser.add_argument("bundle", type=Path, help="bundle file made by `edge watchlist build`")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--fleet", help="every device of this fleet")
    target.add_argument("--device", help="one device id")
    add_broker_args(parser)
    parser.add_argument("--chunk-kb", type=int, default=512, help="chunk size in KiB (broker max_packet_size: 1 MiB)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the broker's acks")
    parser.set_defaults(func=_publish)


def _publish(args: argparse.Namespace) -> int:
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
    return 0
