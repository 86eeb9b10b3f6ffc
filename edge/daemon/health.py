"""Readings for the device status message: frame rate and temperature where the board exposes it."""

import time
from collections import deque
from pathlib import Path

THERMAL = Path("/sys/class/thermal")


def temperatures(root: Path = THERMAL) -> dict[str, float]:
    """Thermal zones in °C by type (e.g. 'CPU-therm', 'GPU-therm' on a Jetson); empty where unreadable."""
    out: dict[str, float] = {}
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            out[kind] = int((zone / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return out


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window: float = 10.0) -> None:
        self._times: deque[float] = deque()
        self._window = window

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        while self._times and self._times[0] < now - self._window:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._times and self._times[0] < now - self._window:
            self._times.popleft()
        return len(self._times) / self._window
