"""Deciding over a whole track: the quality-weighted aggregate of a track's embeddings finds a person whose looks
each fall just short of the threshold, a passer-by's track does not alert, the track's embeddings go when it ends
or the watchlist changes, and `edge eval stream`'s curve replays the rule in use. Real LFW photos of one person,
one per frame at the same place (one track), through the real pipeline and models."""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.base import Frame
from edge.config.track import DecisionRule, TrackConfig
from edge.evaluation.stream import looks_at
from edge.evaluation.stream_score import decision_scores
from edge.pipeline import Pipeline
from edge.track.decision import Alert, Threshold
from edge.track.tracker import Track
from edge.vision.stack import VisionStack
from edge.watchlist.match import Gallery

PERSON, OTHER, PASSER = "Ana_Palacio", "Al_Gore", "Arminio_Fraga"  # enrolled, enrolled, on no list
NEVER = 2.0  # a threshold no cosine reaches: every look and aggregate is measured, nothing alerts


@pytest.fixture(scope="module")
def stack() -> Iterator[VisionStack]:
    s = VisionStack.open()
    yield s
    s.close()


@pytest.fixture(scope="module")
def photos(data_dir: Path) -> dict[str, list[np.ndarray]]:
    return {name: [cv2.imread(str(p)) for p in sorted((data_dir / "lfw" / name).iterdir())[:6]]
            for name in (PERSON, OTHER, PASSER)}


@pytest.fixture(scope="module")
def gallery(stack: VisionStack, photos: dict[str, list[np.ndarray]]) -> Gallery:
    """PERSON and OTHER enrolled from their first photo; their other photos are the looks."""
    enrolled = []
    for name in (PERSON, OTHER):
        image = photos[name][0]
        det = stack.detector(image)
        enrolled.append((name, name, stack.embedder.embed(stack.embedder.crops(image, det.landmarks[:1]))))
    return Gallery.from_subjects(enrolled)


def walk(stack: VisionStack, gallery: Gallery, images: list[np.ndarray], threshold: float,
         rule: DecisionRule) -> tuple[Pipeline, list[Alert]]:
    """One photo a frame, every frame detected and (while undecided) embedded."""
    pipeline = Pipeline(stack, gallery, Threshold(threshold, None, "test", "test: a fixed threshold"),
                        track=TrackConfig(decision=rule, reembed_every=1))
    alerts: list[Alert] = []
    for i, image in enumerate(images):
        alerts += pipeline.process(Frame(image, i, i / 25))
    return pipeline, alerts


def face_track(pipeline: Pipeline) -> Track:
    """The track of the photos' own face (LFW photos show others at their edges, in tracks of one look or two)."""
    return max(pipeline.tracker.tracks.values(), key=lambda t: len(t.evidence))


def test_the_aggregate_alerts_when_each_look_falls_just_short(stack: VisionStack, gallery: Gallery,
                                                              photos: dict[str, list[np.ndarray]]) -> None:
    looks = photos[PERSON][1:]
    measured = face_track(walk(stack, gallery, looks, NEVER, "aggregate")[0]).evidence
    assert len(measured) == len(looks) and {ev.subject_index for ev in measured} == {0}
    best_look = max(ev.score for ev in measured)
    threshold = round(best_look + 0.01, 3)  # every look on its own falls just short
    assert max(ev.pooled_score for ev in measured[1:]) > threshold + 0.02  # her looks' mean is her more clearly

    assert walk(stack, gallery, looks, threshold, "votes")[1] == []
    pipeline, alerts = walk(stack, gallery, looks, threshold, "aggregate")
    assert [a.subject_id for a in alerts] == [PERSON]
    alert, track = alerts[0], face_track(pipeline)
    assert alert.track_id == track.id and alert.frame >= 1  # after two looks at least
    assert alert.score >= threshold > best_look  # the aggregate's score, not a single look's
    assert alert.threshold.value == threshold and alert.runner_up == OTHER
    shown = next(ev for ev in track.evidence if ev.crop is alert.crop)  # a real face of the track, not a mean
    assert alert.quality == shown.probe and alert.crop.shape == (112, 112, 3)


def test_a_passers_track_does_not_alert(stack: VisionStack, gallery: Gallery,
                                        photos: dict[str, list[np.ndarray]]) -> None:
    measured, alerts = walk(stack, gallery, photos[PASSER], NEVER, "aggregate")
    track = face_track(measured)
    assert len(track.evidence) >= 4
    assert all(ev.pooled_score < 0.45 for ev in track.evidence)  # the device's threshold for a small list
    assert walk(stack, gallery, photos[PASSER], 0.45, "aggregate")[1] == [] and alerts == []


def test_embeddings_go_when_the_watchlist_changes_or_the_track_ends(stack: VisionStack, gallery: Gallery,
                                                                    photos: dict[str, list[np.ndarray]]) -> None:
    looks = photos[PERSON][1:4]
    pipeline, _ = walk(stack, gallery, looks, NEVER, "aggregate")
    track = face_track(pipeline)
    assert track.pooled is not None and len(track.evidence) == 3
    assert sum(ev.crop is not None for ev in track.evidence) == 1  # only the latest look's face, none below it
    voted = face_track(walk(stack, gallery, looks, NEVER, "votes")[0])
    assert voted.pooled is None and all(ev.crop is None for ev in voted.evidence)  # votes keeps neither

    pipeline.swap_watchlist(gallery, pipeline.threshold)
    assert track.pooled is None and track.evidence == []
    pipeline.process(Frame(looks[0], 10, 10 / 25))
    assert len(track.evidence) == 1  # a new aggregate: the looks before the swap do not count
    assert track.evidence[0].pooled_score == pytest.approx(track.evidence[0].score, abs=1e-5)

    blank = np.zeros_like(looks[0])
    for i in range(pipeline.track_cfg.max_missed + 1):  # the face is gone: the track dies
        pipeline.process(Frame(blank, 11 + i, (11 + i) / 25))
    assert track.id not in pipeline.tracker.tracks and track.pooled is None and track.evidence == []

    ended, _ = walk(stack, gallery, looks, NEVER, "aggregate")
    last = face_track(ended)
    ended.finish()  # end of source
    assert last.pooled is None and last.evidence == [] and ended.tracker.tracks == {}


@pytest.mark.parametrize("rule", ["aggregate", "votes"])
def test_the_stream_curve_replays_the_rule_in_use(stack: VisionStack, gallery: Gallery,
                                                  photos: dict[str, list[np.ndarray]], rule: DecisionRule) -> None:
    """The scorer's highest alerting threshold for the track, from its looks, is where the pipeline itself
    stops alerting."""
    looks = photos[PERSON][1:]
    pipeline, _ = walk(stack, gallery, looks, NEVER, rule)
    track = face_track(pipeline)
    replayed = [look for frame in range(len(looks)) for look in looks_at(track, frame, gallery.subject_ids)]
    highest = decision_scores(replayed, TrackConfig().min_evidence, rule)[track.id][PERSON]
    for threshold, alerts in ((highest, True), (highest + 1e-3, False)):
        raised = walk(stack, gallery, looks, threshold, rule)[1]
        assert any(a.subject_id == PERSON for a in raised) is alerts, (rule, threshold)
