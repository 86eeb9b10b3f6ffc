"""Command-line options shared by the commands that connect to the broker (`--broker`, `--ca`, `--cert`, `--key`)."""

import argparse
from pathlib import Path

from pydantic import ValidationError

from edge.config.link import LinkConfig
from edge.errors import ConfigError

DEFAULT_PORT = 8883


def add_broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", required=True, metavar="HOST[:PORT]",
                        help=f"MQTT broker (TLS), port {DEFAULT_PORT} if omitted")
    parser.add_argument("--ca", type=Path, required=True, help="fleet CA certificate (ca.crt)")
    parser.add_argument("--cert", type=Path, required=True, help="this client's certificate, e.g. hq-ingest.crt")
    parser.add_argument("--key", type=Path, required=True, help="this client's private key")


def parse_broker(text: str) -> tuple[str, int]:
    """`--broker HOST[:PORT]` as (host, port); the port is the MQTT-over-TLS default when omitted."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = port, str(DEFAULT_PORT)
    if not host or not port.isdigit():
        raise ConfigError(f"--broker {text!r}: expected HOST or HOST:PORT, e.g. broker.example.org:{DEFAULT_PORT}")
    return host, int(port)


def link_config(args: argparse.Namespace, **extra: object) -> LinkConfig:
    host, port = parse_broker(str(args.broker))
    try:
        return LinkConfig(host=host, port=port, ca=args.ca, cert=args.cert, key=args.key, **extra)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"broker option {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
