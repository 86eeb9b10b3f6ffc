"""`edge bench [link | watchlist | audit | streams]`: the benchmarks behind the figures in the docs, as one command.

`edge bench` alone (with its options) is the vision benchmark, as it always was; `edge bench link`,
`edge bench watchlist`, `edge bench audit` and `edge bench streams` are the MQTT path, the watchlist at scale,
verifying a year's audit log and several cameras on one device. Each workload's code is imported only when it runs.
"""

import argparse
from collections.abc import Callable
from pathlib import Path

from edge.cliargs import Commands, add_model_args, add_renamed, add_report_arg
from edge.errors import ConfigError


def register(commands: Commands) -> None:
    p = commands.add("bench", "per-stage latency and frames per second on real faces, against face_recognition")
    p.description = ("Without a COMMAND: the vision benchmark (cold frame and stream, against face_recognition). "
                     "With one: the link or watchlist benchmark (`edge bench COMMAND --help`).")
    p.add_argument("--size", default="1280x720", help="cold frame size WIDTHxHEIGHT")
    p.add_argument("--faces", type=int, default=6, help="faces tiled into the cold frame")
    p.add_argument("--runs", type=int, default=5, help="cold frame: best of this many runs")
    p.add_argument("--stream-runs", type=int, default=2, help="stream: best of this many passes over the clip")
    p.add_argument("--clip", help="video for the stream workload (default: the shared demo clip)")
    p.add_argument("--no-stream", action="store_true", help="skip the stream workload")
    p.add_argument("--no-baseline", action="store_true", help="skip face_recognition even when installed")
    p.add_argument("--gallery-size", type=int, default=1000, help="watchlist size the matcher searches")
    add_model_args(p, stride="stream: detect every Nth frame", threads_help="inference (and OpenCV) threads")
    p.add_argument("--data", type=Path, help="shared data folder (default $EDGE_TEST_DATA or ../shared/data)")
    add_report_arg(p, "write the figures (JSON) here")
    p.set_defaults(func=_vision)
    vision = {a.dest: a.default for a in p._actions if a.dest != "help"}
    sub = p.add_subparsers(dest="bench_command", metavar="[COMMAND]",
                           title="other benchmarks (default: the vision benchmark above)")
    _register_link(sub)
    _register_watchlist(sub)
    _register_audit(sub)
    _register_streams(sub)
    for name, parser in sub.choices.items():
        own = {a.dest for a in parser._actions}  # options it shares with the vision benchmark are its own
        parser.set_defaults(func=_own_options_only(name, parser.get_default("func"),
                                                   {k: v for k, v in vision.items() if k not in own}))


def _own_options_only(name: str, run: Callable[[argparse.Namespace], int],
                      vision: dict[str, object]) -> Callable[[argparse.Namespace], int]:
    """`edge bench --faces 3 watchlist` must not run with the watchlist's own defaults as if nothing was said."""

    def checked(args: argparse.Namespace) -> int:
        stray = [f"--{dest.replace('_', '-')}" for dest, default in vision.items()
                 if dest != "func" and getattr(args, dest, default) != default]
        if stray:
            raise ConfigError(f"{', '.join(stray)} belong to the vision benchmark (`edge bench` without a command); "
                              f"give `edge bench {name}` its own options after its name (`edge bench {name} --help`)")
        return run(args)

    return checked


def _register_link(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    text = ("signed match events from a device process through a real mosquitto into the HQ store, "
            "in events per second")
    p = sub.add_parser("link", help=text, description=f"{text[0].upper()}{text[1:]}: a throwaway fleet on loopback.")
    p.add_argument("--events", type=int, default=10_000, help="signed events the device sends (default %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="HQ ingest workers sharing the stream")
    p.add_argument("--sync", choices=("normal", "full"), default="full", help="device outbox SQLite sync mode")
    p.set_defaults(func=_link)


def _register_watchlist(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    text = ("build, install (from MQTT chunks and from a file), load and match real watchlists of two sizes: time "
            "and memory against their targets, single-threaded")
    p = sub.add_parser("watchlist", help=text, description=f"{text[0].upper()}{text[1:]}.")
    p.add_argument("--gallery-size", type=int, default=100_000, dest="entries", metavar="N",
                   help="entries of the first list (default %(default)s)")
    add_renamed(p, "--entries", "--gallery-size", type=int)
    p.add_argument("--million", type=int, default=1_000_000, help="entries of the second, large list (0: skip it)")
    p.add_argument("--repeats", type=int, default=30, help="timed repetitions (median reported)")
    p.add_argument("--storage", choices=("bfloat16", "float32"), default="bfloat16", help="gallery storage")
    add_report_arg(p, "also write the figures (JSON) here", dest="json_out")
    p.set_defaults(func=_watchlist)


def _register_audit(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    text = "verify a long device audit log (written once, then reused): records per second and peak memory"
    p = sub.add_parser("audit", help=text, description=f"{text[0].upper()}{text[1:]}.")
    p.add_argument("--records", type=int, default=525_000, help="records in the log (525,000: a year of minutes)")
    p.add_argument("--runs", type=int, default=3, dest="verify_runs", help="verifications timed (best reported)")
    p.add_argument("--log", type=Path, help="the log to write, or to verify again when it is there (its key beside "
                                             "it as LOG.pub.pem; default: ~/.cache/edge/bench/audit-N.log)")
    add_report_arg(p, "also write the figures (JSON) here", dest="json_out")
    p.set_defaults(func=_audit)


def _register_streams(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    text = ("N copies of the demo clip at once through the device's multi-camera path: frames per second per stream "
            "and together, against one stream in the same run")
    p = sub.add_parser("streams", help=text, description=f"{text[0].upper()}{text[1:]}.")
    p.add_argument("--streams", type=int, default=4, help="cameras at once (default %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="passes of each, the best reported (default %(default)s)")
    p.add_argument("--clip", help="video each camera plays (default: the shared demo clip)")
    p.add_argument("--gallery-size", type=int, default=1000, help="watchlist size the matcher searches")
    add_model_args(p, stride="detect every Nth frame", threads_help="inference (and OpenCV) threads")
    p.add_argument("--data", type=Path, help="shared data folder (default $EDGE_TEST_DATA or ../shared/data)")
    add_report_arg(p, "also write the figures (JSON) here")
    p.set_defaults(func=_streams)


def _vision(args: argparse.Namespace) -> int:
    from edge.bench.vision import run_bench

    return run_bench(args)


def _link(args: argparse.Namespace) -> int:
    from edge.bench.link import run_link_bench

    return run_link_bench(args.events, args.workers, args.sync)


def _watchlist(args: argparse.Namespace) -> int:
    from edge.bench.watchlist import run_watchlist_bench

    return run_watchlist_bench(args)


def _audit(args: argparse.Namespace) -> int:
    from edge.bench.audit import run_audit_bench

    return run_audit_bench(args)


def _streams(args: argparse.Namespace) -> int:
    from edge.bench.streams import run_streams_bench

    return run_streams_bench(args)
