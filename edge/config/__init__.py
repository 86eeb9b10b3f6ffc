"""The device configuration: one TOML file, one pydantic model per section, unknown keys refused."""

from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from edge.config.alerts import AlertsConfig
from edge.config.audit import AuditConfig
from edge.config.base import StrictModel
from edge.config.camera import CameraConfig
from edge.config.detector import DetectorConfig
from edge.config.device import DeviceConfig
from edge.config.embedder import EmbedderConfig
from edge.config.link import LinkConfig
from edge.config.match import MatchConfig
from edge.config.quality import QualityConfig
from edge.config.runtime import ENGINES_SUBDIR, RuntimeConfig
from edge.config.tomlio import load_toml
from edge.config.track import TrackConfig
from edge.config.watchlist import WatchlistConfig
from edge.errors import ConfigError

MAX_CAMERAS = 16  # the inference thread serves them all; more belong on another device


class EdgeConfig(StrictModel):
    """Everything `edge run` reads. Each section is documented in its own module."""

    device: DeviceConfig
    camera: CameraConfig | None = Field(None, description="one camera; [[cameras]] for several (not both)")
    cameras: list[CameraConfig] | None = Field(None, min_length=1, max_length=MAX_CAMERAS,
                                               description="several cameras served by this one device")
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    track: TrackConfig = Field(default_factory=TrackConfig)
    match: MatchConfig = Field(default_factory=MatchConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    watchlist: WatchlistConfig = Field(default_factory=WatchlistConfig)
    link: LinkConfig = Field(default_factory=LinkConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)

    @model_validator(mode="after")
    def _engines_under_state(self) -> "EdgeConfig":
        """Built engines default to <device.state_dir>/engines: the one place the engines unit (`edge engines
        build --config`) writes them and the daemon loads them from."""
        if self.runtime.engine_cache is None:
            self.runtime = self.runtime.model_copy(update={"engine_cache": self.device.state_dir / ENGINES_SUBDIR})
        return self

    @model_validator(mode="after")
    def _one_camera_list(self) -> "EdgeConfig":
        """A [camera] table is a list of one; [[cameras]] lists several, each named by a distinct id (events,
        status and audit records name the camera by it)."""
        if self.camera is not None and self.cameras is not None:
            raise ValueError("both [camera] and [[cameras]] given: keep [camera] for one camera, or list every "
                             "camera as a [[cameras]] table (each with its own id), not both")
        if self.cameras is None and self.camera is None:
            self.camera = CameraConfig()
        ids = [c.id for c in self.all_cameras]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"cameras.id {', '.join(map(repr, twice))} given to more than one [[cameras]] table: "
                             "give each camera its own id")
        return self

    @property
    def all_cameras(self) -> list[CameraConfig]:
        """Every camera this device serves, in the order configured."""
        if self.cameras is not None:
            return list(self.cameras)
        return [self.camera or CameraConfig()]

# Keys renamed between versions: an old config names the key it now needs instead of just failing.
RENAMED = {"embedder.enrol_flip": "embedder.enroll_flip"}


def explain(exc: ValidationError, source: str) -> str:
    """One line per problem, naming the key as written in the TOML file and what is allowed."""
    problems: dict[str, list[str]] = {}
    for err in exc.errors():
        # Union members add tags such as 'int' or "literal['full']" to the location: not keys.
        key = ".".join(str(p) for p in err["loc"] if not _is_type_tag(p)) or "(top level)"
        if err["type"] == "extra_forbidden" and key in RENAMED:
            problems.setdefault(key, []).append(f"renamed to {RENAMED[key]}: use that name")
        elif err["type"] == "extra_forbidden":
            problems.setdefault(key, []).append("unknown key: remove it or check its spelling")
        elif err["type"] == "missing":
            problems.setdefault(key, []).append("missing key")
        elif err["type"] == "value_error":  # our validators name the keys and values themselves
            problems.setdefault("", []).append(err["msg"].removeprefix("Value error, "))
        else:
            problems.setdefault(key, []).append(f"bad value {err.get('input')!r}: {err['msg']}")
    return "\n".join(f"{source}: " + (f"'{key}': " if key else "") + "; or ".join(msgs)
                     for key, msgs in problems.items())


def _is_type_tag(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part in {"int", "float", "str", "bool"})


def load_config(path: Path) -> EdgeConfig:
    """Read and validate a config file; any problem is a ConfigError naming the key."""
    if not path.is_file():
        raise ConfigError(f"config file {path} not found: `edge device provision --out DIR …` writes a complete one "
                          "(DIR/edge.toml) with the device's keys; every key: deploy/edge.toml.example")
    try:
        raw = load_toml(path)
    except Exception as exc:  # tomllib.TOMLDecodeError; tomli's on Python 3.10
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return EdgeConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(explain(exc, str(path))) from exc
