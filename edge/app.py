"""The device daemon: the only module that knows every package.

Threads: capture → bounded drop-oldest queue → one inference thread (owns the models, and on a Jetson the
CUDA context) → alerts → outbox (durable) → publisher. Watchlist bundles arrive on the link's delivery
thread and are swapped in between frames. The main thread handles signals, status and the watchdog.
"""

import base64
import hashlib
import json
import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import cv2

from edge import __version__
from edge.audit.counters import MinuteCounters
from edge.audit.decisions import audit_body
from edge.audit.log import AuditLog
from edge.audit.records import (
    AlertBody,
    ConfigChange,
    ConfigChangedBody,
    PeriodStartBody,
    PeriodStopBody,
    WatchlistInstalledBody,
    WatchlistRefusedBody,
)
from edge.capture.open import open_source
from edge.config import EdgeConfig
from edge.daemon.framequeue import FrameQueue
from edge.daemon.health import RateMeter, temperatures
from edge.daemon.notify import Notifier
from edge.errors import EdgeError
from edge.fsio import write_atomic
from edge.keys import load_encryption_private, load_signing_private, load_signing_public
from edge.link.uplink import Bundle, Uplink
from edge.models import ENGINES_DIR, Manifest
from edge.pipeline import FaceCounters, Pipeline
from edge.protocol import messages
from edge.protocol.adjudication import verify_adjudication
from edge.protocol.pairing import DevicePairing, load_record, read_record, save_record
from edge.protocol.refused import Refused
from edge.track.decision import Alert
from edge.vision.stack import VisionStack
from edge.watchlist.calibration import ThresholdPolicy, load_policy
from edge.watchlist.installed import InstalledWatchlist, SubjectInfo
from edge.watchlist.match import Gallery
from edge.watchlist.state import BundleRefusal
from edge.watchlist.store import WatchlistStore

log = logging.getLogger(__name__)

STATUS_EVERY = 10.0
DRAIN_TIMEOUT = 15.0  # seconds to wait at stop for the broker to acknowledge the outbox
STALL_AFTER = 30.0  # seconds without a frame finishing before the watchdog stops being fed
WATCHLIST_WAIT = 10.0  # seconds a device with no watchlist waits at start for the retained one


class Device:
    """One camera's daemon. `run()` returns when the source ends (files) or on SIGTERM/SIGINT."""

    def __init__(self, cfg: EdgeConfig, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.device_id = cfg.device.id
        state = cfg.device.state_dir
        self.signing_key = load_signing_private(cfg.device.signing_key)
        self.hq_public = load_signing_public(cfg.device.hq_public_key)
        self.pairing_file = state / "pairing.json"
        self.pairing: DevicePairing | None = load_record(self.pairing_file, DevicePairing, self.hq_public,
                                                         self.device_id)
        manifest = Manifest.load(cfg.runtime.engines_dir or ENGINES_DIR)
        self.embedder_sha256 = manifest.spec(cfg.embedder.model).sha256
        self.detector_sha256 = manifest.spec(cfg.detector.model).sha256
        self.policy: ThresholdPolicy = load_policy(cfg.match, manifest.folder, cfg.embedder.model,
                                                   self.embedder_sha256)
        self.uplink = Uplink(cfg.link.model_copy(update={"outbox": _under(state, cfg.link.outbox)}),
                             self.signing_key, fleet=cfg.device.fleet, on_bundle=self._on_bundle,
                             on_pairing=self._on_pairing, on_adjudication=self._on_adjudication,
                             software=f"edge {__version__}")
        if self.uplink.device_id != self.device_id:
            raise EdgeError(f"device.id is {self.device_id!r} but the link certificate {cfg.link.cert} is for "
                            f"{self.uplink.device_id!r}: provision the device again or fix the config")
        self.audit = AuditLog.open(_under(state, cfg.audit.path), self.signing_key, cfg.audit.checkpoint_every,
                                   device_id=self.device_id, checkpoint_seconds=cfg.audit.checkpoint_seconds,
                                   fsync=cfg.audit.fsync, on_record=lambda r: self.uplink.send_audit(r.as_dict()))
        self.minutes = MinuteCounters(lambda body: self.audit.append("counters", body))
        self.store = WatchlistStore.open(state / "watchlist", device_key=load_encryption_private(
            cfg.device.encryption_key), hq_public=self.hq_public,
            embedder_sha256=self.embedder_sha256, config=cfg.watchlist)
        self.queue = FrameQueue(cfg.camera.queue)
        self.notifier = Notifier()
        self.stop_event = threading.Event()
        self.period_id = str(uuid.uuid4())
        self._swap_lock = threading.Lock()
        self._pending: InstalledWatchlist | None = None
        self._heartbeat = time.monotonic()
        self._fps = RateMeter()
        self._counters = FaceCounters()
        self._last_status = self.store.state().status
        self._failure: BaseException | None = None
        self.config_path = config_path
        self._installed: InstalledWatchlist | None = None
        self._bundle_seen = threading.Event()
        self._models_ready = threading.Event()
        self._adjudicated: dict[str, None] = {}  # recent decision ids, oldest first
        self._undelivered: list[_Delivery] = []  # alerts with a delivery step still to do (inference thread)

    # --- lifecycle ------------------------------------------------------------------------------------

    def run(self) -> int:
        self._audit_config_changes()
        installed = self.store.current
        threshold = self.policy.for_gallery(installed.gallery.size if installed else 0)
        self.audit.append("period_start", PeriodStartBody(
            period_id=self.period_id, place=self.cfg.device.place, camera=self.cfg.camera.id,
            watchlist_id=installed.header.watchlist_id if installed else None,
            watchlist_version=installed.header.version if installed else None,
            watchlist_size=installed.gallery.size if installed else 0, threshold=threshold.value))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.uplink.start()
        self._publish_state_now()
        if self.store.current is None:  # a fresh device: the retained watchlist usually arrives within seconds
            log.info("no watchlist installed yet; waiting up to %.0f s for one from HQ", WATCHLIST_WAIT)
            self._bundle_seen.wait(WATCHLIST_WAIT)
        capture = threading.Thread(target=self._capture, name="edge-capture", daemon=True)
        infer = threading.Thread(target=self._infer, name="edge-inference", daemon=True)
        infer.start()
        while not self._models_ready.wait(0.5) and infer.is_alive() and not self.stop_event.is_set():
            pass
        capture.start()
        self.notifier.ready()  # models loaded and the source opening: systemd may count us as started
        reason = "shutdown"
        next_status = 0.0
        while not self.stop_event.wait(1.0 if self.notifier.watchdog_interval is None
                                       else min(1.0, self.notifier.watchdog_interval)):
            if not infer.is_alive():
                reason = "source_ended" if self._failure is None else "error"
                break
            if time.monotonic() - self._heartbeat < STALL_AFTER:
                self.notifier.watchdog()  # a stalled pipeline stops the feed and systemd restarts us
            else:
                log.error("inference has made no progress for %.0f s; not feeding the watchdog", STALL_AFTER)
            self.minutes.tick()
            if time.monotonic() >= next_status:
                self._report_status()
                next_status = time.monotonic() + STATUS_EVERY
        self.stop_event.set()
        self.queue.close()
        infer.join(30)
        self.notifier.stopping()
        self._deliver_pending()  # the inference thread has ended: its queue is ours now
        if self._undelivered:
            log.critical("%d alerts could not be queued or audited before stopping (see the errors above); "
                         "they are lost with this process", len(self._undelivered))
        try:
            self.minutes.flush()
            self.audit.append("period_stop", PeriodStopBody(period_id=self.period_id, reason=reason))
        except EdgeError as exc:
            log.error("period stop not recorded in the audit log: %s", exc)
        self._report_status()
        if not self.uplink.wait_drained(DRAIN_TIMEOUT):
            log.warning("%d messages still in the outbox; they will be sent on the next start", self.uplink.pending)
        self.uplink.stop()
        self.audit.close()
        if self._failure is not None:
            raise EdgeError(f"the pipeline stopped: {self._failure}") from self._failure
        return 0

    def _audit_config_changes(self) -> None:
        """Record in the chain every key whose value differs from the configuration of the previous start."""
        current = _flatten(self.cfg.model_dump(mode="json"))
        last_file = self.cfg.device.state_dir / "config.last.json"
        try:
            last = json.loads(last_file.read_text())
        except FileNotFoundError:
            last = {}
        except (OSError, ValueError) as exc:
            log.warning("previous configuration %s unreadable (%s); recording every key as changed", last_file, exc)
            last = {}
        changes = [ConfigChange(key=k, old=_scalar(last.get(k)), new=_scalar(current.get(k)))
                   for k in sorted(set(current) | set(last)) if last.get(k) != current.get(k)]
        if changes:
            self.audit.append("config_changed", ConfigChangedBody(
                source=str(self.config_path or "defaults"), changes=changes))
            write_atomic(last_file, json.dumps(current, sort_keys=True).encode())

    # --- threads --------------------------------------------------------------------------------------

    def _capture(self) -> None:
        try:
            source = open_source(self.cfg.camera.source, max_backoff=self.cfg.camera.max_backoff)
        except EdgeError as exc:
            log.error("camera %s: %s", self.cfg.camera.id, exc)
            self._failure = exc
            self.queue.close()
            return
        try:
            while not self.stop_event.is_set() and (frame := source.read()) is not None:
                self.queue.put(frame)
                if not source.live:  # a file is read at the pace inference takes it, not dropped
                    while len(self.queue) >= self.cfg.camera.queue and not self.stop_event.is_set():
                        time.sleep(0.002)
        finally:
            source.close()
            self.queue.close()

    def _infer(self) -> None:
        try:
            stack = VisionStack.open(self.cfg.detector, self.cfg.embedder, self.cfg.runtime)
            current = self.store.current
            gallery = current.gallery if current else Gallery.empty(stack.embedder.dim)
            pipeline = Pipeline(stack, gallery, self.policy.for_gallery(gallery.size), self.cfg.quality,
                                self.cfg.track, self.cfg.detector.stride)
            self._installed = current
            self._models_ready.set()
            while not self.queue.closed:
                self._heartbeat = time.monotonic()
                self._maybe_swap(pipeline)
                frame = self.queue.get(timeout=0.5)
                if frame is None:
                    continue
                before = pipeline.counters.faces_discarded, pipeline.counters.faces_seen
                self._deliver_pending()
                for alert in pipeline.process(frame):
                    self._emit(alert)
                self._count(pipeline, before)
            before = pipeline.counters.faces_discarded, pipeline.counters.faces_seen
            pipeline.finish()
            self._count(pipeline, before, frames=0)
            stack.close()
        except Exception as exc:  # the daemon reports, audits the stop, and systemd restarts it
            log.exception("inference thread failed")
            self._failure = exc

    def _count(self, pipeline: Pipeline, before: tuple[int, int], frames: int = 1) -> None:
        c = pipeline.counters
        discarded, seen = c.faces_discarded - before[0], c.faces_seen - before[1]
        self.minutes.add(frames=frames, faces_seen=seen, faces_discarded=discarded,
                         tracks_ended_without_match=discarded)
        self._counters = FaceCounters(**c.as_dict())
        if frames:
            self._fps.tick()

    # --- alerts ---------------------------------------------------------------------------------------

    def _emit(self, alert: Alert) -> None:
        """Turn an alert into its match event and deliver it; a failed step is kept and retried, never dropped."""
        wl = self._installed
        assert wl is not None  # an alert needs a watchlist
        subject = wl.subject(alert.subject_index)
        crop_jpeg = _jpeg(alert.crop)
        hq_crop = crop_jpeg if self.cfg.alerts.probe_crop else None
        event = messages.MatchEvent(
            event_id=messages.new_event_id(), device=self.device_id, camera=self.cfg.camera.id,
            track=alert.track_id, observed_at=messages.utc_now(), subject_id=alert.subject_id,
            label=alert.label, category=subject.category, case_ref=subject.case_reference,
            score=alert.score, threshold=alert.threshold.value, margin=max(0.0, alert.margin),
            probe_quality=alert.quality.score,
            box=messages.Box(x1=alert.box[0], y1=alert.box[1], x2=alert.box[2], y2=alert.box[3]),
            watchlist=messages.WatchlistRef(id=wl.header.watchlist_id, version=wl.header.version, sha256=wl.sha256),
            models=messages.ModelHashes(detector=self.detector_sha256, embedder=self.embedder_sha256),
            probe_crop=base64.b64encode(hq_crop).decode() if hq_crop else None,
        )
        audit = AlertBody(
            event_id=event.event_id, track_id=alert.track_id, frame=alert.frame, frame_time=alert.timestamp,
            subject_id=alert.subject_id, watchlist_id=wl.header.watchlist_id, watchlist_version=wl.header.version,
            score=alert.score, threshold=alert.threshold.value, margin=alert.margin,
            probe_quality=min(1.0, alert.quality.score), box=alert.box, detector_sha256=self.detector_sha256,
            embedder_sha256=self.embedder_sha256,
            crop_sha256=hashlib.sha256(crop_jpeg).hexdigest() if crop_jpeg else None)
        self.minutes.add(alerts=1)
        log.info("alert: track %d %s score %.3f (threshold %.3f)", alert.track_id, alert.label, alert.score,
                 alert.threshold.value)
        self._undelivered.append(_Delivery(event, audit, alert, crop_jpeg, subject))
        self._deliver_pending()

    def _deliver_pending(self) -> None:
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
        pairing = self.pairing
        if pairing is None or not pairing.handhelds:
            log.warning("alert %s: no handheld is paired with this device; it went to HQ only", event.event_id)
            return
        try:
            sealed = pairing.sealed_alerts(event, self.signing_key, crop, subject.thumbnail, alert.threshold.fpir)
        except EdgeError as exc:
            log.error("alert %s could not be sealed for the handhelds: %s", event.event_id, exc)
            return
        for topic, envelope in sealed:
            self.uplink.send_handheld_alert(topic, envelope)

    # --- pairing and adjudication ------------------------------------------------------------------

    def _on_pairing(self, data: bytes) -> None:
        current = self.pairing
        try:
            record = read_record(data, DevicePairing, self.hq_public, self.device_id, current=current)
        except Refused as exc:
            if current is not None and current.signature and current.signature.encode() in data:
                return  # the retained record we already hold, delivered again on reconnect
            log.warning("pairing record refused: %s", exc)
            return
        save_record(record, self.pairing_file)
        self.pairing = record
        old = ",".join(h.id for h in current.handhelds) if current else ""
        new = ",".join(h.id for h in record.handhelds)
        self.audit.append("config_changed", ConfigChangedBody(
            source="hq", changes=[ConfigChange(key="pairing.handhelds", old=old, new=new)]))
        log.info("paired handhelds now: %s", new or "none")

    def _on_adjudication(self, topic: str, data: bytes) -> None:
        pairing = self.pairing
        if pairing is None:
            log.warning("adjudication on %s ignored: this device has no pairing record", topic)
            return
        try:
            decision = verify_adjudication(data, pairing.handheld_keys(), topic=topic, device=self.device_id)
        except Refused as exc:
            if exc.code != "not_ours":
                log.warning("adjudication on %s refused: %s", topic, exc)
            return
        if decision.adjudication_id in self._adjudicated:
            return  # redelivered after a restart of the link: already in the chain
        self.audit.append("adjudication", audit_body(decision))  # raises: left unacknowledged, redelivered
        self._adjudicated[decision.adjudication_id] = None
        while len(self._adjudicated) > 10_000:
            self._adjudicated.pop(next(iter(self._adjudicated)))

    # --- watchlist ------------------------------------------------------------------------------------

    def _on_bundle(self, bundle: Bundle) -> None:
        try:
            self._install(bundle)
        finally:
            self._bundle_seen.set()

    def _install(self, bundle: Bundle) -> None:
        previous = self.store.current
        result = self.store.install(bundle.data)
        wl = self.store.current
        if result.outcome == "installed" and wl is not None:
            with self._swap_lock:  # matching moves to the new list even if the audit write below fails
                self._pending = wl
            self.audit.append("watchlist_installed", WatchlistInstalledBody(
                watchlist_id=wl.header.watchlist_id, version=wl.header.version, entries=wl.header.entry_count,
                expires=wl.header.expires.timestamp(), bundle_sha256=wl.sha256, model_sha256=self.embedder_sha256,
                previous_version=previous.header.version if previous else None))
        elif result.outcome == "refused" and result.refusal is not None:
            r = result.refusal
            self.audit.append("watchlist_refused", WatchlistRefusedBody(
                watchlist_id=r.watchlist_id, version=r.version, bundle_sha256=r.sha256,
                reason=f"{r.code}: {r.message}"[:500],
                kept_watchlist_id=wl.header.watchlist_id if wl else None,
                kept_version=wl.header.version if wl else None))
        self.uplink.send_watchlist_state(self._state_message(result.outcome, bundle, result.refusal))

    def _maybe_swap(self, pipeline: Pipeline) -> None:
        with self._swap_lock:
            wl, self._pending = self._pending, None
        if wl is not None:
            pipeline.swap_watchlist(wl.gallery, self.policy.for_gallery(wl.gallery.size))
            self._installed = wl
            log.info("now matching against watchlist %s version %d", wl.header.watchlist_id, wl.header.version)

    def _ref(self) -> messages.WatchlistRef | None:
        wl = self.store.current
        return messages.WatchlistRef(id=wl.header.watchlist_id, version=wl.header.version, sha256=wl.sha256) \
            if wl else None

    def _state_message(self, outcome: Literal["installed", "refused", "unchanged"], bundle: Bundle | None,
                       refusal: BundleRefusal | None) -> messages.WatchlistState:
        offered = None
        if refusal is not None and refusal.watchlist_id and bundle is not None:
            offered = messages.WatchlistRef(id=refusal.watchlist_id, version=refusal.version or 0,
                                            sha256=bundle.sha256)
        reason = f"{refusal.code}: {refusal.message}" if refusal is not None else self.store.state().message
        return messages.WatchlistState(
            event_id=messages.new_event_id(), device=self.device_id, at=messages.utc_now(), outcome=outcome,
            installed=self._ref(), offered=offered, reason=reason[:512])

    def _publish_state_now(self) -> None:
        try:
            self.uplink.send_watchlist_state(self._state_message("unchanged", None, None))
        except EdgeError as exc:  # e.g. a full disk: the state goes out with the next change or status
            log.error("watchlist state not queued: %s", exc)

    # --- status ---------------------------------------------------------------------------------------

    def _report_status(self) -> None:
        state = self.store.state(datetime.now(timezone.utc))
        if state.status != self._last_status:  # e.g. the watchlist expired while installed: say so
            self._last_status = state.status
            self._publish_state_now()
        c = self._counters
        counters = {"frames": c.frames, "faces_seen": c.faces_seen, "faces_discarded": c.faces_discarded,
                    "alerts": c.alerts, "dropped_frames": self.queue.dropped, "outbox_pending": self.uplink.pending,
                    "fps_x10": round(self._fps.rate() * 10)}
        counters.update({f"temp_mC_{k}": round(v * 1000) for k, v in temperatures().items()})
        self.uplink.set_status(watchlist=self._ref(), counters=counters, reason=state.status)
        self.notifier.status(f"{self._fps.rate():.1f} fps, {c.faces_seen} faces, {c.alerts} alerts, "
                             f"watchlist {state.status}")


@dataclass
class _Delivery:
    """An alert on its way out, and which of its steps are done."""

    event: messages.MatchEvent
    audit: AlertBody
    alert: Alert
    crop: bytes | None
    subject: SubjectInfo
    queued: bool = False
    audited: bool = False
    to_handhelds: bool = False
    failing: bool = False


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _scalar(value: Any) -> str | int | float | bool | None:
    return value if value is None or isinstance(value, str | int | float | bool) else json.dumps(value)


def _under(state_dir: Path, path: Path) -> Path:
    """Relative state paths live in the device's state directory (the one writable path under systemd)."""
    return path if path.is_absolute() else state_dir / path


def _jpeg(crop) -> bytes | None:
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else None
