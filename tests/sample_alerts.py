"""A handheld alert as a device would make it, with real (small) JPEGs: for the protocol and handheld tests."""

import base64
import datetime as dt

import cv2
import numpy as np

from edge.protocol.alert import HandheldAlert
from edge.protocol.messages import new_event_id


def jpeg(hue: int, text: str) -> bytes:
    """A small real JPEG (a coloured disc with a caption), standing in for a face crop."""
    image = np.full((112, 112, 3), 230, np.uint8)
    cv2.circle(image, (56, 50), 34, (hue, 140, 60), -1)
    cv2.putText(image, text, (8, 104), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def make_alert(device: str, handheld: str, label: str = "Subject Alpha", **changes: object) -> HandheldAlert:
    fields: dict[str, object] = {
        "event_id": new_event_id(), "device": device, "handheld": handheld, "camera": "front",
        "observed_at": dt.datetime.now(dt.timezone.utc), "subject_id": "S-001", "label": label,
        "category": "missing", "case_ref": "CASE-2025-0042", "score": 0.612, "threshold": 0.45,
        "threshold_policy": "constant FPIR 0.001 at 120 people (worst group, Black +0.03)", "fpir": 0.001,
        "margin": 0.184, "probe_quality": 0.83, "probe_crop": base64.b64encode(jpeg(200, "probe")).decode(),
        "reference_thumbnail": base64.b64encode(jpeg(40, "reference")).decode(),
    }
    fields.update(changes)
    return HandheldAlert.model_validate(fields)
