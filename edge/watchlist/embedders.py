"""Which embedders' watchlists a device takes, and what to say when it refuses one.

Embeddings from two models are not comparable, so a watchlist is bound to the sha256 of the embedder it was
enrolled with and a device matches with that very model. Changing a fleet's embedder is therefore a fleet
event (docs/watchlist-migration.md): HQ re-enrols from the photos it keeps and publishes a new version, and
a device keeps matching on its installed list, with that list's embedder, until the new one verifies.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.models import Manifest
from edge.watchlist.bundle import BundleHeader, BundleRefused

MIGRATION_DOC = "docs/watchlist-migration.md"


@dataclass(frozen=True)
class DeviceEmbedders:
    """The embedder a device is configured to run, and every embedder model it ships (sha256 -> name).

    A new list is taken when it was enrolled with the configured embedder, or with the embedder of the list
    in use (a device not yet moved keeps receiving its old list's updates). At start, the installed list is
    kept whatever shipped embedder it was enrolled with: the device matches with that model until a list for
    the configured one verifies.
    """

    configured: str
    shipped: Mapping[str, str]
    unavailable: Mapping[str, str] = field(default_factory=dict)  # sha256 -> why the device cannot run it now
    dims: Mapping[str, int] = field(default_factory=dict)  # sha256 -> the model's embedding size

    @classmethod
    def from_manifest(cls, manifest: Manifest, configured: str,
                      unavailable: Mapping[str, str] | None = None) -> "DeviceEmbedders":
        """`unavailable`: model name -> why it cannot run on this device now (file missing, no engine)."""
        manifest.spec(configured)  # an unknown name fails here, naming the known ones
        specs = {name: s for name, s in manifest.models.items() if s.role == "embedder"}
        return cls(configured, {s.sha256: name for name, s in specs.items()},
                   {specs[name].sha256: why for name, why in (unavailable or {}).items()},
                   {s.sha256: s.dim for s in specs.values() if s.dim})

    @classmethod
    def only(cls, name: str, sha256: str) -> "DeviceEmbedders":
        """A reader that takes lists of one embedder only (replay of footage, tests)."""
        return cls(name, {sha256: name})

    @property
    def configured_sha256(self) -> str:
        return next(sha for sha, name in self.shipped.items() if name == self.configured)

    def name_of(self, sha256: str) -> str | None:
        return self.shipped.get(sha256)

    def check_new(self, header: BundleHeader, in_use: str | None) -> None:
        """Refuse a new bundle enrolled with neither the configured embedder nor `in_use` (a sha256)."""
        sha = header.embedder.sha256
        what = f"watchlist {header.watchlist_id} version {header.version} was enrolled with " \
               f"{header.embedder.name} ({sha[:16]}…)"
        if sha in self.unavailable:
            raise BundleRefused("wrong_embedder", f"{what}, which this device cannot run now: "
                                f"{self.unavailable[sha]}")
        self._check_dim(header)
        if sha in (self.configured_sha256, in_use):
            return
        if sha not in self.shipped:
            raise BundleRefused("wrong_embedder", f"{what}, a model this device does not ship: HQ re-enrols the "
                                f"list with the device's embedder (`edge watchlist build --embedder "
                                f"{self.configured}`) and publishes a new version, or the device's software is "
                                f"updated to one that ships that model ({MIGRATION_DOC})")
        raise BundleRefused("wrong_embedder", f"{what}; this device is configured for {self.configured} "
                            f"({self.configured_sha256[:16]}…): HQ re-enrols from its kept photos with `edge "
                            f"watchlist build --embedder {self.configured}` and publishes a new version; to keep "
                            f"this device on {header.embedder.name}, set [embedder] model = "
                            f"\"{header.embedder.name}\" in its edge.toml ({MIGRATION_DOC})")

    def _check_dim(self, header: BundleHeader) -> None:
        dim = self.dims.get(header.embedder.sha256)
        if dim is not None and header.embedder.dim != dim:
            raise BundleRefused("malformed", f"bundle says {header.embedder.name} embeddings have "
                                f"{header.embedder.dim} dimensions, the model gives {dim}: HQ built an "
                                "inconsistent bundle; rebuild it with `edge watchlist build`")

    def check_installed(self, header: BundleHeader) -> None:
        """Refuse the installed bundle at start only when its embedder is no longer on the device."""
        if header.embedder.sha256 in self.unavailable:
            raise BundleRefused("wrong_embedder", f"the installed watchlist {header.watchlist_id} version "
                                f"{header.version} was enrolled with {header.embedder.name}, which this device "
                                f"cannot run now: {self.unavailable[header.embedder.sha256]}")
        self._check_dim(header)
        if header.embedder.sha256 not in self.shipped:
            raise BundleRefused("wrong_embedder", f"the installed watchlist {header.watchlist_id} version "
                                f"{header.version} was enrolled with {header.embedder.name} "
                                f"({header.embedder.sha256[:16]}…), a model this device no longer ships: nothing "
                                f"matches until HQ publishes a list enrolled with {self.configured} "
                                f"({MIGRATION_DOC})")
