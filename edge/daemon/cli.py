"""`edge run`: the device daemon (or, with --check, only the check of its config)."""

import argparse
import sys
from pathlib import Path

from edge.config import EdgeConfig, load_config
from edge.errors import ConfigError
from edge.hardening import forbid_core_dumps


def register(commands) -> None:
    p = commands.add("run", "run the device: camera, pipeline, watchlist sync, alerts to HQ and handhelds")
    p.add_argument("--config", type=Path, default=Path("/etc/edge/edge.toml"), help="device TOML config")
    p.add_argument("--source", help="override camera.source (a file replays footage through the full daemon)")
    p.add_argument("--check", action="store_true",
                   help="check the config and the files it names (keys, TLS, state folder, thresholds against the "
                        "embedder's calibration), then exit: 0 valid, 2 with each problem's key named; opens no "
                        "camera and contacts no broker")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.source:
        if cfg.cameras is not None and len(cfg.cameras) > 1:
            raise ConfigError(f"{args.config}: --source replaces the one camera's source, but [[cameras]] lists "
                              f"{len(cfg.cameras)}: set each camera's source in the file instead")
        camera = cfg.all_cameras[0].model_copy(update={"source": args.source})
        cfg = cfg.model_copy(update={"camera": camera, "cameras": None})
    if args.check:
        return _check(cfg, args.config)
    forbid_core_dumps()  # before the first key or frame is in memory
    from edge.daemon.lifecycle import Device

    return Device(cfg, args.config).run()


def _check(cfg: EdgeConfig, path: Path) -> int:
    from edge.daemon.check import check

    result = check(cfg)
    for note in result.notes:
        print(f"{path}: note: '{note.key}': {note.message}", file=sys.stderr)
    if result.problems:
        print(f"{path}: settings valid ({result.summary}), but {len(result.problems)} problem(s) with what they "
              "name; `edge run` would not start:", file=sys.stderr)
        for problem in result.problems:
            print(f"{path}: '{problem.key}': {problem.message}", file=sys.stderr)
        return 2
    print(f"{path}: valid: {result.summary}; keys, TLS files and state folder usable (camera and broker not "
          "contacted)")
    return 0
