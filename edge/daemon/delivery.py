"""Where an alert leaves the device: the one place a track's decision turns into something sent.

A decision becomes a signed match event in the outbox (durable; the link publishes it to HQ), then an `alert`
record in the audit chain, then one sealed alert per paired handheld. The steps run in that order and each
exactly once: a step that fails (a full disk, a broken outbox) keeps the alert in memory and is retried with
the next frame, so the pipeline keeps running and no match event is lost or sent twice.
"""

import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.audit.counters import MinuteCounters
from edge.audit.log import AuditLog
from edge.audit.records import AlertBody
from edge.errors import EdgeError
from edge.link.uplink import Uplink
from edge.protocol import messages
from edge.protocol.alert import Listing
from edge.protocol.pairing import DevicePairing
from edge.track.decision import Alert
from edge.watchlist.installed import InstalledWatchlist, SubjectInfo

log = logging.getLogger(__name__)


@dataclass
class PendingAlert:
    """An alert on its way out, and which of its delivery steps are done."""

    event: messages.MatchEvent
    audit: AlertBody
    alert: Alert
    crop: bytes | None
    subject: SubjectInfo
    queued: bool = False
    audited: bool = False
    to_handhelds: bool = False
    failing: bool = False


class AlertDelivery:
    """Sends the inference thread's alerts to the outbox, the audit log and the paired handhelds.

    Not thread-safe: the inference thread owns it, and the main thread takes it over once that thread ended.
    """

    def __init__(self, *, device_id: str, camera_id: str, probe_crop: bool, detector_sha256: str,
                 signing_key: Ed25519PrivateKey, uplink: Uplink, audit: AuditLog,
                 minutes: MinuteCounters, pairing: Callable[[], DevicePairing | None], place: str = "") -> None:
        """`pairing()` returns the device's current pairing record (it changes while the daemon runs); `place`
        (device.place) is shown to the officer with each alert."""
        self.device_id = device_id
        self.place = place
        self.camera_id = camera_id
        self.probe_crop = probe_crop
        self.detector_sha256 = detector_sha256
        self.signing_key = signing_key
        self.uplink = uplink
        self.audit = audit
        self.minutes = minutes
        self.pairing = pairing
        self._undelivered: list[PendingAlert] = []  # alerts with a delivery step still to do, oldest first

    @property
    def undelivered(self) -> int:
        """Alerts with a step not yet done (lost if the process ends now)."""
        return len(self._undelivered)

    def emit(self, alert: Alert, wl: InstalledWatchlist | None) -> None:
        """Turn an alert into its match event and deliver it; a failed step is kept and retried, never dropped.

        `wl` is the watchlist the pipeline matched against when it raised the alert, with the embedder it
        was enrolled with (the one the pipeline embedded the probe with).
        """
        assert wl is not None  # an alert needs a watchlist
        subject = wl.subject(alert.subject_index)
        crop_jpeg = _jpeg(alert.crop)
        hq_crop = crop_jpeg if self.probe_crop else None
        event = messages.MatchEvent(
            event_id=messages.new_event_id(), device=self.device_id, camera=self.camera_id,
            track=alert.track_id, observed_at=messages.utc_now(), subject_id=alert.subject_id,
            label=alert.label, category=subject.category, case_ref=subject.case_reference,
            score=alert.score, threshold=alert.threshold.value, threshold_policy=alert.threshold.policy,
            margin=max(0.0, alert.margin),
            probe_quality=alert.quality.score,
            box=messages.Box(x1=alert.box[0], y1=alert.box[1], x2=alert.box[2], y2=alert.box[3]),
            watchlist=messages.WatchlistRef(id=wl.header.watchlist_id, version=wl.header.version, sha256=wl.sha256),
            models=messages.ModelHashes(detector=self.detector_sha256, embedder=wl.header.embedder.sha256),
            probe_crop=base64.b64encode(hq_crop).decode() if hq_crop else None,
        )
        audit = AlertBody(
            event_id=event.event_id, track_id=alert.track_id, frame=alert.frame, frame_time=alert.timestamp,
            subject_id=alert.subject_id, watchlist_id=wl.header.watchlist_id, watchlist_version=wl.header.version,
            score=alert.score, threshold=alert.threshold.value, threshold_policy=alert.threshold.policy,
            margin=alert.margin,
            probe_quality=min(1.0, alert.quality.score), box=alert.box, detector_sha256=self.detector_sha256,
            embedder_sha256=wl.header.embedder.sha256,
            crop_sha256=hashlib.sha256(crop_jpeg).hexdigest() if crop_jpeg else None)
        self.minutes.add(alerts=1)
        log.info("alert: track %d %s score %.3f (threshold %.3f: %s)", alert.track_id, alert.label, alert.score,
                 alert.threshold.value, alert.threshold.policy)
        self._undelivered.append(PendingAlert(event, audit, alert, crop_jpeg, subject))
        self.deliver_pending()

    def deliver_pending(self) -> None:
        """Outbox first (durable), then the audit record, then the handhelds; each step done once.

        A full disk or a broken outbox raises here: the alert stays in memory, the reason is logged, and the
        step is retried with the next frame, so the pipeline keeps running and no match event is lost.
        """
        while self._undelivered:
            d = self._undelivered[0]
            try:
                if not d.queued:
                    self.uplink.send_match(d.event)
                    d.queued = True
                if not d.audited:
                    self.audit.append("alert", d.audit)
                    d.audited = True
                if not d.to_handhelds:
                    self._to_handhelds(d.event, d.alert, d.crop, d.subject)
                    d.to_handhelds = True
            except EdgeError as exc:
                if not d.failing:
                    log.error("alert %s not fully delivered yet (%s); keeping it and retrying", d.event.event_id, exc)
                d.failing = True
                return
            self._undelivered.pop(0)

    def _to_handhelds(self, event: messages.MatchEvent, alert: Alert, crop: bytes | None,
                      subject: SubjectInfo) -> None:
        """Each paired handheld gets the alert sealed to its own key: the broker and HQ relay, never read, it."""
        pairing = self.pairing()
        if pairing is None or not pairing.handhelds:
            log.warning("alert %s: no handheld is paired with this device; it went to HQ only", event.event_id)
            return
        try:
            listing = Listing(legal_basis=subject.legal_basis, listed_until=subject.expires, place=self.place or None)
            sealed = pairing.sealed_alerts(event, self.signing_key, crop, subject.thumbnail, alert.threshold.fpir,
                                           listing)
        except EdgeError as exc:
            log.error("alert %s could not be sealed for the handhelds: %s", event.event_id, exc)
            return
        for topic, envelope in sealed:
            self.uplink.send_handheld_alert(topic, envelope)


def _jpeg(crop) -> bytes | None:
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else None
