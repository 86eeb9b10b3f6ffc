"""PEM files for the two key kinds the system uses: Ed25519 (signing) and X25519 (encryption).

Private keys are written 0600 and never overwritten: replacing a key by accident would orphan every
device or bundle that trusts it.
"""

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from edge.errors import EdgeError

log = logging.getLogger(__name__)

PrivateKey = Ed25519PrivateKey | X25519PrivateKey
PublicKey = Ed25519PublicKey | X25519PublicKey
_K = TypeVar("_K")

HQ_SIGNING_PUB = "hq_signing.pub"


@dataclass(frozen=True)
class KeyPairFiles:
    """File names of one party's (a device's, a handheld's) keys in its folder."""

    signing_key: str
    signing_pub: str
    encryption_key: str
    encryption_pub: str

    @classmethod
    def of(cls, role: str) -> "KeyPairFiles":
        """`<role>_signing.key`, `<role>_signing.pub`, `<role>_encryption.key`, `<role>_encryption.pub`."""
        return cls(f"{role}_signing.key", f"{role}_signing.pub", f"{role}_encryption.key", f"{role}_encryption.pub")

    @property
    def names(self) -> tuple[str, ...]:
        """Every file `write_key_pairs` writes, the pinned HQ key included."""
        return *astuple(self), HQ_SIGNING_PUB


# What `edge hq keys init` and `edge device provision` write, and what the watchlist commands read back.
HQ_SIGNING_KEY = "hq_signing.key"
DEVICE_TOML = "device.toml"
DEVICE_KEYS = KeyPairFiles.of("device")
DEVICE_ENCRYPTION_PUB = DEVICE_KEYS.encryption_pub


def generate_signing() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def generate_encryption() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def key_id(public: PublicKey) -> str:
    """sha256 (hex) of the raw 32-byte public key: how bundles name a signer or a recipient key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def save_private(key: PrivateKey, path: Path) -> None:
    """Write PKCS#8 PEM, created 0600; refuses to replace an existing file."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_new(path, pem, 0o600)


def save_public(key: PublicKey, path: Path) -> None:
    """Write SubjectPublicKeyInfo PEM (0644); refuses to replace an existing file."""
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(path, pem, 0o644)


def refuse_existing(folder: Path, names: Sequence[str]) -> None:
    """Raise before anything is written if `folder` already holds one of these files: keys are never replaced."""
    existing = [n for n in names if (folder / n).exists()]
    if existing:
        raise EdgeError(f"{folder} already holds {', '.join(existing)}: refusing to overwrite keys; "
                        "choose an empty folder")


def write_key_pairs(folder: Path, files: KeyPairFiles, hq_public: Ed25519PublicKey,
                    reserved: Sequence[str] = ()) -> None:
    """New Ed25519 signing and X25519 encryption key pairs, and a pinned copy of the HQ key, into `folder`.

    Refuses, having written nothing, when any of them or of `reserved` (what the caller writes beside them)
    is there already.
    """
    refuse_existing(folder, [*reserved, *files.names])
    signing, encryption = generate_signing(), generate_encryption()
    save_private(signing, folder / files.signing_key)
    save_public(signing.public_key(), folder / files.signing_pub)
    save_private(encryption, folder / files.encryption_key)
    save_public(encryption.public_key(), folder / files.encryption_pub)
    save_public(hq_public, folder / HQ_SIGNING_PUB)


def load_signing_private(path: Path) -> Ed25519PrivateKey:
    return _load(path, private=True, kind=Ed25519PrivateKey, what="Ed25519 signing private key")


def load_signing_public(path: Path) -> Ed25519PublicKey:
    return _load(path, private=False, kind=Ed25519PublicKey, what="Ed25519 signing public key")


def load_encryption_private(path: Path) -> X25519PrivateKey:
    return _load(path, private=True, kind=X25519PrivateKey, what="X25519 encryption private key")


def load_encryption_public(path: Path) -> X25519PublicKey:
    return _load(path, private=False, kind=X25519PublicKey, what="X25519 encryption public key")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise EdgeError(f"{path} already exists: refusing to overwrite a key; move it away first") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, mode)  # the umask may have narrowed the mode given to open


def _load(path: Path, private: bool, kind: type[_K], what: str) -> _K:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read {what} {path}: {exc.strerror}: check the path") from exc
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        raise EdgeError(f"{path} is not a PEM {what}: {exc}") from exc
    if not isinstance(key, kind):
        raise EdgeError(f"{path} holds a {type(key).__name__.removeprefix('_')}, not an {what}: "
                        "check which file you passed")
    if private and path.stat().st_mode & 0o077:
        log.warning("%s is readable by group or others: chmod 600 it", path)
    return key
