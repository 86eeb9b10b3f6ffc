"""Officers' PINs at the page: each check against the stored hash (edge.config.pin) in constant time, and a
lockout that makes guessing another officer's PIN slow.

Why: the page runs under one access token, so without PINs whoever holds the handheld could decide as any
configured officer, and the two-officer rule would need only one person.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.config.pin import PIN_DIGITS, PinHash, check_pin

log = logging.getLogger(__name__)

MAX_TRIES = 5  # wrong PINs in a row for one officer before a lockout
LOCKOUT_S = 60.0  # the first lockout; each later one (no correct PIN in between) lasts twice as long
MAX_LOCKOUT_S = 3600.0


@dataclass(frozen=True)
class Verdict:
    """What one PIN check found. `checked` is False when a lockout refused it without looking at the PIN."""

    ok: bool
    checked: bool = True
    tries_left: int = 0  # wrong PINs still allowed before the next lockout
    locked_s: float = 0.0  # > 0: the officer is locked out for this many more seconds


class PinGuard:
    """Counts each officer's wrong PINs in a row: after MAX_TRIES, that officer is locked out for LOCKOUT_S, and
    every further wrong PIN (no correct one in between) locks again for twice as long, up to MAX_LOCKOUT_S. A
    correct PIN resets the count. Held in memory: a restart of `edge handheld` starts afresh."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._wrong: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def check(self, officer_id: str, stored: PinHash, pin: str) -> Verdict:
        # One check at a time: parallel requests cannot get more guesses than the limit allows.
        with self._lock:
            now = self._clock()
            until = self._until.get(officer_id, 0.0)
            if now < until:
                return Verdict(ok=False, checked=False, locked_s=until - now)
            if _accepted(pin) and stored.matches(pin):
                self._wrong.pop(officer_id, None)
                self._until.pop(officer_id, None)
                return Verdict(ok=True)
            wrong = self._wrong.get(officer_id, 0) + 1
            self._wrong[officer_id] = wrong
            if wrong < MAX_TRIES:
                return Verdict(ok=False, tries_left=MAX_TRIES - wrong)
            lockout = min(LOCKOUT_S * 2 ** min(wrong - MAX_TRIES, 8), MAX_LOCKOUT_S)
            self._until[officer_id] = now + lockout
            return Verdict(ok=False, locked_s=lockout)


def _accepted(pin: str) -> bool:
    """Whether `pin` has the form a PIN must have now: a hash made before PINs were 6 digits still matches its
    short PIN, which falls to that hash offline in minutes, so a short one never counts (and counts as wrong)."""
    try:
        check_pin(pin)
    except ValueError:
        log.warning("a PIN shorter than %d digits was entered: it never matches (one set under an older rule "
                    "must be replaced: `edge handheld hash-pin`)", PIN_DIGITS[0])
        return False
    return True
