#!/usr/bin/env python3
"""Both per-track decision rules on one `edge eval stream` scene, at every threshold, exactly.

`edge eval stream`'s curve replays the rule in use, but a track stops its periodic looks once it alerts, so above
the run's threshold the curve can miss alerts. Here the pipeline runs with a threshold no cosine reaches: no track
ever alerts, every track takes every look it would take while undecided, and each look records its own best
candidate and that of the track's aggregate after it (the device's own Pipeline, `[track] decision = "aggregate"`,
computes both). Replaying `votes` and `aggregate` over those looks gives each rule's first alert per track at every
threshold. Also printed: the best score of passers' single looks against that of their tracks' aggregates (do
aggregates of impostor looks concentrate above the single-look threshold?).

    python scripts/stream_rules.py --people ../shared/data/lfw --listed 20 --seconds 60 --seed 0 --profile street

docs/evaluation.md, "Decisions over a whole track", has the figures.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from edge.capture.base import Frame
from edge.cliargs import data_root
from edge.config.quality import QualityConfig
from edge.config.runtime import RuntimeConfig
from edge.config.track import TrackConfig
from edge.evaluation.stream import background, cast, crossings_for, looks_at
from edge.evaluation.stream_scene import PROFILES, Scene
from edge.evaluation.stream_score import CrossingTruth, Look, Sighting, assign, curve, decision_scores
from edge.pipeline import Pipeline
from edge.track.decision import Threshold
from edge.vision.enroll import Enroller
from edge.vision.stack import VisionStack

NEVER = Threshold(2.0, None, "measure", "a threshold no cosine reaches: every look is taken, nothing alerts")
THRESHOLDS = np.round(np.arange(0.30, 0.701, 0.01), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--people", type=Path, required=True)
    p.add_argument("--listed", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", choices=sorted(PROFILES), default="street")
    p.add_argument("--stride", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="write both curves and the impostor figures here")
    args = p.parse_args()
    profile = PROFILES[args.profile]
    stack = VisionStack.open(runtime=RuntimeConfig(threads=args.threads))
    try:
        scene_background = background(data_root(), args.people, stack.detector)
        cast_ = cast(args.people, args.listed, crossings_for(profile, args.seconds), Enroller(stack), args.seed)
        pipeline = Pipeline(stack, cast_.gallery, NEVER, QualityConfig(), TrackConfig(decision="aggregate"),
                            args.stride)
        scene = Scene(cast_.walkers, scene_background[0], profile, args.seconds, args.seed)
        sightings: list[Sighting] = []
        looks: list[Look] = []
        truth: dict[int, list[tuple[int, tuple[float, ...]]]] = {}
        for i in range(scene.frames):
            image, truths = scene.render(i)
            pipeline.process(Frame(image, i, i / profile.fps))
            if i % args.stride:
                continue
            truth[i] = [(t.crossing, t.box) for t in truths]
            for track in pipeline.tracker.tracks.values():
                if track.missed == 0:
                    sightings.append(Sighting(i, track.id, tuple(float(v) for v in track.box)))  # type: ignore[arg-type]
                looks += looks_at(track, i, cast_.gallery.subject_ids)
        pipeline.finish()
    finally:
        stack.close()
    crossings = [CrossingTruth(c.id, c.walker.subject_id, c.start) for c in scene.crossings]
    owner, _ = assign(sightings, truth)
    report = {rule: curve(crossings, owner, decision_scores(looks, TrackConfig().min_evidence, rule), THRESHOLDS)
              for rule in ("votes", "aggregate")}
    passers = {c.id for c in crossings if c.subject_id is None}
    on_passers = [lk for lk in looks if owner.get(lk.track) is None or owner[lk.track] in passers]
    pooled, looked = [], set()
    for lk in sorted(on_passers, key=lambda lk: lk.frame):
        if lk.track in looked:  # an aggregate of two looks or more
            pooled.append(lk.pooled_score)
        looked.add(lk.track)
    singles = [lk.score for lk in on_passers]
    report["impostors"] = {"looks": len(singles), "aggregates": len(pooled),
                           "single_max": max(singles, default=None), "aggregate_max": max(pooled, default=None),
                           "single_mean": float(np.mean(singles)) if singles else None,
                           "aggregate_mean": float(np.mean(pooled)) if pooled else None}
    print(f"listed {sum(c.subject_id is not None for c in crossings)}, passers {len(passers)}")
    print("threshold  votes: fnir, false/1000, wrong   aggregate: fnir, false/1000, wrong")
    for v, a in zip(report["votes"], report["aggregate"], strict=True):
        print(f"{v['threshold']:.2f}  {v['track_fnir']}, {v['false_alerts_per_1000_passers']}, "
              f"{v['wrong_person_alerts']}   {a['track_fnir']}, {a['false_alerts_per_1000_passers']}, "
              f"{a['wrong_person_alerts']}")
    print("impostors:", report["impostors"])
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
