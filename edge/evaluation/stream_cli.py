"""`edge eval stream`: the device's pipeline on generated video of listed people and passers-by, scored per
crossing (docs/evaluation.md, "Video, per track")."""

import argparse
import json
from pathlib import Path
from typing import Any

from edge.cliargs import add_model_args, add_report_arg, data_root, stack_from_args
from edge.config.track import TrackConfig
from edge.errors import ConfigError
from edge.evaluation.plots import stream_plot
from edge.evaluation.stream import background, run_stream
from edge.evaluation.stream_scene import PROFILES

SUMMARY = ("listed_tracks", "passer_tracks", "track_fnir", "false_alerts_per_1000_passers", "wrong_person_alerts",
           "duplicate_alerts_per_crossing", "tracks_per_crossing", "median_seconds_to_alert", "frames_per_second")


def add_parser(group: Any) -> None:
    p = group.add_parser("stream", help="per-track figures on generated street or body-camera video",
                         description="enrol the first N people (sorted) with 2+ photos from their first photo, walk "
                                     "them and other people through generated video, run the device's pipeline at "
                                     "its defaults and score it per crossing")
    p.add_argument("--people", type=Path, required=True, metavar="DIR",
                   help="photo folder, one sub-folder per person (LFW works)")
    add_report_arg(p, "write the figures (JSON) here; the summary goes to stdout either way")
    p.add_argument("--plot", type=Path, help="write FNIR against false alerts as the threshold moves here (PNG)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="street",
                   help="camera: a still street camera, or a shaking, panning body camera (default %(default)s)")
    p.add_argument("--listed", type=int, default=50, help="watchlist size: the first N people (default %(default)s)")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of video to generate (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed for who walks, how, and the camera's motion")
    p.add_argument("--decision", choices=("aggregate", "votes"), default=TrackConfig().decision,
                   help="per-track decision rule, as [track] decision: aggregate (the quality-weighted mean of a "
                        "track's embeddings) or votes (each look on its own) (default %(default)s, as the device)")
    add_model_args(p, threads=2, stride="detect every Nth frame; the tracker carries boxes between (default "
                                        "%(default)s, as the device)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.listed < 1 or args.seconds <= 0 or args.stride < 1:
        raise ConfigError("--listed and --stride must be at least 1 and --seconds above 0")
    if not args.people.is_dir():
        raise ConfigError(f"--people {args.people}: not a folder; give one with a sub-folder of photos per person")
    stack = stack_from_args(args)
    report = run_stream(stack, args.people, PROFILES[args.profile], args.listed, args.seconds, args.seed,
                        args.stride, background(data_root(), args.people, stack.detector),
                        track=TrackConfig(decision=args.decision))
    report["settings"]["threads"] = args.threads
    for key in SUMMARY:
        print(f"{key}: {report[key]}")
    print(f"({report['frames']} frames, threshold {report['settings']['threshold']}, "
          f"{report['seconds_taken']} s in all)")
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot is not None:
        stream_plot(args.plot, report)
    return 0
