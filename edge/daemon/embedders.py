"""Which embedder the device matches with, and the thresholds that belong to it.

A watchlist is bound to its embedder's sha256, so the pipeline matches with the model the installed list was
enrolled with: the configured one, or, while HQ moves the fleet to a new embedder, the previous one until a
list for the configured model verifies (docs/watchlist-migration.md). Thresholds never carry over between
models: the configured embedder's come from [match] and its calibration table, another's from its own table.
"""

import logging

from edge.config import EdgeConfig
from edge.errors import ConfigError
from edge.models import Manifest
from edge.vision.stack import VisionStack
from edge.watchlist.calibration import ThresholdPolicy, load_policy
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.installed import InstalledWatchlist

log = logging.getLogger(__name__)


class MatchingModels:
    """The embedder each watchlist is matched with, and each embedder's threshold policy (loaded once)."""

    def __init__(self, cfg: EdgeConfig, manifest: Manifest) -> None:
        self._cfg = cfg
        self._manifest = manifest
        self.embedders = DeviceEmbedders.for_device(manifest, cfg.embedder, cfg.runtime, cfg.match)
        self._policies: dict[str, ThresholdPolicy] = {}
        self.for_embedder(cfg.embedder.model)  # no calibration table, or a bad [match] section, stops start-up
        self.configured_problem = self.embedders.why_not(cfg.embedder.model)  # its file or engine, which can mend
        if self.configured_problem is not None:
            log.error("embedder.model %r cannot be used now: %s", cfg.embedder.model, self.configured_problem)

    def check_startable(self, installed: InstalledWatchlist | None) -> None:
        """At start: a device whose configured embedder cannot be used still runs on an installed list it can
        match with (and takes a list for the configured model once that is mended); with neither it stops."""
        if self.configured_problem is not None and installed is None:
            raise ConfigError(f"embedder.model {self._cfg.embedder.model!r} cannot be used: "
                              f"{self.configured_problem}; and no installed watchlist was enrolled with a model "
                              "this device can match with")

    def for_embedder(self, name: str) -> ThresholdPolicy:
        if name not in self._policies:
            self._policies[name] = load_policy(self._cfg.match, self._manifest.folder, name,
                                               self._manifest.spec(name).sha256, name == self.embedders.configured)
        return self._policies[name]

    def embedder_of(self, wl: InstalledWatchlist | None) -> str:
        """The embedder to match this watchlist with (the configured one when there is none)."""
        if wl is None:
            return self.embedders.configured
        name = self.embedders.name_of(wl.header.embedder.sha256)
        if name is None:  # the store refuses such a list; never reached
            raise ValueError(f"watchlist enrolled with unknown embedder {wl.header.embedder.name}")
        return name

    def for_watchlist(self, wl: InstalledWatchlist | None) -> ThresholdPolicy:
        return self.for_embedder(self.embedder_of(wl))

    def stack_for(self, wl: InstalledWatchlist | None) -> VisionStack:
        """Open the detector and the embedder to match this watchlist with."""
        cfg, name = self._cfg, self.embedder_of(wl)
        self._say_if_not_configured(name)
        return VisionStack.open(cfg.detector, cfg.embedder.model_copy(update={"model": name}), cfg.runtime)

    def switch(self, stack: VisionStack, wl: InstalledWatchlist) -> bool:
        """Make `stack` embed with the model `wl` was enrolled with; True when that changed the embedder."""
        name = self.embedder_of(wl)
        if self._manifest.spec(name).sha256 == stack.embedder_sha256:
            return False
        log.warning("watchlist %s version %d was enrolled with %s: switching the embedder from %s",
                    wl.header.watchlist_id, wl.header.version, name, stack.embedder.spec.name)
        stack.switch_embedder(self._cfg.embedder.model_copy(update={"model": name}), self._cfg.runtime)
        self._say_if_not_configured(name)
        return True

    def _say_if_not_configured(self, name: str) -> None:
        if name != self.embedders.configured:
            log.warning("matching with %s, not the configured %s, until HQ publishes a list enrolled with %s "
                        "(docs/watchlist-migration.md)", name, self.embedders.configured, self.embedders.configured)
