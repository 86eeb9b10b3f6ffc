"""[handheld] section of an officer's handheld config (`edge handheld --config handheld.toml`).

The file also holds a [link] section (edge.config.link.LinkConfig) with the broker address and the
handheld's client certificate, whose CN `handheld-<id>` must name the same id as here.
"""

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationError, model_validator

from edge.config.base import StrictModel, check_id
from edge.config.link import LinkConfig
from edge.config.pin import PinHash
from edge.config.tomlio import load_toml
from edge.errors import ConfigError


def _checked_id(key: str) -> AfterValidator:
    """An id usable in topic names and certificate CNs; the error names the config key."""
    return AfterValidator(lambda v: check_id(v, key))


def _pin_hash(value: str | None) -> str | None:
    if value is not None:
        PinHash.parse(value)
    return value


class Officer(StrictModel):
    """A person who may adjudicate on this handheld; the id goes into every signed decision and the audit log."""

    id: Annotated[str, _checked_id("handheld.officers.id")] = Field(
        description="officer's service id (letters, digits, '_', '.', '-')")
    name: str = Field(min_length=1, max_length=120, description="name shown on the page and sent with decisions")
    pin: Annotated[str | None, AfterValidator(_pin_hash)] = Field(
        None, description="salted scrypt hash of the officer's PIN ($scrypt$…; never the PIN itself): a decision as "
                          "this officer must carry the PIN. Set by `edge handheld provision --officer-pin ID` or "
                          "`--pins-from FILE`, or printed by `edge handheld hash-pin`")


class HandheldConfig(StrictModel):
    """Who this handheld is, its keys, what it trusts, and where it serves the officer's page."""

    id: Annotated[str, _checked_id("handheld.id")] = Field(
        description="handheld id, as in its certificate CN handheld-<id>")
    officers: list[Officer] = Field(min_length=1, description="who may decide here; the first is preselected")
    signing_key: Path = Field(Path("handheld_signing.key"), description="Ed25519 private key (PEM): signs decisions")
    encryption_key: Path = Field(Path("handheld_encryption.key"), description="X25519 private key (PEM): opens alerts")
    hq_public_key: Path = Field(Path("hq_signing.pub"), description="pinned HQ Ed25519 key: verifies pairing records")
    pairing: Path = Field(
        Path("pairing.json"), description="HQ-signed pairing record (which devices, their keys); updated over MQTT"
    )
    state: Path = Field(Path("handheld.sqlite"), description="local store of alerts and decisions (SQLite)")
    bind: str = Field("127.0.0.1", description="address the page is served on; keep loopback unless behind a VPN")
    port: int = Field(8088, ge=0, le=65535, description="page port (0: any free port, printed at start)")
    two_officer_rule: bool = Field(False, description="an alert counts as confirmed only after two officers confirm")
    retention_hours: float = Field(
        24.0, gt=0, le=24 * 90, description="alerts (and their images) older than this are deleted from the handheld"
    )

    @model_validator(mode="after")
    def _unique_officers(self) -> "HandheldConfig":
        ids = [o.id for o in self.officers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"handheld.officers lists an officer id twice ({', '.join(ids)}): one entry per person")
        return self

    @model_validator(mode="after")
    def _pins_for_two_officers(self) -> "HandheldConfig":
        """Without a PIN each, one person at the page could confirm as both officers."""
        missing = [o.id for o in self.officers if o.pin is None]
        if self.two_officer_rule and missing:
            raise ValueError(f"handheld.two_officer_rule needs a PIN for every officer, so that one person cannot "
                             f"decide as two; no PIN for officer(s) {', '.join(missing)}: provision with "
                             "--officer-pin ID or --pins-from FILE, or set handheld.officers' pin = \"…\" to what "
                             "`edge handheld hash-pin` prints")
        return self

    def resolve(self, base: Path) -> "HandheldConfig":
        """Paths relative to the config file's folder, so a provisioned folder can move as a whole."""
        fields = ("signing_key", "encryption_key", "hq_public_key", "pairing", "state")
        return self.model_copy(update={f: base / getattr(self, f) for f in fields})


class HandheldFile(StrictModel):
    """A handheld's whole config file: [handheld] and [link]."""

    handheld: HandheldConfig
    link: LinkConfig

    @classmethod
    def load(cls, path: Path) -> "HandheldFile":
        """Read and validate `path`; relative paths in it are relative to its folder. Raises ConfigError."""
        try:
            data = load_toml(path)
        except OSError as exc:
            raise ConfigError(f"cannot read handheld config {path}: {exc.strerror}; "
                              "make one with `edge handheld provision`") from exc
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        try:
            loaded = cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}"
                                 for e in exc.errors()[:5])
            raise ConfigError(f"{path}: {problems}") from None
        base = path.resolve().parent
        link = loaded.link.model_copy(update={f: base / getattr(loaded.link, f) for f in ("ca", "cert", "key")})
        return cls(handheld=loaded.handheld.resolve(base), link=link)
