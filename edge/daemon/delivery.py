"""Where an alert leaves the device: the one place a track's decision turns into something sent.

A decision becomes a signed match event in the outbox (durable; the link publishes it to HQ), an `alert`
record in the audit chain, and one sealed alert per paired handheld. Each step runs once and does not wait
for the others: a step that fails (a full disk even after the reserve was released, a broken outbox) keeps
the alert in memory and is retried with the next frame, so the pipeline keeps running and no match event is
lost or sent twice; one still undelivered when the daemon stops makes it exit with an error.
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
from edge.daemon.reserve import DiskReserve
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

    def __init__(self, *, device_id: str, probe_crop: bool, detector_sha256: str,
                 signing_key: Ed25519PrivateKey, uplink: Uplink, audit: AuditLog,
                 pairing: Callable[[], DevicePairing | None], reserve: DiskReserve,
                 place: str = "") -> None:
        """`pairing()` returns the device's current pairing record (it changes while the daemon runs);
        `reserve` is released when a write fails for want of space; `place` (device.place) is shown to the officer
        with each alert."""
        self.device_id = device_id
        self.place = place
        self.probe_crop = probe_crop
        self.detector_sha256 = detector_sha256
        self.signing_key = signing_key
        self.uplink = uplink
        self.audit = audit
        self.pairing = pairing
        self.reserve = reserve
        self._undelivered: list[PendingAlert] = []  # alerts with a delivery step still to do, oldest first

    @property
    def undelivered(self) -> int:
        """Alerts with a step not yet done (lost if the process ends now)."""
        return len(self._undelivered)

    def emit(self, alert: Alert, wl: InstalledWatchlist | None, camera: str, minutes: MinuteCounters) -> None:
        """Turn an alert into its match event and deliver it; a failed step is kept and retried, never dropped.

        `wl` is the watchlist the pipeline matched against when it raised the alert, with the embedder it
        was enrolled with (the one the pipeline embedded the probe with); `camera` saw the face, and its
        `minutes` count the alert.
        """
        assert wl is not None  # an alert needs a watchlist
        subject = wl.subject(alert.subject_index)
        crop_jpeg = _jpeg(alert.crop)
        hq_crop = crop_jpeg if self.probe_crop else None
        event = messages.MatchEvent(
            event_id=messages.new_event_id(), device=self.device_id, camera=camera,
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
            crop_sha256=hashlib.sha256(crop_jpeg).hexdigest() if crop_jpeg else None, camera=camera)
        minutes.add(alerts=1)
        log.info("alert: camera %s track %d %s score %.3f (threshold %.3f: %s)", camera, alert.track_id,
                 alert.label, alert.score, alert.threshold.value, alert.threshold.policy)
        self._undelivered.append(PendingAlert(event, audit, alert, crop_jpeg, subject))
        self.deliver_pending()

    def deliver_pending(self) -> None:
        """Outbox (durable), audit record, handhelds: each step done once; a failed one is kept and retried.

        The steps are tried independently, so a match event the outbox cannot take is still audited. A write
        that fails for want of space releases the disk reserve and is retried at once (edge.daemon.reserve);
        one that still fails keeps the alert in memory, logs why, and is retried with the next frame, so the
        pipeline keeps running and no match event is lost while the process lives.
        """
        for d in list(self._undelivered):  # each alert on its own: a later one's audit need not wait
            failure = self._steps(d)
            if failure is None:
                self._undelivered.remove(d)
            elif not d.failing:
                log.error("alert %s not fully delivered yet (%s); keeping it and retrying", d.event.event_id, failure)
                d.failing = True

    def undelivered_summary(self) -> str:
        """Which alerts still have a step to do, and which: for the message at stop."""
        return "; ".join(f"{d.event.event_id} (" + ", ".join(
            step for step, done in (("not queued for HQ", d.queued), ("not audited", d.audited),
                                    ("not sent to the handhelds", d.to_handhelds)) if not done) + ")"
            for d in self._undelivered)

    def _steps(self, d: PendingAlert) -> EdgeError | None:
        """Try each step not yet done; the first failure, or None when all are done."""
        failure: EdgeError | None = None
        steps = (("queued", lambda: self.uplink.send_match(d.event)),
                 ("audited", lambda: self.audit.append("alert", d.audit)),
                 ("to_handhelds", lambda: self._to_handhelds(d.event, d.alert, d.crop, d.subject)))
        for done, step in steps:
            if getattr(d, done):
                continue
            try:
                self.reserve.retry_when_full(step)
            except EdgeError as exc:
                failure = failure or exc
                continue
            setattr(d, done, True)
        return failure

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
        for topic, envelope in sealed:  # a retry sends all again: the handheld keeps an event id once
            self.uplink.send_handheld_alert(topic, envelope)


def _jpeg(crop) -> bytes | None:
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else None
