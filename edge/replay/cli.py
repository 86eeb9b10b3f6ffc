"""`edge replay`."""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from edge.capture.base import FrameSource
from edge.capture.open import URI_HELP, open_source
from edge.cliargs import add_model_args, stack_from_args
from edge.config.match import MatchConfig
from edge.errors import ConfigError, SourceError
from edge.hardening import forbid_core_dumps
from edge.models import Manifest
from edge.pipeline import Pipeline
from edge.replay.run import fpir_text, replay
from edge.vision.enroll import Enroller
from edge.vision.stack import VisionStack
from edge.watchlist.calibration import ThresholdPolicy, load_policy
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.match import Gallery
from edge.watchlist.photos import gallery_from_photos


def register(commands) -> None:
    p = commands.add("replay", "review footage, photos or a live source against a watchlist; one line per alert")
    p.add_argument("--source", required=True, help=URI_HELP)
    p.add_argument("--wait", action="store_true",
                   help="wait for a live source that is missing or drops (default: exit 2 at once, saying why)")
    p.add_argument("--enroll", type=Path, help="folder of photos: one sub-folder per person, or files named after them")
    p.add_argument("--watchlist", type=Path,
                   help="an installed-format bundle instead of --enroll (needs --encryption-key)")
    p.add_argument("--encryption-key", type=Path, help="device_encryption.key, to open --watchlist")
    p.add_argument("--hq-pub", type=Path, help="HQ signing public key that must have signed --watchlist")
    p.add_argument("--threshold", type=float,
                   help="fixed cosine threshold, from the embedder's floor to 1 (default: [match] policy, constant "
                        "false-alarm rate for the list's size)")
    p.add_argument("--json", action="store_true", help="print one JSON object per alert line")
    add_model_args(p, stride="video: detect every Nth frame; the tracker carries boxes between (default "
                              "%(default)s; photos are each judged on their own)")
    p.set_defaults(func=run_replay)


def threshold_policy(args: argparse.Namespace, manifest: Manifest) -> ThresholdPolicy:
    """The [match] defaults, or a fixed `--threshold` that must lie between the embedder's floor and 1."""
    sha256 = manifest.spec(args.embedder).sha256
    policy = load_policy(MatchConfig(), manifest.folder, args.embedder, sha256)
    if args.threshold is None:
        return policy
    if not policy.floor <= args.threshold <= 1.0:  # also refuses nan
        raise ConfigError(f"--threshold {args.threshold}: give a cosine from the floor {policy.floor} of "
                          f"{args.embedder} ({policy.floor_source}) to 1")
    return load_policy(MatchConfig(threshold=args.threshold), manifest.folder, args.embedder, sha256)


def open_replay_source(args: argparse.Namespace) -> FrameSource:
    """The source, opened before anything slow: a camera or stream that is not there fails now, saying why."""
    try:
        return open_source(args.source, wait=args.wait)
    except SourceError as exc:
        if args.wait or Path(args.source).exists():
            raise
        raise SourceError(f"{exc}; for a camera or stream that is not up yet, add --wait") from exc


def load_gallery(args: argparse.Namespace, stack: VisionStack) -> Gallery:
    """The list to match: enrolled from --enroll, or an installed-format bundle; with no one on it, an error."""
    if args.enroll is not None:
        gallery, rejected = gallery_from_photos(args.enroll, Enroller(stack))
        for r in rejected:
            print(f"not enrolled: {r.path}: {r.reason.replace('_', ' ')}", file=sys.stderr)
        if gallery.size == 0:
            raise ConfigError(f"no one enrolled from {args.enroll}: " + (
                f"all {len(rejected)} photos refused (see above); give photos with one clear, frontal face each"
                if rejected else "no photos in it (one sub-folder per person, or files named after them)"))
        return gallery
    from edge.watchlist.offline import load_bundle

    gallery = load_bundle(args.watchlist, args.encryption_key, args.hq_pub,
                          DeviceEmbedders.from_manifest(stack.manifest, args.embedder,
                                                        hint="run `edge replay` with --embedder {name}")).gallery
    if gallery.size == 0:
        raise ConfigError(f"{args.watchlist} lists no one in force: no alert could be raised")
    return gallery


def run_replay(args: argparse.Namespace) -> int:
    forbid_core_dumps()  # footage, face crops, a decrypted watchlist and the device's key: as `edge run`
    if (args.enroll is None) == (args.watchlist is None):
        raise ConfigError("give exactly one of --enroll <photo folder> or --watchlist <bundle> --encryption-key "
                          "<device_encryption.key>")
    manifest = Manifest.load()
    policy = threshold_policy(args, manifest)
    stack = stack_from_args(args)
    source = open_replay_source(args)
    try:
        gallery = load_gallery(args, stack)
    except BaseException:
        source.close()
        raise
    threshold = policy.for_gallery(gallery.size)
    if args.threshold is not None:
        threshold = replace(threshold, policy="fixed (--threshold)")
    print(f"watchlist: {gallery.size} people; threshold {threshold.value:.3f} ({threshold.policy}"
          + (f", FPIR {fpir_text(threshold)}" if threshold.fpir else "") + ")", file=sys.stderr)
    summary = replay(Pipeline(stack, gallery, threshold, stride=args.stride), source, sys.stdout, args.json)
    c = summary.counters
    rate = f"{summary.frames / max(summary.seconds, 1e-9):.1f}"
    done = (f"{summary.frames} photos in {summary.seconds:.1f} s ({rate} photos/s)" if summary.stills else
            f"{summary.frames} frames in {summary.seconds:.1f} s ({rate} frames/s)")
    print(f"{done}; faces seen {c.faces_seen}, discarded without a match {c.faces_discarded}, alerts {c.alerts}",
          file=sys.stderr)
    return 0
