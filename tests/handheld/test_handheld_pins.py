"""The PIN lockout over time (a clock the test moves) and the stored hash format's limits."""

from collections.abc import Callable

import pytest

from edge.config.pin import PinHash
from edge.handheld.pins import LOCKOUT_S, MAX_TRIES, PinGuard

STORED = PinHash.of("24681357")


def test_wrong_pins_lock_one_officer_out_for_longer_each_time_until_a_right_one() -> None:
    now = [1000.0]
    guard = PinGuard(clock=lambda: now[0])
    stored = STORED
    tries = [guard.check("4712", stored, "0000") for _ in range(MAX_TRIES)]
    assert [t.tries_left for t in tries[:-1]] == [4, 3, 2, 1] and not any(t.ok for t in tries)
    assert (tries[-1].checked, tries[-1].locked_s) == (True, LOCKOUT_S)

    now[0] += LOCKOUT_S - 1  # still locked: even the right PIN is not looked at
    locked = guard.check("4712", stored, "24681357")
    assert (locked.ok, locked.checked, locked.locked_s) == (False, False, 1.0)
    assert guard.check("4711", stored, "24681357").ok  # another officer is not affected

    now[0] += 1  # lockout over; a further wrong PIN locks again at once, twice as long
    again = guard.check("4712", stored, "1111")
    assert (again.checked, again.locked_s) == (True, 2 * LOCKOUT_S)
    now[0] += 2 * LOCKOUT_S
    assert guard.check("4712", stored, "24681357").ok  # a right PIN resets the count
    assert guard.check("4712", stored, "0000").tries_left == MAX_TRIES - 1


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: "24681357", "not a PIN hash"),
    (lambda t: t.replace("ln=14", "ln=10"), "out of range"),  # too cheap to guess offline
    (lambda t: t.replace("ln=14", "ln=19"), "out of range"),  # 512 MiB per check: would starve the handheld
    (lambda t: t[:-4], "not a PIN hash"),
])
def test_stored_hashes_outside_the_format_or_limits_are_refused(change: Callable[[str], str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PinHash.parse(change(STORED.text()))
