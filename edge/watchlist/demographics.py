"""Error rates per demographic group, as `edge eval demographics` measured them and the calibration table carries them.

Counts are kept, not rates: how many of a group's searches erred at each threshold of a grid, and of how many. A
group of 175 people with no false alarm has not shown a rate of zero, only one below about 2 %; the 95 % Wilson
interval says how far the data goes, and the threshold policy (edge.watchlist.calibration) relies on its upper
end, never on a bare percentage.
"""

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from edge.config.base import StrictModel

Z95 = 1.959964
POLICY_ATTRIBUTES = ("race", "gender")  # groups the policy protects; intersections are reported, too few to bind
Kind = Literal["false_alarms", "misses"]


def wilson(errors: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of errors/trials (stays inside [0, 1] and is honest at 0 errors)."""
    if trials <= 0:
        return 0.0, 1.0
    p = errors / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class GroupRate:
    """One group's error rate at one threshold, with its count and 95 % interval."""

    data: str
    attribute: str
    group: str
    errors: int
    trials: int
    threshold: float

    @property
    def rate(self) -> float:
        return self.errors / self.trials

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.errors, self.trials)

    def text(self) -> str:
        low, high = self.interval
        return f"{self.group} {100 * self.rate:.2f} % ({self.errors}/{self.trials}; 95 % CI {100 * low:.2f}-" \
               f"{100 * high:.2f} %)"


class GroupCurve(StrictModel):
    """One group's errors at each threshold of the grid."""

    data: str = Field(description="where the searches come from, e.g. utkface, london, lfw")
    attribute: str = Field(description="race, gender, race_gender, or all")
    group: str
    trials: int = Field(ge=1)
    errors: list[int]


class Demographics(StrictModel):
    """Per-group false-alarm and miss curves of one embedder on labelled faces."""

    dataset: str
    command: str
    watchlist_size: int = Field(ge=1, description="people on the list the passers-by were searched against")
    reference_fpir: float = Field(gt=0.0, lt=1.0, description="rate at which the groups' thresholds are compared")
    thresholds: list[float] = Field(min_length=2)
    false_alarms: list[GroupCurve] = Field(min_length=1, description="passers-by (nobody on the list)")
    misses: list[GroupCurve] = Field(default_factory=list, description="mated searches")

    @model_validator(mode="after")
    def _consistent(self) -> "Demographics":
        if any(b <= a for a, b in zip(self.thresholds, self.thresholds[1:], strict=False)):
            raise ValueError("demographics.thresholds must increase")
        for kind in ("false_alarms", "misses"):
            seen = set()
            for c in getattr(self, kind):
                key = (c.data, c.attribute, c.group)
                if key in seen:
                    raise ValueError(f"demographics.{kind}: {key} appears twice")
                seen.add(key)
                if len(c.errors) != len(self.thresholds) or any(not 0 <= e <= c.trials for e in c.errors):
                    raise ValueError(f"demographics.{kind} {c.group}: one count per threshold, each 0..{c.trials}")
                sign = 1 if kind == "false_alarms" else -1  # false alarms fall as the threshold rises, misses rise
                if any(sign * (b - a) > 0 for a, b in zip(c.errors, c.errors[1:], strict=False)):
                    raise ValueError(f"demographics.{kind} {c.group}: counts must "
                                     f"{'fall' if kind == 'false_alarms' else 'rise'} as the threshold rises")
        if not any(c.attribute == "all" for c in self.false_alarms):
            raise ValueError("demographics.false_alarms needs the curve of all passers-by (attribute 'all')")
        return self

    def _index(self, threshold: float, kind: Kind) -> int:
        """The grid point that does not flatter: for false alarms the highest at or below the threshold, for
        misses the lowest at or above it (the rate there is at least the rate at the threshold itself)."""
        t = self.thresholds
        if kind == "false_alarms":
            below = [i for i, v in enumerate(t) if v <= threshold + 1e-9]
            return below[-1] if below else 0
        above = [i for i, v in enumerate(t) if v >= threshold - 1e-9]
        return above[0] if above else len(t) - 1

    def rates(self, kind: Kind, threshold: float) -> list[GroupRate]:
        i = self._index(threshold, kind)
        return [GroupRate(c.data, c.attribute, c.group, c.errors[i], c.trials, self.thresholds[i])
                for c in getattr(self, kind)]

    def policy_groups(self) -> list[GroupCurve]:
        return [c for c in self.false_alarms if c.attribute in POLICY_ATTRIBUTES]

    def ceiling_floor(self, ceiling: float) -> tuple[float, str] | None:
        """The lowest grid threshold at which no protected group's false-alarm rate can exceed `ceiling` (upper end
        of its 95 % interval), and the group that sets it; None when no threshold on the grid shows that."""
        groups = self.policy_groups()
        for i, t in enumerate(self.thresholds):
            over = [c for c in groups if wilson(c.errors[i], c.trials)[1] > ceiling]
            if not over:
                binding = [c for c in groups if i > 0 and wilson(c.errors[i - 1], c.trials)[1] > ceiling]
                return t, (binding[0].group if binding else "none")
        return None

    def threshold_for(self, curve: GroupCurve, rate: float) -> float | None:
        """The lowest grid threshold at which this curve's false-alarm rate is at most `rate` (point estimate)."""
        for t, e in zip(self.thresholds, curve.errors, strict=True):
            if e <= rate * curve.trials:
                return t
        return None

    def worst_shift(self) -> tuple[float, str]:
        """How much higher the threshold must be for the worst protected group to reach the reference false-alarm
        rate than for all passers-by together, and that group (0 and 'none' when no group needs more).

        Only a group the data shows to be worse counts: at the threshold where all passers-by reach the reference
        rate, the lower end of its 95 % interval lies above their rate. A small group's excess that may be chance
        moves no one's threshold; the ceiling (`ceiling_floor`) guards what the data cannot rule out.
        """
        everyone = next(c for c in self.false_alarms if c.attribute == "all")
        base = self.threshold_for(everyone, self.reference_fpir)
        if base is None:
            return 0.0, "none"
        i = self.thresholds.index(base)
        shift, worst = 0.0, "none"
        for c in self.policy_groups():
            if wilson(c.errors[i], c.trials)[0] <= everyone.errors[i] / everyone.trials:
                continue
            t = self.threshold_for(c, self.reference_fpir)
            t = self.thresholds[-1] if t is None else t
            if t - base > shift + 1e-9:
                shift, worst = t - base, c.group
        return round(shift, 4), worst
