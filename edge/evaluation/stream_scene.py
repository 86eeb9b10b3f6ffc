"""Generated street or body-camera video of people walking through, with the truth of who is where in every frame.

Each crossing is one person walking across the frame once, shown by one of their real photos: the face region of
the photo (LFW's deep-funneled layout: the face fills the middle 100x120 px of a 250x250 photo) is scaled to the
crossing's face width (24 to 200 px), lit by the crossing's own gain and the scene's slow light drift, smeared by
the motion of that frame, and blended onto the background above a torso of its own, so that a nearer walker hides
a farther one. The body camera's view also shakes and pans. Every random choice is drawn when the scene is made,
from the seed: frame `i` is the same image every time it is rendered, and nothing is written to disk.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge.capture.opencv import read_image

FRAME_W, FRAME_H = 1280, 720
# Where the face is in an LFW deep-funneled photo (250x250), and the head patch around it that is pasted.
PHOTO_FACE = (75, 70, 175, 190)  # x1, y1, x2, y2
PHOTO_HEAD = (45, 35, 205, 215)
FACE_W = PHOTO_FACE[2] - PHOTO_FACE[0]
GAIT_FRAMES = 12.0  # a step's up-and-down, in frames
EXPOSURE = 0.3  # of a frame's interval: how far a face moves while the shutter is open (motion blur)
FACE_M = 0.16  # a face's width in metres: pixels per metre walked at a given face size


class Profile(BaseModel):
    """How a camera sees people: frame rate, how many walk at once, how fast, how big, how the camera moves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    fps: float = Field(25.0, gt=0)
    concurrent: float = Field(3.0, gt=0, description="walkers in view at once, on average")
    walk_mps: tuple[float, float] = (0.3, 1.4)  # speed across the view (metres a second): diagonal to straight
    seconds_per_crossing: tuple[float, float] = (1.5, 10.0)  # a crossing's time is held inside this
    mean_seconds: float = Field(4.0, gt=0, description="a crossing's typical time, to plan how many walk")
    face_px: tuple[float, float] = (24.0, 200.0)
    growth: tuple[float, float] = (1.0, 1.3)  # face width at the end over the start (walking towards the camera)
    gain: tuple[float, float] = (0.6, 1.3)  # a walker's lighting (shade, sun)
    drift: float = 0.12  # the scene's light level swings this much over `drift_seconds`
    drift_seconds: float = 20.0
    shake_px: float = 0.0  # body camera: jitter amplitude (pixels)
    pan_px: float = 0.0  # body camera: the view swings this far each side
    pan_seconds: float = 8.0


PROFILES = {
    "street": Profile(name="street"),
    "bodycam": Profile(name="bodycam", concurrent=2.0, shake_px=8.0, pan_px=160.0, pan_seconds=7.0),
}


@dataclass(frozen=True)
class Walker:
    """Someone who may walk through: their name, the photo they are shown by, their watchlist id (None: a passer)."""

    person: str
    photo: Path
    subject_id: str | None


@dataclass(frozen=True)
class Crossing:
    """One walk across the frame: who, from which frame for how many, and how they look on the way."""

    id: int
    walker: Walker
    start: int
    frames: int
    leftward: bool
    y: float  # the face's centre height, as a share of the frame height
    size: float  # face width at the start (pixels)
    growth: float
    gain: float
    colour: tuple[int, int, int]  # torso

    @property
    def listed(self) -> bool:
        return self.walker.subject_id is not None

    def face_box(self, index: int, frame_w: int) -> tuple[float, float, float, float] | None:
        """The face's box at frame `index` in a still camera's coordinates, or None outside the crossing."""
        t = (index - self.start) / max(self.frames - 1, 1)
        if not 0.0 <= t <= 1.0:
            return None
        w = self.size * (1.0 + (self.growth - 1.0) * t)
        h = w * 1.2
        span = frame_w + 2 * w
        cx = -w + span * (1.0 - t if self.leftward else t)
        cy = self.y * FRAME_H + 0.04 * w * math.sin(2 * math.pi * (index - self.start) / GAIT_FRAMES)
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


@dataclass(frozen=True)
class Truth:
    """A face in a rendered frame: which crossing, its box in the frame, and how much of it is not hidden."""

    crossing: int
    box: tuple[float, float, float, float]
    visible: float


class Scene:
    """The crossings of `walkers` (in the order given) over `seconds`, on `background`, as `profile` sees them."""

    def __init__(self, walkers: list[Walker], background: np.ndarray, profile: Profile, seconds: float,
                 seed: int = 0) -> None:
        self.profile = profile
        self.frames = max(1, round(seconds * profile.fps))
        rng = np.random.default_rng(seed)
        margin = int(profile.pan_px + 3 * profile.shake_px)
        self.world = cv2.resize(background, (FRAME_W + 2 * margin, FRAME_H + 2 * margin),
                                interpolation=cv2.INTER_LINEAR)
        self.margin = margin
        self.crossings = [self._crossing(i, w, rng) for i, w in enumerate(walkers)]
        self.offsets = self._camera_path(rng)
        self.drift_phase = float(rng.uniform(0, 2 * math.pi))
        self._heads: dict[int, np.ndarray] = {}

    def _crossing(self, i: int, walker: Walker, rng: np.random.Generator) -> Crossing:
        p = self.profile
        growth = float(rng.uniform(*p.growth))
        lo, hi = p.face_px
        size = float(math.exp(rng.uniform(math.log(lo), math.log(hi / growth))))
        px_per_second = rng.uniform(*p.walk_mps) * size * (1 + growth) / 2 / FACE_M
        seconds = min(max((FRAME_W + size * (1 + growth)) / px_per_second, p.seconds_per_crossing[0]),
                      p.seconds_per_crossing[1])
        frames = max(2, round(seconds * p.fps))
        y_share = float(rng.uniform(0.25, 0.55))
        return Crossing(i, walker, int(rng.integers(0, max(1, self.frames - frames + 1))), frames,
                        bool(rng.integers(0, 2)), y_share, size, growth, float(rng.uniform(*p.gain)),
                        tuple(int(c) for c in rng.integers(20, 200, 3)))  # type: ignore[arg-type]

    def _camera_path(self, rng: np.random.Generator) -> np.ndarray:
        """(frames, 2) view offsets in pixels: a slow pan plus smoothed jitter (zero for a still camera)."""
        p = self.profile
        t = np.arange(self.frames) / p.fps
        pan = p.pan_px * np.sin(2 * np.pi * t / p.pan_seconds + rng.uniform(0, 2 * np.pi))
        jitter = rng.normal(0.0, 1.0, (self.frames + 4, 2))
        jitter = (jitter[:-4] + jitter[1:-3] + jitter[2:-2] + jitter[3:-1] + jitter[4:]) / math.sqrt(5)
        offsets = p.shake_px * jitter
        offsets[:, 0] += pan
        return offsets

    def truth(self, index: int) -> list[Truth]:
        """Who is where in frame `index`: one entry per face at least partly inside the frame."""
        return self._layout(index)[1]

    def render(self, index: int) -> tuple[np.ndarray, list[Truth]]:
        """Frame `index` (BGR uint8, FRAME_H x FRAME_W) and its truth."""
        dx, dy = self.offsets[index]
        m = self.margin
        x0, y0 = round(m + dx), round(m + dy)
        frame = self.world[y0:y0 + FRAME_H, x0:x0 + FRAME_W].copy()
        order, truths = self._layout(index)
        velocity = self.offsets[index] - self.offsets[max(index - 1, 0)]
        for crossing, box in order:
            self._draw(frame, crossing, box, index, velocity)
        in_view = {c.id for c, _ in order}
        self._heads = {k: v for k, v in self._heads.items() if k in in_view}  # a long run holds only who is in view
        light = 1.0 + self.profile.drift * math.sin(2 * math.pi * index / (self.profile.drift_seconds
                                                                          * self.profile.fps) + self.drift_phase)
        frame = cv2.convertScaleAbs(frame, alpha=light)
        shake = float(np.hypot(*velocity)) * EXPOSURE
        if shake >= 1.5:  # the whole view smears along the camera's motion
            frame = cv2.filter2D(frame, -1, _line_kernel(shake, math.atan2(velocity[1], velocity[0])))
        return frame, truths

    def _layout(self, index: int) -> tuple[list[tuple[Crossing, tuple[float, ...]]], list[Truth]]:
        """The walkers in view, far (small) to near, with their boxes in frame coordinates; and the truth."""
        ox, oy = self.offsets[index]
        placed = []
        for c in self.crossings:
            box = c.face_box(index, FRAME_W)
            if box is not None:
                placed.append((c, (box[0] - ox, box[1] - oy, box[2] - ox, box[3] - oy)))
        placed.sort(key=lambda cb: cb[1][2] - cb[1][0])
        truths = []
        for k, (c, box) in enumerate(placed):
            x1, y1, x2, y2 = max(box[0], 0), max(box[1], 0), min(box[2], FRAME_W), min(box[3], FRAME_H)
            if x2 <= x1 or y2 <= y1:
                continue
            truths.append(Truth(c.id, box, _visible(box, [_body_boxes(b) for _, b in placed[k + 1:]])))
        return placed, truths

    def _head(self, crossing: Crossing) -> np.ndarray:
        if crossing.id not in self._heads:
            photo = cv2.resize(read_image(crossing.walker.photo), (250, 250), interpolation=cv2.INTER_AREA)
            self._heads[crossing.id] = photo[PHOTO_HEAD[1]:PHOTO_HEAD[3], PHOTO_HEAD[0]:PHOTO_HEAD[2]]
        return self._heads[crossing.id]

    def _draw(self, frame: np.ndarray, crossing: Crossing, box: tuple[float, ...], index: int,
              view_velocity: np.ndarray) -> None:
        """The torso, then the head patch scaled so that the photo's face lands exactly on `box`."""
        scale = (box[2] - box[0]) / FACE_W
        for (x1, y1, x2, y2), part in zip(_body_boxes(box), ("torso", "head"), strict=True):
            ix1, iy1, ix2, iy2 = round(x1), round(y1), round(x2), round(y2)
            if part == "torso":
                cv2.ellipse(frame, ((ix1 + ix2) // 2, (iy1 + iy2) // 2), ((ix2 - ix1) // 2, (iy2 - iy1) // 2),
                            0, 0, 360, crossing.colour, -1)
                continue
            w, h = ix2 - ix1, iy2 - iy1
            if w < 2 or h < 2:
                return
            head = cv2.resize(self._head(crossing), (w, h), interpolation=cv2.INTER_AREA if scale < 1
                              else cv2.INTER_LINEAR)
            head = cv2.convertScaleAbs(head, alpha=crossing.gain)
            step = (FRAME_W + 2 * (box[2] - box[0])) / max(crossing.frames - 1, 1)  # pixels per frame
            motion = np.array([-step if crossing.leftward else step, 0.0]) - view_velocity
            length = float(np.hypot(*motion)) * EXPOSURE
            if length >= 1.5:
                head = cv2.filter2D(head, -1, _line_kernel(length, math.atan2(motion[1], motion[0])))
            _blend(frame, head, ix1, iy1)


def _body_boxes(face: tuple[float, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The torso under a face, and the head patch around it (the photo's head region, placed by its face box)."""
    x1, y1, x2, y2 = face
    s = (x2 - x1) / FACE_W
    head = (x1 - (PHOTO_FACE[0] - PHOTO_HEAD[0]) * s, y1 - (PHOTO_FACE[1] - PHOTO_HEAD[1]) * s,
            x2 + (PHOTO_HEAD[2] - PHOTO_FACE[2]) * s, y2 + (PHOTO_HEAD[3] - PHOTO_FACE[3]) * s)
    w = x2 - x1
    torso = (x1 - 0.7 * w, y2 + 0.2 * w, x2 + 0.7 * w, y2 + 3.5 * w)
    return torso, head


def _visible(face: tuple[float, ...], nearer: list[tuple[tuple[float, ...], ...]]) -> float:
    """The share of the face's box inside the frame and not covered by nearer walkers' heads or torsos."""
    x1, y1, x2, y2 = face
    w, h = max(1, round(x2 - x1)), max(1, round(y2 - y1))
    mask = np.zeros((h, w), bool)
    cx1, cy1 = round(max(0, -x1)), round(max(0, -y1))
    cx2, cy2 = round(min(w, FRAME_W - x1)), round(min(h, FRAME_H - y1))
    mask[max(cy1, 0):max(cy2, 0), max(cx1, 0):max(cx2, 0)] = True
    for parts in nearer:
        for bx1, by1, bx2, by2 in parts:
            mask[int(max(0, by1 - y1)):int(max(0, by2 - y1)), int(max(0, bx1 - x1)):int(max(0, bx2 - x1))] = False
    return float(mask.mean())


def _line_kernel(length: float, angle: float) -> np.ndarray:
    """A motion-blur kernel: a line `length` pixels long at `angle` (radians), summing to one."""
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = math.cos(angle) * (size - 1) / 2, math.sin(angle) * (size - 1) / 2
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return kernel / kernel.sum()


def _blend(frame: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Paste `patch` with its top-left at (x, y) through a soft oval, clipped to the frame."""
    h, w = patch.shape[:2]
    fx1, fy1, fx2, fy2 = max(x, 0), max(y, 0), min(x + w, frame.shape[1]), min(y + h, frame.shape[0])
    if fx2 <= fx1 or fy2 <= fy1:
        return
    yy, xx = np.mgrid[0:h, 0:w]
    r = ((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2
    alpha = np.clip((1.0 - r) / 0.15, 0.0, 1.0)[..., None]
    px1, py1 = fx1 - x, fy1 - y
    region = frame[fy1:fy2, fx1:fx2].astype(np.float32)
    part = patch[py1:py1 + fy2 - fy1, px1:px1 + fx2 - fx1].astype(np.float32)
    a = alpha[py1:py1 + fy2 - fy1, px1:px1 + fx2 - fx1]
    frame[fy1:fy2, fx1:fx2] = (part * a + region * (1.0 - a)).astype(np.uint8)
