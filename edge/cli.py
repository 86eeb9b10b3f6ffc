"""The `edge` command. Each area registers its own subcommands; this module only assembles them."""

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from edge import __version__
from edge.cliargs import Commands
from edge.errors import EdgeError

# Modules that define `register(commands: Commands)`; each adds its subcommands and sets `func`.
COMMAND_MODULES = (
    "edge.replay.cli",          # replay
    "edge.bench.cli",           # bench [link | watchlist]
    "edge.evaluation.cli",      # eval verify | identify | calibrate
    "edge.hq.watchlist_cli",    # watchlist build | inspect | install | publish
    "edge.hq.keys_cli",         # hq keys init; device provision
    "edge.hq.pki_cli",          # hq pki init | issue
    "edge.hq.ingest_cli",       # hq ingest | events | report
    "edge.daemon.cli",          # run
    "edge.hq.audit_cli",        # audit verify
    "edge.hq.pair_cli",         # hq pair
    "edge.hq.broker_cli",       # hq broker
    "edge.handheld.cli",        # handheld
    "edge.demo.cli",            # demo
    "edge.engines.cli",         # engines build | check
)

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Face watchlist firmware for Jetson cameras.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"edge {__version__}", help="print the version and exit")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    top.required = True
    commands = Commands(top)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


def chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command's own parser that `args` came through, so that its errors show its usage."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return chosen_parser(action.choices[name], args)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; an option the command does not know is reported with that command's usage, not `edge`'s."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args) or 0)
    except EdgeError as exc:
        print(f"edge: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave cannot be read or written
        where = f" {exc.filename}" if exc.filename else ""
        print(f"edge: error:{where}: {exc.strerror or exc}; check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `edge hq events | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0


if __name__ == "__main__":
    sys.exit(main())
