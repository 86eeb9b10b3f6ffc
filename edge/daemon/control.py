"""What HQ and the handhelds tell the device, and what it tells them back about itself.

Pairing records (which handhelds get this device's alerts), officers' adjudications (verified, audited once),
watchlist bundles (installed by the store, swapped into the pipeline between frames) and status messages.
These arrive on the link's delivery thread while frames flow on the inference thread, so everything the two
share passes through a lock or a single reference swap, and every change the device accepts is audited.
"""

import collections
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.audit.decisions import audit_body
from edge.audit.log import AuditLog
from edge.audit.records import (
    REASON_MAX,
    ConfigChange,
    ConfigChangedBody,
    WatchlistInstalledBody,
    WatchlistRefusedBody,
)
from edge.daemon.embedders import MatchingModels
from edge.daemon.health import temperatures
from edge.daemon.seen import SeenDecisions
from edge.errors import EdgeError
from edge.link.uplink import Bundle, Uplink
from edge.pipeline import FaceCounters, Pipeline
from edge.protocol import messages
from edge.protocol.adjudication import verify_adjudication
from edge.protocol.pairing import DevicePairing, read_record, save_record
from edge.protocol.refused import Refused
from edge.watchlist.installed import InstalledWatchlist
from edge.watchlist.match import Gallery
from edge.watchlist.state import BundleRefusal, StoreState
from edge.watchlist.store import WatchlistStore

log = logging.getLogger(__name__)

# Officers decide on this device's alerts a few times a minute at most. A handheld sending more (a runaway one, or
# its stolen key) would otherwise have every distinct signed decision audited and queued for HQ until the disk is
# full, and then the alerts themselves depend on the reserve: past this many an hour its decisions are refused.
DECISIONS_PER_HOUR = 600


class DeviceControl:
    """The device's side of pairing, adjudication, watchlist install and swap, and status reporting."""

    def __init__(self, *, device_id: str, hq_public: Ed25519PublicKey, pairing_file: Path,
                 pairing: DevicePairing | None, uplink: Uplink, audit: AuditLog, store: WatchlistStore,
                 models: MatchingModels, seen: SeenDecisions) -> None:
        """`seen`: the decisions already audited, on disk (a retained or redelivered one is audited once)."""
        self.device_id = device_id
        self.hq_public = hq_public
        self.pairing_file = pairing_file
        self.pairing = pairing
        self.uplink = uplink
        self.audit = audit
        self.store = store
        self.models = models
        self.bundle_seen = threading.Event()  # set once the first bundle (installed or not) was handled
        self._swap_lock = threading.Lock()
        self._pending: InstalledWatchlist | None = None
        self._last_status: str | None = None  # none reported yet: the first status seen is a change
        self._status_lock = threading.Lock()
        self._stopped = False  # matching stopped for stale freshness statements (watchlist.stale_stops_matching)
        self.seen = seen
        self._decided: dict[str, collections.deque[float]] = {}  # per handheld: when its decisions were audited

    # --- pairing and adjudication ------------------------------------------------------------------

    def on_pairing(self, data: bytes) -> None:
        current = self.pairing
        try:
            record = read_record(data, DevicePairing, self.hq_public, self.device_id, current=current)
        except Refused:
            if current is not None and current.signature and current.signature.encode() in data:
                return  # the retained record we already hold, delivered again on reconnect
            raise  # the link logs, counts and acknowledges it (edge.link.inbound)
        save_record(record, self.pairing_file)
        self.pairing = record
        old = ",".join(h.id for h in current.handhelds) if current else ""
        new = ",".join(h.id for h in record.handhelds)
        self.audit.append("config_changed", ConfigChangedBody(
            source="hq", changes=[ConfigChange(key="pairing.handhelds", old=old, new=new)]))
        log.info("paired handhelds now: %s", new or "none")

    def on_adjudication(self, topic: str, data: bytes) -> None:
        pairing = self.pairing
        if pairing is None:
            raise Refused("unpaired", "this device has no pairing record: no handheld's decision is accepted")
        try:
            decision = verify_adjudication(data, pairing.handheld_keys(), topic=topic, device=self.device_id)
        except Refused as exc:
            if exc.code != "not_ours":  # another device's alert: not a refusal, just not ours
                raise  # the link logs, counts and acknowledges it (edge.link.inbound)
            return
        if decision.adjudication_id in self.seen:  # retained, or redelivered after a reconnect or a restart
            log.info("decision %s on %s is already in the audit log; not audited again", decision.adjudication_id,
                     topic)
            return
        recent = self._decided.setdefault(decision.handheld, collections.deque())
        now = time.monotonic()
        while recent and now - recent[0] > 3600:
            recent.popleft()
        if len(recent) >= DECISIONS_PER_HOUR:
            raise Refused("rate_limited", f"handheld {decision.handheld} sent more than {DECISIONS_PER_HOUR} "
                                          "decisions within an hour: not audited (a runaway or stolen handheld?)")
        self.audit.append("adjudication", audit_body(decision))  # raises: left unacknowledged, redelivered
        recent.append(now)
        try:
            self.seen.add(decision.adjudication_id)
        except EdgeError as exc:  # audited: acknowledge it all the same
            log.error("%s", exc)

    # --- watchlist ------------------------------------------------------------------------------------

    def on_bundle(self, bundle: Bundle) -> None:
        try:
            self._install(bundle)
        finally:
            self.bundle_seen.set()

    def _install(self, bundle: Bundle) -> None:
        previous = self.store.current
        result = self.store.install(bundle.path)
        wl = self.store.current
        if result.outcome == "installed" and wl is not None:
            wl.gallery.prepare()  # here, on the link's thread, not on the first frame matched against it
            with self._swap_lock:  # matching moves to the new list even if the audit write below fails
                self._pending = wl
            policy = self.models.for_watchlist(wl)  # the list's size and embedder set the threshold: say which
            threshold = policy.for_gallery(wl.gallery.size)
            self.audit.append("watchlist_installed", WatchlistInstalledBody(
                watchlist_id=wl.header.watchlist_id, version=wl.header.version, entries=wl.header.entry_count,
                expires=wl.header.expires.timestamp(), bundle_sha256=wl.sha256, model_sha256=wl.header.embedder.sha256,
                previous_version=previous.header.version if previous else None, threshold=threshold.value,
                threshold_policy=threshold.policy, embedder_sha256=policy.calibration.embedder_sha256))
        elif result.outcome == "refused" and result.refusal is not None:
            r = result.refusal
            self.audit.append("watchlist_refused", WatchlistRefusedBody(
                watchlist_id=r.watchlist_id, version=r.version, bundle_sha256=r.sha256,
                reason=f"{r.code}: {r.message}"[:REASON_MAX],
                kept_watchlist_id=wl.header.watchlist_id if wl else None,
                kept_version=wl.header.version if wl else None))
        self.uplink.send_watchlist_state(self._state_message(result.outcome, bundle, result.refusal))

    def on_timestamp(self, data: bytes) -> None:
        """HQ's freshness statement for a list (edge.watchlist.timestamp): kept when newer, else refused."""
        try:
            statement = self.store.accept_timestamp(data)
        except Refused as exc:
            log.warning("freshness statement refused (%s): %s", exc.code, exc)
            return
        if statement is not None:
            log.info("HQ's freshness statement: %s at version %d as of %s", statement.watchlist_id,
                     statement.version, statement.issued_at.isoformat())
            self._status_changed(self.store.state())

    def _status_changed(self, state: StoreState) -> None:
        """Tell HQ of a changed watchlist status; into or out of stale or behind, the audit chain too."""
        with self._status_lock:
            old, self._last_status = self._last_status, state.status
        if old == state.status:
            return
        if {old, state.status} & {"stale", "behind"}:
            log.warning("watchlist %s: %s", state.status, state.message)
            try:
                self.audit.append("config_changed", ConfigChangedBody(source="hq", changes=[ConfigChange(
                    key="watchlist.freshness", old=old, new=f"{state.status}: {state.message}"[:REASON_MAX])]))
            except EdgeError as exc:
                log.error("watchlist freshness change not audited: %s", exc)
        if old is not None:  # at start the daemon has just said what is installed (publish_state_now)
            self.publish_state_now()

    def swap_into(self, pipelines: Sequence[Pipeline]) -> InstalledWatchlist | None:
        """On the inference thread, between frames: move the cameras' `pipelines` (sharing one VisionStack) to a
        newly installed watchlist, if any;
        match nobody while the store says its freshness statements are stale and that stops matching.

        Returns the watchlist alerts now refer to when it changed, or None when nothing changed.
        """
        with self._swap_lock:
            wl, self._pending = self._pending, None
        wl = self._swap_new(pipelines, wl)
        stopped = self.store.matching_stopped()
        if stopped and (not self._stopped or wl is not None):
            for pipeline in pipelines:
                pipeline.swap_watchlist(Gallery.empty(pipeline.gallery.dim), pipeline.threshold)
            log.warning("watchlist freshness is stale: matching nobody until HQ's next statement arrives")
        elif self._stopped and not stopped and (current := self.store.current) is not None:
            threshold = self.models.for_watchlist(current).for_gallery(current.gallery.size)
            for pipeline in pipelines:
                pipeline.swap_watchlist(current.gallery, threshold)
            log.info("watchlist freshness restored: matching against %s again", current.header.watchlist_id)
            wl = current
        self._stopped = stopped
        return wl

    def _swap_new(self, pipelines: Sequence[Pipeline], wl: InstalledWatchlist | None) -> InstalledWatchlist | None:
        if wl is not None:
            try:  # a list enrolled with another model: embed with that one
                self.models.switch(pipelines[0].stack, wl)
            except EdgeError as exc:  # checked at install; the file changed since: keep matching as before
                log.critical("cannot open %s for watchlist %s version %d (%s); still matching against the list "
                             "loaded before it", wl.header.embedder.name, wl.header.watchlist_id,
                             wl.header.version, exc)
                self._give_up(wl, f"its embedder {wl.header.embedder.name} would not open: {exc}")
                return None
            threshold = self.models.for_watchlist(wl).for_gallery(wl.gallery.size)
            for pipeline in pipelines:
                pipeline.swap_watchlist(wl.gallery, threshold)
            log.info("now matching against watchlist %s version %d", wl.header.watchlist_id, wl.header.version)
        return wl

    def _give_up(self, wl: InstalledWatchlist, reason: str) -> None:
        """The store goes back to the list installed before `wl` (the one the pipeline still matches against);
        the audit chain and HQ are told, as for a refused bundle."""
        restored = self.store.fall_back(reason)
        try:
            self.audit.append("watchlist_refused", WatchlistRefusedBody(
                watchlist_id=wl.header.watchlist_id, version=wl.header.version, bundle_sha256=wl.sha256,
                reason=f"wrong_embedder: installed, then given up: {reason}"[:REASON_MAX],
                kept_watchlist_id=restored.header.watchlist_id if restored else None,
                kept_version=restored.header.version if restored else None))
            self.uplink.send_watchlist_state(self._state_message("refused", None, self.store.state().last_refusal))
        except EdgeError as exc:  # the store's state file says it; the next status message too
            log.error("giving up watchlist version %d not recorded: %s", wl.header.version, exc)

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

    def publish_state_now(self) -> None:
        """Queue a watchlist state message saying what is installed (at start, and when the status changes)."""
        try:
            self.uplink.send_watchlist_state(self._state_message("unchanged", None, None))
        except EdgeError as exc:  # e.g. a full disk: the state goes out with the next change or status
            log.error("watchlist state not queued: %s", exc)

    # --- status ---------------------------------------------------------------------------------------

    def report_status(self, counters: FaceCounters, dropped_frames: int, fps: float,
                      seconds_without_frame: int = 0, cameras: Mapping[str, int] | None = None) -> str:
        """Update the device's status message on the link; returns its one-line summary for systemd.
        The figures are the device's (all cameras); `seconds_without_frame` that of its most silent camera (a
        silent camera shows here at HQ); `cameras`: the same figures per camera (`cam.<id>.<figure>`)."""
        state = self.store.state(datetime.now(timezone.utc))
        self._status_changed(state)  # e.g. the watchlist expired, or went stale, while installed: say so
        c = counters
        values = {"frames": c.frames, "faces_seen": c.faces_seen, "faces_discarded": c.faces_discarded,
                  "alerts": c.alerts, "dropped_frames": dropped_frames, "outbox_pending": self.uplink.pending,
                  "fps_x10": round(fps * 10), "seconds_without_frame": seconds_without_frame, **(cameras or {})}
        values.update({f"temp_mC_{k}": round(v * 1000) for k, v in temperatures().items()})
        self.uplink.set_status(watchlist=self._ref(), counters=values, reason=state.status)
        return f"{fps:.1f} fps, {c.faces_seen} faces, {c.alerts} alerts, watchlist {state.status}"
