"""Which embedders' watchlists a device takes, and what to say when it refuses one.

Embeddings from two models are not comparable, so a watchlist is bound to the sha256 of the embedder it was
enrolled with and a device matches with that very model. Changing a fleet's embedder is therefore a fleet
event (docs/watchlist-migration.md): HQ re-enrols from the photos it keeps and publishes a new version, and
a device keeps matching on its installed list, with that list's embedder, until the new one verifies.

A device can match with a model only when it can run it now and knows its thresholds: the file present and
unaltered, its TensorRT engine built when the backend is `tensorrt`, and its calibration table in place. That
is checked each time a list is taken or loaded, not once at start: a file can change while the device runs.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edge.config.embedder import EmbedderConfig
from edge.config.match import MatchConfig
from edge.config.runtime import RuntimeConfig
from edge.errors import ConfigError
from edge.models import Manifest
from edge.runtime.select import unavailable_reason
from edge.watchlist.bundle import BundleHeader, BundleRefused
from edge.watchlist.calibration import load_policy

MIGRATION_DOC = "docs/watchlist-migration.md"
DEVICE_HINT = 'set [embedder] model = "{name}" in its edge.toml'

WhyNot = Callable[[str], str | None]  # model name -> why the device cannot match with it now, or None


def _runs_anything(_: str) -> None:
    return None


@dataclass(frozen=True)
class DeviceEmbedders:
    """The embedder a device is configured to run and every embedder model it ships (sha256 -> name).

    A new list is taken when it was enrolled with the configured embedder, or with the embedder of the list
    in use (a device not yet moved keeps receiving its old list's updates). At start, the installed list is
    kept whatever shipped embedder it was enrolled with: the device matches with that model until a list for
    the configured one verifies. `hint` says how to keep a device on another model (`{name}`: that model).
    """

    configured: str
    shipped: Mapping[str, str]
    dims: Mapping[str, int]
    why_not: WhyNot = _runs_anything
    hint: str = DEVICE_HINT

    @classmethod
    def from_manifest(cls, manifest: Manifest, configured: str, why_not: WhyNot | None = None,
                      hint: str = DEVICE_HINT) -> "DeviceEmbedders":
        if manifest.spec(configured).role != "embedder":  # an unknown name fails here, naming the known ones
            raise ConfigError(f"{configured} is not an embedder: choose one of the embedders in "
                              f"{manifest.folder / 'models.toml'}")
        specs = {name: s for name, s in manifest.models.items() if s.role == "embedder"}
        return cls(configured, {s.sha256: name for name, s in specs.items()},
                   {s.sha256: s.dim for s in specs.values() if s.dim}, why_not or _runs_anything, hint)

    @classmethod
    def for_device(cls, manifest: Manifest, embedder: EmbedderConfig, runtime: RuntimeConfig,
                   match: MatchConfig | None = None, hint: str = DEVICE_HINT) -> "DeviceEmbedders":
        """A device's embedders, each usable only while its model runs and a threshold policy can be built for it
        from its calibration table and the device's [match] section (per-group curves included)."""

        def why_not(name: str) -> str | None:
            why = unavailable_reason(manifest, name, runtime.backend, runtime.engine_cache)
            if why is None:
                try:
                    load_policy(match or MatchConfig(), manifest.folder, name, manifest.spec(name).sha256,
                                name == embedder.model)
                except ConfigError as exc:
                    why = str(exc)
            return why

        return cls.from_manifest(manifest, embedder.model, why_not, hint)

    @classmethod
    def only(cls, name: str, sha256: str) -> "DeviceEmbedders":
        """A reader that takes lists of one embedder only, whatever their size says (tests, benchmarks)."""
        return cls(name, {sha256: name}, {})

    @property
    def configured_sha256(self) -> str:
        return next(sha for sha, name in self.shipped.items() if name == self.configured)

    def name_of(self, sha256: str) -> str | None:
        return self.shipped.get(sha256)

    def check_new(self, header: BundleHeader, in_use: str | None) -> None:
        """Refuse a new bundle enrolled with neither the configured embedder nor `in_use` (a sha256), or with a
        model the device cannot match with now."""
        sha = header.embedder.sha256
        name, what = self._enrolled_with(header, "watchlist")
        if name is None:
            raise BundleRefused("wrong_embedder", f"{what}, a model file this device does not ship: HQ re-enrols "
                                f"the list with the device's embedder (`edge watchlist build --embedder "
                                f"{self.configured}`) and publishes a new version, or the device's software is "
                                f"updated to one that ships that model ({MIGRATION_DOC})")
        self._check_dim(header)
        if sha not in (self.configured_sha256, in_use):
            raise BundleRefused("wrong_embedder", f"{what}; this device is configured for {self.configured} "
                                f"({self.configured_sha256[:16]}…): HQ re-enrols from its kept photos with `edge "
                                f"watchlist build --embedder {self.configured}` and publishes a new version; to "
                                f"keep this device on {name}, {self.hint.format(name=name)} ({MIGRATION_DOC})")
        if (why := self.why_not(name)) is not None:
            raise BundleRefused("wrong_embedder", f"{what}, which this device cannot match with now: {why}")

    def check_installed(self, header: BundleHeader) -> None:
        """Refuse the installed bundle at start only when the device can no longer match with its embedder."""
        name, what = self._enrolled_with(header, "the installed watchlist")
        if name is None:
            raise BundleRefused("wrong_embedder", f"{what}, a model file this device no longer ships: nothing "
                                f"matches until HQ publishes a list enrolled with {self.configured} "
                                f"({MIGRATION_DOC})")
        self._check_dim(header)
        if (why := self.why_not(name)) is not None:
            raise BundleRefused("wrong_embedder", f"{what}, which this device cannot match with now: {why}; "
                                f"nothing matches until that is mended or HQ publishes a list enrolled with "
                                f"{self.configured}")

    def _enrolled_with(self, header: BundleHeader, lead: str) -> tuple[str | None, str]:
        """The shipped model's name for the header's embedder (None: not shipped), and the refusal's opening."""
        sha = header.embedder.sha256
        name = self.shipped.get(sha)
        return name, (f"{lead} {header.watchlist_id} version {header.version} was enrolled with "
                      f"{name or header.embedder.name} ({sha[:16]}…)")

    def _check_dim(self, header: BundleHeader) -> None:
        dim = self.dims.get(header.embedder.sha256)
        if dim is not None and header.embedder.dim != dim:
            raise BundleRefused("malformed", f"bundle says its {header.embedder.name} embeddings have "
                                f"{header.embedder.dim} dimensions, the model gives {dim}: HQ built an "
                                "inconsistent bundle; rebuild it with `edge watchlist build`")
