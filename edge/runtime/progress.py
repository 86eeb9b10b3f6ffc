"""Progress of long steps: a live bar on a terminal, and plain periodic lines when stderr goes to a log or a pipe.

tqdm on a pipe writes carriage-return redraws (one unreadable line) or, disabled, nothing at all: `edge eval verify`
sat silent for minutes under CI. `progress` picks the form from the stream, so callers never test isatty.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

EVERY_SECONDS = 10.0
STEPS = 10  # a line at each tenth of the total
MIN_SECONDS = 1.0  # but not more often: a quick step gets its last line only


class LineProgress:
    """tqdm's small interface (update, close, iteration, `with`) printing whole lines: one per 10 % done (at most
    one a second), and one at least every 10 s while work goes on, then a last line with the total and the time."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", stream: TextIO | None = None, every_seconds: float = EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit.strip()
        self.stream = stream or sys.stderr
        self.every_seconds, self.clock = every_seconds, clock
        self.n = 0
        self._start = self._last = clock()
        self._step = 0  # tenths of the total already reported
        self._closed = False
        self._postfix = ""

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        step = self.n * STEPS // self.total if self.total else 0
        if (step > self._step and now - self._last >= MIN_SECONDS) or now - self._last >= self.every_seconds:
            self._step = step
            self._last = now
            self._line(now)

    def set_postfix(self, refresh: bool = True, **values: object) -> None:
        """Extra figures shown on the next line (tqdm's signature)."""
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _line(self, now: float) -> None:
        done = f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f} %)" if self.total else \
            f"{self.n} {self.unit}"
        extra = f", {self._postfix}" if self._postfix else ""
        print(f"{self.desc}: {done}, {now - self._start:.0f} s{extra}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n and (self.total is None or self._step < STEPS):
            self._line(self.clock())  # the end was not reported yet


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, stream: TextIO | None = None) -> Any:
    """A tqdm bar when `stream` (stderr) is a terminal, else a LineProgress; a disabled tqdm when not `enabled`
    (a quiet run: the same interface, printing nothing)."""
    out = stream or sys.stderr
    if enabled and not out.isatty():
        return LineProgress(iterable, total=total, desc=desc, unit=unit, stream=out)
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=out, disable=not enabled, leave=False)
