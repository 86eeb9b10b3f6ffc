"""A benchmark frame with real faces: LFW portraits tiled into one camera-sized image."""

import math
from pathlib import Path

import cv2
import numpy as np

from edge.capture.opencv import read_image
from edge.errors import EdgeError

# People with several LFW photos: photo 1 goes into the frame, photo 2 into the benchmark's watchlist.
PEOPLE = (
    "George_W_Bush", "Colin_Powell", "Serena_Williams", "Tony_Blair", "Jennifer_Lopez", "Vladimir_Putin",
    "Gloria_Macapagal_Arroyo", "Junichiro_Koizumi", "Hugo_Chavez", "Laura_Bush", "Ariel_Sharon", "Jean_Chretien",
)
CROP = (45, 205)  # LFW deep-funneled portraits are 250x250 with the face centred: keep the head only
BACKGROUND = 96


def photo(lfw_dir: Path, person: str, number: int) -> Path:
    path = lfw_dir / person / f"{person}_{number:04d}.jpg"
    if not path.is_file():
        raise EdgeError(f"{path} not found: give the LFW folder of the shared data (Name/Name_NNNN.jpg)")
    return path


def tile_faces(lfw_dir: Path, width: int, height: int, faces: int) -> np.ndarray:
    """A width x height BGR frame with `faces` different people in a grid, one head per cell."""
    if not 1 <= faces <= len(PEOPLE):
        raise EdgeError(f"--faces must be between 1 and {len(PEOPLE)} (distinct people available)")
    cols = max(range(1, faces + 1), key=lambda c: min(width // c, height // math.ceil(faces / c)))
    rows = math.ceil(faces / cols)
    cell_w, cell_h = width // cols, height // rows
    side = int(0.9 * min(cell_w, cell_h))
    if side < 48:
        raise EdgeError(f"{faces} faces do not fit a {width}x{height} frame at a detectable size; "
                        "use a larger --size or fewer --faces")
    frame = np.full((height, width, 3), BACKGROUND, np.uint8)
    a, b = CROP
    for i, person in enumerate(PEOPLE[:faces]):
        head = read_image(photo(lfw_dir, person, 1))[a:b, a:b]
        head = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA if side < b - a else cv2.INTER_LINEAR)
        r, c = divmod(i, cols)
        y, x = r * cell_h + (cell_h - side) // 2, c * cell_w + (cell_w - side) // 2
        frame[y:y + side, x:x + side] = head
    return frame


def watchlist_photos(lfw_dir: Path, faces: int) -> list[tuple[str, Path]]:
    """Another photo of each person in the frame, to enroll (so the frame's faces are real matches)."""
    return [(person, photo(lfw_dir, person, 2)) for person in PEOPLE[:faces]]


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise EdgeError(f"--size {text!r}: give WIDTHxHEIGHT, e.g. 1280x720") from exc
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise EdgeError(f"--size {text!r}: width and height must be between 64 and 8192")
    return w, h
