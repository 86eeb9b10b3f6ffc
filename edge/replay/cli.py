"""`edge replay`."""

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from edge.capture.open import URI_HELP
from edge.cliargs import add_model_args, stack_from_args
from edge.config import explain
from edge.config.match import MatchConfig
from edge.errors import ConfigError
from edge.models import Manifest
from edge.pipeline import Pipeline
from edge.replay.run import fpir_text, replay
from edge.vision.enroll import Enroller
from edge.watchlist.calibration import load_policy
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.photos import gallery_from_photos


def register(commands) -> None:
    p = commands.add("replay", "review footage or a live source against a watchlist; one line per alert")
    p.add_argument("--source", required=True, help=URI_HELP)
    p.add_argument("--enroll", type=Path, help="folder of photos: one sub-folder per person, or files named after them")
    p.add_argument("--watchlist", type=Path, help="an installed-format bundle instead of --enroll (needs --key)")
    p.add_argument("--key", type=Path, help="device encryption private key for --watchlist")
    p.add_argument("--hq-pub", type=Path, help="HQ signing public key that must have signed --watchlist")
    p.add_argument("--threshold", type=float, help="cosine threshold (default from [match]; never below the floor)")
    p.add_argument("--json", action="store_true", help="one JSON object per alert line")
    add_model_args(p, stride="detect every Nth frame; the tracker carries boxes between (default %(default)s)")
    p.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    if (args.enroll is None) == (args.watchlist is None):
        raise ConfigError("give exactly one of --enroll <photo folder> or --watchlist <bundle> --key <device key>")
    try:
        match_cfg = MatchConfig() if args.threshold is None else MatchConfig(threshold=args.threshold)
    except ValidationError as exc:
        raise ConfigError(explain(exc, "--threshold")) from exc
    manifest = Manifest.load()
    policy = load_policy(match_cfg, manifest.folder, args.embedder, manifest.spec(args.embedder).sha256)
    stack = stack_from_args(args)
    if args.enroll is not None:
        gallery, rejected = gallery_from_photos(args.enroll, Enroller(stack), progress=sys.stderr.isatty())
        for r in rejected:
            print(f"not enrolled: {r.path}: {r.reason.replace('_', ' ')}", file=sys.stderr)
    else:
        from edge.watchlist.offline import load_bundle

        gallery = load_bundle(args.watchlist, args.key, args.hq_pub,
                              DeviceEmbedders.from_manifest(stack.manifest, args.embedder,
                                                            hint="run `edge replay` with --embedder {name}")).gallery
    if gallery.size == 0:
        print("warning: the watchlist is empty; no alert can be raised", file=sys.stderr)
    threshold = policy.for_gallery(gallery.size)
    print(f"watchlist: {gallery.size} people; threshold {threshold.value:.3f} ({threshold.policy}"
          + (f", FPIR {fpir_text(threshold)}" if threshold.fpir else "") + ")", file=sys.stderr)
    pipeline = Pipeline(stack, gallery, threshold, stride=args.stride)
    summary = replay(pipeline, args.source, sys.stdout, args.json)
    c = summary.counters
    print(f"{c.frames} frames in {summary.seconds:.1f} s ({c.frames / max(summary.seconds, 1e-9):.1f} frames/s); "
          f"faces seen {c.faces_seen}, discarded without a match {c.faces_discarded}, alerts {c.alerts}",
          file=sys.stderr)
    return 0
