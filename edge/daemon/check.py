"""`edge run --config FILE --check`: what `edge run` reads at start-up, checked without opening the camera or
connecting to the broker.

Two kinds of problem, reported apart: the settings themselves (an unknown key, a bad value, a threshold below
the embedder's measured floor: `load_config` and the threshold policy, a ConfigError naming the key), and
the files the settings name (keys, TLS files, the state folder), each named by its key. Either makes the check
fail (exit 2): the daemon would not start.
"""

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.config import EdgeConfig
from edge.daemon.embedders import MatchingModels
from edge.errors import EdgeError
from edge.keys import load_encryption_private, load_signing_private, load_signing_public
from edge.link.mqtt import read_identity
from edge.models import ENGINES_DIR, Manifest

_GALLERY = 100  # list size the summary quotes the threshold at


@dataclass(frozen=True)
class Finding:
    key: str  # as written in the TOML file, e.g. "device.signing_key"
    message: str


@dataclass(frozen=True)
class CheckResult:
    problems: list[Finding]  # the daemon would not start
    notes: list[Finding]  # it would start, but this may not be what was meant
    summary: str  # what the settings amount to


def check(cfg: EdgeConfig) -> CheckResult:
    """Everything but the camera and the broker; a bad [match] or embedder raises ConfigError (the key named)."""
    problems: list[Finding] = []
    notes: list[Finding] = []
    engines = cfg.runtime.engines_dir or ENGINES_DIR
    try:
        manifest = Manifest.load(engines)
    except EdgeError as exc:
        return CheckResult([Finding("runtime.engines_dir", str(exc))], notes, "models not found")
    models = MatchingModels(cfg, manifest)
    if models.configured_problem is not None:
        problems.append(Finding("embedder.model", f"{cfg.embedder.model} cannot be used: {models.configured_problem}"))
    policy = models.for_embedder(cfg.embedder.model)
    at = policy.for_gallery(_GALLERY)
    summary = (f"device {cfg.device.id}, embedder {cfg.embedder.model}, match mode {cfg.match.mode}: threshold "
               f"{at.value:.3f} for a list of {_GALLERY}, floor {policy.floor:.3f}; cameras "
               f"{', '.join(c.id for c in cfg.all_cameras)}")
    device = cfg.device
    loaders: list[tuple[str, Path, Callable[[Path], object]]] = [
        ("device.signing_key", device.signing_key, load_signing_private),
        ("device.encryption_key", device.encryption_key, load_encryption_private),
        ("device.hq_public_key", device.hq_public_key, load_signing_public),
    ]
    for key, path, load in loaders:
        try:
            load(path)
        except EdgeError as exc:
            problems.append(Finding(key, f"{exc} (made by `edge device provision`)"))
    problems += _tls(cfg)
    problems += _writable("device.state_dir", device.state_dir)
    for camera in cfg.all_cameras:
        if "://" not in camera.source and not Path(camera.source).exists():
            notes.append(Finding(f"camera {camera.id} source", f"{camera.source} does not exist now; `edge run` "
                                 "waits for it to appear (a missing file: that camera stays off, the others run)"))
    return CheckResult(problems, notes, summary)


def _tls(cfg: EdgeConfig) -> list[Finding]:
    link = cfg.link
    missing = [Finding(f"link.{name}", f"{path} not found (made by `edge hq pki issue --role device --id "
                                       f"{cfg.device.id}`)")
               for name, path in (("ca", link.ca), ("cert", link.cert), ("key", link.key)) if not path.is_file()]
    if missing:
        return missing
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(link.ca))
    except (ssl.SSLError, OSError) as exc:
        return [Finding("link.ca", f"{link.ca} is not a readable CA certificate: {exc}")]
    try:
        context.load_cert_chain(str(link.cert), str(link.key))
    except (ssl.SSLError, OSError) as exc:
        return [Finding("link.key", f"{link.cert} and {link.key} are not a readable certificate and its key: {exc}")]
    try:
        identity = read_identity(link.cert)
    except EdgeError as exc:
        return [Finding("link.cert", str(exc))]
    if identity.role != "device" or identity.id != cfg.device.id:
        return [Finding("link.cert", f"{link.cert} is the certificate of {identity.name}, not device-{cfg.device.id}: "
                                     "give this device's certificate, or fix device.id")]
    return []


def _writable(key: str, folder: Path) -> list[Finding]:
    """The folder exists and is writable, or can be made: its nearest existing parent is writable."""
    if folder.exists():
        if not folder.is_dir():
            return [Finding(key, f"{folder} exists and is not a folder")]
        return [] if os.access(folder, os.W_OK | os.X_OK) else [Finding(key, f"{folder} is not writable by this user")]
    parent = next((p for p in folder.parents if p.exists()), None)
    if parent is None or not os.access(parent, os.W_OK | os.X_OK):
        return [Finding(key, f"{folder} does not exist and cannot be made here ({parent} is not writable): create it "
                             "for the user `edge run` runs as")]
    return []
