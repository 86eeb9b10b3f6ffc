"""An officer's PIN as the handheld config stores it: a salted scrypt hash in PHC string form, never the PIN.

It lives with the configuration because reading handheld.toml must refuse a malformed hash (or a PIN written
in clear) by naming the key; the handheld checks PINs against it (edge.handheld.pins).
"""

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

# Six digits at least: the scrypt hash costs about 50 ms a guess, so a 4-digit PIN falls offline in minutes to
# whoever copies handheld.toml; a million 6-digit PINs take about 14 core-hours, and the file is 0600.
PIN_DIGITS = (6, 12)
_LOG2_N, _R, _P = 14, 8, 1  # 16 MiB and about 50 ms per check on a desktop core (the lockout stops guessing)
_MIN_LOG2_N = 14
_MAX_MEMORY = 64 * 2**20  # a hash whose parameters need more is refused: checking it would starve the handheld
_SALT_BYTES, _KEY_BYTES = 16, 32
_FORMAT = re.compile(r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d)\$([A-Za-z0-9+/]{22,88})\$([A-Za-z0-9+/]{43})")


def check_pin(pin: str) -> str:
    """`pin` if it is a PIN this project accepts (ASCII digits only, so a phone's number pad can enter it)."""
    low, high = PIN_DIGITS
    if not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
        raise ValueError(f"a PIN is {low} to {high} digits (0-9), nothing else")
    return pin


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


@dataclass(frozen=True)
class PinHash:
    """A PIN's salted scrypt hash, written as `$scrypt$ln=14,r=8,p=1$<salt>$<hash>` (PHC string format,
    unpadded base64), so its cost can be raised later without breaking hashes already deployed."""

    log2_n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def of(cls, pin: str) -> "PinHash":
        """Hash `pin` (checked with `check_pin`) with a fresh random salt."""
        salt = os.urandom(_SALT_BYTES)
        return cls(_LOG2_N, _R, _P, salt, _scrypt(salt, _LOG2_N, _R, _P).derive(check_pin(pin).encode()))

    @classmethod
    def parse(cls, text: str) -> "PinHash":
        """Read a stored hash; ValueError says what is wrong (never echoing the text: it may be a PIN)."""
        match = _FORMAT.fullmatch(text)
        if match is None:
            raise ValueError("not a PIN hash: expected $scrypt$ln=…,r=…,p=…$SALT$HASH as `edge handheld hash-pin` "
                             "prints it; never write the PIN itself into the config")
        log2_n, r, p = (int(match.group(i)) for i in (1, 2, 3))
        if log2_n < _MIN_LOG2_N or r < 1 or not 1 <= p <= 4 or 128 * r * 2**log2_n > _MAX_MEMORY:
            raise ValueError(f"PIN hash parameters ln={log2_n}, r={r}, p={p} are out of range (ln >= {_MIN_LOG2_N}, "
                             f"r >= 1, p 1-4, at most {_MAX_MEMORY >> 20} MiB): make a new one with "
                             "`edge handheld hash-pin`")
        try:
            salt, key = _b64decode(match.group(4)), _b64decode(match.group(5))
        except (binascii.Error, ValueError):
            raise ValueError("PIN hash has a salt or hash that is not base64: make a new one with "
                             "`edge handheld hash-pin`") from None
        if len(salt) < _SALT_BYTES or len(key) != _KEY_BYTES:
            raise ValueError(f"PIN hash needs a salt of at least {_SALT_BYTES} bytes and a {_KEY_BYTES}-byte hash: "
                             "make a new one with `edge handheld hash-pin`")
        return cls(log2_n, r, p, salt, key)

    def text(self) -> str:
        return f"$scrypt$ln={self.log2_n},r={self.r},p={self.p}${_b64encode(self.salt)}${_b64encode(self.key)}"

    def matches(self, pin: str) -> bool:
        """Whether `pin` is the PIN (cryptography's verify compares in constant time)."""
        try:
            _scrypt(self.salt, self.log2_n, self.r, self.p).verify(pin.encode(), self.key)
        except InvalidKey:
            return False
        return True


def _scrypt(salt: bytes, log2_n: int, r: int, p: int) -> Scrypt:
    return Scrypt(salt=salt, length=_KEY_BYTES, n=2**log2_n, r=r, p=p)
