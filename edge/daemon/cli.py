"""`edge run`: the device daemon."""

import argparse
from pathlib import Path

from edge.config import load_config
from edge.hardening import forbid_core_dumps


def register(commands) -> None:
    p = commands.add("run", "run the device: camera, pipeline, watchlist sync, alerts to HQ and handhelds")
    p.add_argument("--config", type=Path, default=Path("/etc/edge/edge.toml"), help="device TOML config")
    p.add_argument("--source", help="override camera.source (a file replays footage through the full daemon)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.daemon.lifecycle import Device

    cfg = load_config(args.config)
    if args.source:
        cfg = cfg.model_copy(update={"camera": cfg.camera.model_copy(update={"source": args.source})})
    forbid_core_dumps()  # before the first key or frame is in memory
    return Device(cfg, args.config).run()
