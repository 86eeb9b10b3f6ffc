"""Error-versus-reject characteristics (ISO/IEC 29794-1 "EDC") and the limit a curve supports.

A quality factor predicts error when rejecting the faces it rates worst lowers the error of the faces kept: FNIR
of the mated probes kept, at a fixed threshold, plotted against the fraction of mated probes rejected. A factor
that predicts nothing gives a flat curve; the ideal factor rejects the misses first, so its FNIR falls along
(FNIR - r) / (1 - r) to 0 at r = FNIR.

The limit is chosen by one rule for every factor: rejecting more is worth it while it lowers FNIR by more, in
relative terms, than it costs in faces rejected. Rejecting a little more (dr) changes the FNIR F of the faces kept
by (F - m) dr / (1 - r), m being the miss rate of the faces just rejected, so the relative fall of F outweighs
the relative loss of faces, dr / (1 - r), exactly while m > 2F; that is, while (1 - r) / F, faces kept per unit
of their FNIR, still rises. The limit is where (1 - r) / F is highest on the curve (read at every 1 % rejected,
up to `MAX_REJECT`; the least rejection among equals), so one noisy stretch neither stops the rule early nor
carries it on. A factor whose best point beats keeping every face by no more than `MARGIN` does not predict
error on these faces (a factor drawn at random, on 1,500 faces with FNIR 21 %, passes 1 % about once in 1,000).
"""

import math
from dataclasses import dataclass

import numpy as np

MARGIN = 0.01  # the least gain in (kept / FNIR kept) that counts as the factor predicting error
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
    """What the rule picked: the limit (None: reject nothing), what it rejects, the FNIR of the faces kept, and
    `gain`: its (kept / FNIR kept) over that of keeping every face."""

    limit: float | None
    rejected: float
    fnir_kept: float | None
    gain: float

    @property
    def predicts_error(self) -> bool:
        return self.limit is not None


def _worth(p: Point) -> float:
    """Faces kept per unit of their FNIR: rises with rejecting exactly while the faces rejected miss more than twice
    as often as those kept."""
    return math.inf if not p.fnir else (1 - p.rejected) / p.fnir


def choose(values: np.ndarray, errors: np.ndarray, higher_is_better: bool = True, max_reject: float = MAX_REJECT,
           margin: float = MARGIN) -> Choice:
    """The limit this factor's curve supports, by the rule in the module's docstring."""
    points = [p for p in edc(values, errors, higher_is_better) if p.rejected <= max_reject and p.fnir is not None]
    if not points:
        return Choice(None, 0.0, None, 1.0)
    base, best = points[0], max(points, key=_worth)  # the first of equals: the least rejection
    gain = 1.0 if math.isinf(_worth(base)) else _worth(best) / _worth(base)
    if best.rejected == 0 or gain <= 1 + margin:
        return Choice(None, 0.0, base.fnir, round(gain, 4))
    return Choice(best.limit, best.rejected, best.fnir, round(gain, 4))
