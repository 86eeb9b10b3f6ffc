"""Command-line options shared by the commands that connect to the broker (`--broker`, `--ca`, `--cert`, `--key`)."""

import argparse
from pathlib import Path

from pydantic import ValidationError

from edge.config.link import LinkConfig
from edge.errors import ConfigError


def add_broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", required=True, metavar="HOST[:PORT]",
                        help="MQTT broker (TLS), port 8883 if omitted")
    parser.add_argument("--ca", type=Path, required=True, help="fleet CA certificate (ca.crt)")
    parser.add_argument("--cert", type=Path, required=True, help="this client's certificate, e.g. hq-ingest.crt")
    parser.add_argument("--key", type=Path, required=True, help="this client's private key")


def link_config(args: argparse.Namespace, **extra: object) -> LinkConfig:
    host, sep, port = str(args.broker).rpartition(":")
    if not sep:
        host, port = port, "8883"
    if not host or not port.isdigit():
        raise ConfigError(f"--broker {args.broker!r}: expected HOST or HOST:PORT, e.g. broker.example.org:8883")
    try:
        return LinkConfig(host=host, port=int(port), ca=args.ca, cert=args.cert, key=args.key, **extra)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"broker option {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
