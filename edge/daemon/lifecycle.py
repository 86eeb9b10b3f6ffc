"""The device daemon's lifecycle: start, the threads, the watchdog, a clean stop. The wiring of every package.

Threads: one capture thread per camera → its bounded drop-oldest queue → one inference thread (owns the models,
and on a Jetson the CUDA context; one tracker per camera, every camera's faces embedded in one batch) → alerts →
outbox (durable) → publisher. Watchlist bundles arrive on the link's delivery
thread and are swapped in between frames. The main thread handles signals, status and the watchdog.
The systemd watchdog is fed while at least one camera delivers frames: a restart cannot mend one unplugged camera
and would interrupt the others; a silent camera is logged and shows in the status under its id. When every camera
is silent (or inference is stuck) the feed stops and systemd restarts the device.
What leaves the device with an alert is `delivery`'s job; what HQ and the handhelds send it is `control`'s.
"""

import json
import logging
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from edge import __version__
from edge.audit.anchor import HeadAnchor
from edge.audit.counters import MinuteCounters
from edge.audit.log import AuditLog
from edge.audit.records import ConfigChange, ConfigChangedBody, PeriodStartBody, PeriodStopBody
from edge.config import EdgeConfig
from edge.daemon.cameras import CameraFeed, process_frames, take_frames, total
from edge.daemon.control import DeviceControl
from edge.daemon.delivery import AlertDelivery
from edge.daemon.embedders import MatchingModels
from edge.daemon.notify import Notifier
from edge.daemon.reserve import RESERVE_FILE, DiskReserve
from edge.daemon.seen import SEEN_FILE, SeenDecisions
from edge.errors import EdgeError
from edge.fsio import write_atomic
from edge.keys import load_encryption_private, load_signing_private, load_signing_public
from edge.link.uplink import Uplink
from edge.models import ENGINES_DIR, Manifest
from edge.pipeline import GpuGallery, Pipeline
from edge.protocol.pairing import DevicePairing, load_record
from edge.vision.stack import VisionStack
from edge.watchlist.match import Gallery
from edge.watchlist.store import WatchlistStore

log = logging.getLogger(__name__)

STATUS_EVERY = 10.0
DRAIN_TIMEOUT = 15.0  # seconds to wait at stop for the broker to acknowledge the outbox
INBOUND_TIMEOUT = 30.0  # seconds to wait at stop for the message being handled (a bundle installing)
WATCHLIST_WAIT = 10.0  # seconds a device with no watchlist waits at start for the retained one


class Device:
    """The device's daemon, serving each configured camera. `run()` returns when every source has ended (files) or
    failed, or on SIGTERM/SIGINT."""

    def __init__(self, cfg: EdgeConfig, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.device_id = cfg.device.id
        manifest = Manifest.load(cfg.runtime.engines_dir or ENGINES_DIR)  # a bad [match] or model stops us here
        self.detector_sha256 = manifest.spec(cfg.detector.model).sha256
        self.models = MatchingModels(cfg, manifest)
        state = cfg.device.state_dir
        self.signing_key = load_signing_private(cfg.device.signing_key)
        self.hq_public = load_signing_public(cfg.device.hq_public_key)
        pairing_file = state / "pairing.json"
        pairing: DevicePairing | None = load_record(pairing_file, DevicePairing, self.hq_public, self.device_id)
        outbox = _under(state, cfg.link.outbox)
        outbox.parent.mkdir(parents=True, exist_ok=True)
        self.reserve = DiskReserve(outbox.parent / RESERVE_FILE, cfg.link.outbox_reserve_mb << 20)
        self.reserve.hold()  # a write that fails for want of space frees it and is retried
        # The link calls these only after start(), by when `control` (built below, on the audit log) exists.
        self.uplink = self.reserve.retry_when_full(lambda: Uplink(
            cfg.link.model_copy(update={"outbox": outbox}), self.signing_key, fleet=cfg.device.fleet,
            on_bundle=lambda bundle: self.control.on_bundle(bundle),
            on_pairing=lambda data: self.control.on_pairing(data),
            on_adjudication=lambda topic, data: self.control.on_adjudication(topic, data),
            on_timestamp=lambda data: self.control.on_timestamp(data),
            software=f"edge {__version__}", max_bundle_bytes=cfg.watchlist.max_bundle_bytes,
            on_refused=lambda code: self.minutes.add(messages_refused=1)))
        if self.uplink.device_id != self.device_id:
            raise EdgeError(f"device.id is {self.device_id!r} but the link certificate {cfg.link.cert} is for "
                            f"{self.uplink.device_id!r}: provision the device again or fix the config")
        anchor = HeadAnchor(_under(state, cfg.audit.path))
        anchor.check()  # a log whose end was cut off since its last checkpoint is refused
        self.audit = self.reserve.retry_when_full(lambda: AuditLog.open(
            anchor.log_path, self.signing_key, cfg.audit.checkpoint_every, device_id=self.device_id,
            checkpoint_seconds=cfg.audit.checkpoint_seconds, fsync=cfg.audit.fsync,
            on_record=anchor.chained(
                lambda r: self.reserve.retry_when_full(lambda: self.uplink.send_audit(r.as_dict())))))
        self.minutes = MinuteCounters(lambda body: self.audit.append("counters", body))
        self.store = WatchlistStore.open(state / "watchlist", device_key=load_encryption_private(
            cfg.device.encryption_key), hq_public=self.hq_public,
            embedders=self.models.embedders, config=cfg.watchlist)
        self.models.check_startable(self.store.current)
        self._wake = threading.Event()  # a frame (or a source's end) for the inference thread
        self.stop_event = threading.Event()
        self.feeds = [CameraFeed(camera, MinuteCounters(lambda body: self.audit.append("counters", body),
                                                        camera=camera.id), self._wake, self.stop_event)
                      for camera in cfg.all_cameras]
        self.notifier = Notifier()
        self.period_id = str(uuid.uuid4())
        self._failure: BaseException | None = None
        self._stack: VisionStack | None = None  # the inference thread's; read for the status
        self.config_path = config_path
        self._models_ready = threading.Event()
        self.control = DeviceControl(
            device_id=self.device_id, hq_public=self.hq_public, pairing_file=pairing_file, pairing=pairing,
            uplink=self.uplink, audit=self.audit, store=self.store, models=self.models,
            seen=SeenDecisions(state / SEEN_FILE))
        self.delivery = AlertDelivery(  # the inference thread's, until it ends
            device_id=self.device_id, probe_crop=cfg.alerts.probe_crop,
            detector_sha256=self.detector_sha256,
            signing_key=self.signing_key, uplink=self.uplink, audit=self.audit,
            pairing=lambda: self.control.pairing, reserve=self.reserve, place=cfg.device.place)

    # --- lifecycle ------------------------------------------------------------------------------------

    def run(self) -> int:
        self._audit_config_changes()
        installed = self.store.current
        policy = self.models.for_watchlist(installed)
        threshold = policy.for_gallery(installed.gallery.size if installed else 0)
        self.audit.append("period_start", PeriodStartBody(
            period_id=self.period_id, place=self.cfg.device.place, camera=self.feeds[0].id,
            cameras=[feed.id for feed in self.feeds] if len(self.feeds) > 1 else None,
            watchlist_id=installed.header.watchlist_id if installed else None,
            watchlist_version=installed.header.version if installed else None,
            watchlist_size=installed.gallery.size if installed else 0, threshold=threshold.value,
            threshold_policy=threshold.policy, embedder_sha256=policy.calibration.embedder_sha256))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.uplink.start()
        self.control.publish_state_now()
        if self.store.current is None:  # a fresh device: the retained watchlist usually arrives within seconds
            log.info("no watchlist installed yet; waiting up to %.0f s for one from HQ", WATCHLIST_WAIT)
            self.control.bundle_seen.wait(WATCHLIST_WAIT)
        infer = threading.Thread(target=self._infer, name="edge-inference", daemon=True)
        infer.start()
        while not self._models_ready.wait(0.5) and infer.is_alive() and not self.stop_event.is_set():
            pass
        for feed in self.feeds:
            feed.start()
        self.notifier.ready()  # models loaded and the sources opening: systemd may count us as started
        reason = "shutdown"
        next_status = 0.0
        all_silent = False  # every camera delivered nothing for its stall_s: said once until a frame comes
        while not self.stop_event.wait(1.0 if self.notifier.watchdog_interval is None
                                       else min(1.0, self.notifier.watchdog_interval)):
            if not infer.is_alive():
                reason = "source_ended" if self._failure is None else "error"
                break
            now = time.monotonic()
            if not all([feed.check_silent(now) for feed in self.feeds]):  # each camera says it went silent
                self.notifier.watchdog()  # a stalled pipeline stops the feed and systemd restarts us
                all_silent = False
            elif not all_silent:
                all_silent = True
                log.error("every camera silent: not feeding the watchdog (under systemd, edge is restarted)")
            for minutes in (self.minutes, *(feed.minutes for feed in self.feeds)):
                minutes.tick()  # a minute ends even when its camera has stopped delivering
            if time.monotonic() >= next_status:
                self._report_status()
                self.reserve.hold()  # again, once space was freed after the disk filled
                next_status = time.monotonic() + STATUS_EVERY
        self.stop_event.set()
        for feed in self.feeds:
            feed.queue.close()
        infer.join(30)
        self.notifier.stopping()
        self.delivery.deliver_pending()  # the inference thread has ended: its queue is ours now
        lost = self.delivery.undelivered_summary()
        if lost:
            log.critical("%d alerts could not be queued or audited before stopping (see the errors above); "
                         "they are lost with this process: %s", self.delivery.undelivered, lost)
        try:
            for feed in self.feeds:
                feed.minutes.flush()
            self.minutes.flush()
            self.audit.append("period_stop", PeriodStopBody(period_id=self.period_id, reason=reason))
        except EdgeError as exc:
            log.error("period stop not recorded in the audit log: %s", exc)
        self._report_status()
        self._close()
        if self._failure is not None:
            raise EdgeError(f"the pipeline stopped: {self._failure}") from self._failure
        if lost:
            raise EdgeError(f"{self.delivery.undelivered} alerts were lost at stop, not fully kept for want of disk "
                            f"space or a working outbox: {lost}. Free space for the outbox "
                            f"({self.reserve.path.parent}) and the audit log ({self.audit.path.parent}); the device "
                            "holds its reserve again once it can")
        return 0

    def _close(self) -> None:
        """What HQ and the handhelds send stops first (a decision or bundle handled after the audit log closed
        would be refused for it and never come again), then the audit log (its closing checkpoint goes to the
        outbox like every record), then the link, once the broker has taken what it has subscribers for, or
        after DRAIN_TIMEOUT (the rest waits in the outbox for the next start)."""
        if not self.uplink.stop_inbound(INBOUND_TIMEOUT):
            log.error("the link's delivery thread did not finish within %.0f s (a large watchlist still "
                      "installing?); what it handles now may not be audited", INBOUND_TIMEOUT)
        try:
            self.audit.close()
        except EdgeError as exc:
            log.error("audit log not closed cleanly (the next start recovers it): %s", exc)
        if not self.uplink.wait_drained(DRAIN_TIMEOUT) or self.uplink.pending:
            log.warning("%d messages still in the outbox (no broker, or nobody subscribed to their topics yet); "
                        "they are sent after the next start", self.uplink.pending)
        self.uplink.stop()
        self.control.seen.close()

    def _report_status(self) -> None:
        if self._stack is not None:
            self.uplink.set_runtime(self._stack.runtimes())
        now = time.monotonic()
        per_camera = {k: v for feed in self.feeds for k, v in feed.status(now).items()}
        self.notifier.status(self.control.report_status(
            total(self.feeds), sum(feed.queue.dropped for feed in self.feeds),
            sum(feed.fps.rate() for feed in self.feeds),
            max(feed.seconds_without_frame(now) for feed in self.feeds), per_camera))

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

    def _infer(self) -> None:
        stack: VisionStack | None = None
        try:
            current = self.store.current
            stack = self._stack = self.models.stack_for(current)
            log.info("models: %s", stack.runtimes())
            gallery = current.gallery if current else Gallery.empty(stack.embedder.dim)
            threshold = self.models.for_watchlist(current).for_gallery(gallery.size)
            gpu = GpuGallery()
            for feed in self.feeds:  # one tracker per camera, one set of models (and GPU gallery) for all
                feed.pipeline = Pipeline(stack, gallery, threshold, self.cfg.quality, self.cfg.track,
                                         self.cfg.detector.stride, gpu=gpu)
                feed.heartbeat = time.monotonic()
            pipelines = [feed.pipeline for feed in self.feeds]
            installed = current  # the watchlist the pipelines match against: alerts refer to it
            self._models_ready.set()
            while not all(feed.queue.closed for feed in self.feeds):
                installed = self.control.swap_into(pipelines) or installed
                work = take_frames(self.feeds, self._wake, 0.5)
                if not work:
                    continue
                self.delivery.deliver_pending()
                for feed, alerts in process_frames(work):
                    for alert in alerts:
                        self.delivery.emit(alert, installed, feed.id, feed.minutes)
            for feed, pipeline in zip(self.feeds, pipelines, strict=True):
                before = feed.before()
                pipeline.finish()
                feed.processed(before, frames=0)
            failed = [feed for feed in self.feeds if feed.failure is not None]
            if failed and len(failed) == len(self.feeds):  # with no camera left, the device stops in error
                self._failure = failed[0].failure
        except Exception as exc:  # the daemon reports, audits the stop, and systemd restarts it
            log.exception("inference thread failed")
            self._failure = exc
        finally:  # engines, buffers and the CUDA context are released on this thread, failed or not
            if stack is not None:
                try:
                    stack.close()
                except Exception:
                    log.exception("closing the models failed")

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

