"""Error-versus-reject characteristics (ISO/IEC 29794-1 "EDC") and the limit a curve supports.

A quality factor predicts error when rejecting the faces it rates worst lowers the error of the faces kept: FNIR
of the mated probes kept, at a fixed threshold, plotted against the fraction of mated probes rejected. A factor
that predicts nothing gives a flat curve; the ideal factor rejects the misses first, so its FNIR falls along
(FNIR - r) / (1 - r) to 0 at r = FNIR.

The limit is chosen by one rule for every factor. Rejecting a further slice of faces (`SLICE` of them, the worst
left) changes the FNIR of those kept by (F - m) / (1 - r) per unit rejected, where m is the slice's own miss rate
and F the FNIR of the faces kept: the relative fall of FNIR outweighs the relative loss of faces while m > 2F.
The limit is where that stops holding (a slice of faces that misses at most twice as often as the faces kept),
never rejecting more than `MAX_REJECT`. A factor whose first slice already fails the rule does not predict error
on these faces.
"""

import math
from dataclasses import dataclass

import numpy as np

SLICE = 0.05  # fraction of the faces taken off per step of the rule
GAIN = 2.0  # a slice is worth rejecting while it misses more than GAIN x as often as the faces kept
MAX_REJECT = 0.5  # no gate that throws away more than half the faces is worth having
STEPS = tuple(round(0.01 * i, 2) for i in range(91))  # rejected fractions at which a curve is reported


def _oriented(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return np.asarray(values, float) if higher_is_better else -np.asarray(values, float)


def kept_by(values: np.ndarray, limit: float, higher_is_better: bool) -> np.ndarray:
    """Which faces a limit keeps: values at or above it (or at or below it, where lower is better)."""
    values = np.asarray(values, float)
    return values >= limit if higher_is_better else values <= limit


@dataclass(frozen=True)
class Point:
    """One point of a curve: reject what is worse than `limit` (native units), losing `rejected` of the faces;
    the faces kept miss at `fnir`."""

    limit: float
    rejected: float
    fnir: float | None


def edc(values: np.ndarray, errors: np.ndarray, higher_is_better: bool = True,
        steps: tuple[float, ...] = STEPS) -> list[Point]:
    """FNIR of the faces kept as the worst `r` of them by this factor are rejected, for each r in `steps`.

    Faces tied at the cut are kept together (the fraction rejected is what the limit really rejects, which may be
    less than r), so a factor with few distinct values gives fewer distinct points."""
    q, e = _oriented(values, higher_is_better), np.asarray(errors, bool)
    if len(q) != len(e):
        raise ValueError("one error flag per quality value")
    if not len(q):
        return []
    order = np.argsort(q, kind="stable")
    qs = q[order]
    points = []
    for r in steps:
        cut = qs[min(math.floor(r * len(qs)), len(qs) - 1)]
        kept = q >= cut
        points.append(Point(float(cut if higher_is_better else -cut), float(1 - kept.mean()),
                            float(e[kept].mean()) if kept.any() else None))
    return points


def ideal(fnir: float, rejected: float) -> float:
    """The FNIR of the faces kept by a factor that rejects the misses first."""
    return max(0.0, (fnir - rejected) / (1 - rejected)) if rejected < 1 else 0.0


@dataclass(frozen=True)
class Choice:
    """What the rule picked: the limit (None: reject nothing), what it rejects and the FNIR of the faces kept;
    `slices`: the miss rate of each slice taken off and of the faces kept after it, as the rule saw them."""

    limit: float | None
    rejected: float
    fnir_kept: float | None
    slices: list[tuple[float, float]]

    @property
    def predicts_error(self) -> bool:
        return self.limit is not None


def choose(values: np.ndarray, errors: np.ndarray, higher_is_better: bool = True, slice_frac: float = SLICE,
           gain: float = GAIN, max_reject: float = MAX_REJECT) -> Choice:
    """The limit this factor's curve supports, by the rule in the module's docstring."""
    q, e = _oriented(values, higher_is_better), np.asarray(errors, bool)
    order = np.argsort(q, kind="stable")
    qs, es = q[order], e[order]
    n, cut, slices = len(qs), 0, []
    step = max(1, math.ceil(slice_frac * n))
    while True:
        end = cut + step
        while 0 < end < n and qs[end] == qs[end - 1]:  # a slice ends between two different values
            end += 1
        if end >= n or end / n > max_reject:
            break
        m, f = float(es[cut:end].mean()), float(es[end:].mean())
        slices.append((round(m, 4), round(f, 4)))
        if m <= gain * f:
            break
        cut = end
    if cut == 0:
        return Choice(None, 0.0, float(e.mean()) if n else None, slices)
    limit = float(qs[cut]) if higher_is_better else -float(qs[cut])
    return Choice(limit, cut / n, float(es[cut:].mean()), slices)
