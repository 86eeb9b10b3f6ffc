"""The device side of `edge bench link`, a child process: synthetic match events through a real Uplink.

    python -m edge.bench.link_device --config device.json --key device_signing.key --count N [--first I] [--quiet]

Prints "ready" once started, each index once in the outbox (unless --quiet), then "drained" when the outbox is
empty. A process of its own so that the benchmark measures a device's whole way out, and so that the tests
can kill it with SIGKILL mid-burst.
"""

import argparse
import sys
from pathlib import Path

from edge.bench.synthetic import synthetic_match
from edge.config.link import LinkConfig
from edge.link.uplink import Uplink


def main(argv: list[str] | None = None) -> int:
    """Enqueue events `first`..`count-1`, print each index once committed to the outbox, wait until drained."""
    parser = argparse.ArgumentParser(prog="python -m edge.bench.link_device")
    parser.add_argument("--config", type=Path, required=True, help="LinkConfig as JSON")
    parser.add_argument("--key", type=Path, required=True, help="device Ed25519 private key (PEM)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="do not print each index")
    args = parser.parse_args(argv)
    uplink = Uplink(LinkConfig.model_validate_json(args.config.read_text()), args.key)
    uplink.start()
    print("ready", flush=True)
    for i in range(args.first, args.count):
        uplink.send_match(synthetic_match(uplink.device_id, i))
        if not args.quiet:
            print(i, flush=True)
    drained = uplink.wait_drained(300.0)
    print("drained" if drained else "not drained", flush=True)
    uplink.stop()
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(main())
