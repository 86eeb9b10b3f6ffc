"""Error rates per demographic group, as `edge eval demographics` measured them and the calibration table carries them.

Counts are kept, not rates: how many of a group's searches erred at each threshold of a grid, and of how many. A
group of 175 people with no false alarm has not shown a rate of zero, only one below about 2 %; the 95 % Wilson
interval says how far the data goes, and the threshold policy (edge.watchlist.calibration) relies on its upper
end, never on a bare percentage.
"""

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge.config.base import StrictModel

Z95 = 1.959964
RACES = ("White", "Black", "Asian", "Indian", "Others")  # UTKFace's groups; other sources' labels map onto them
GENDERS = ("female", "male")
PROTECTED = {"race": RACES, "gender": GENDERS}  # intersections are reported, too few people to bind the policy
Kind = Literal["false_alarms", "misses"]
MAX_STEP = 0.01 + 1e-9  # a coarser grid would round a group's threshold shift away


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


Count = Annotated[int, Field(strict=True, ge=0)]
GridPoint = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=40)]


class GroupCurve(StrictModel):
    """One group's errors at each threshold of the grid."""

    data: Name = Field(description="where the searches come from, e.g. utkface, london, lfw")
    attribute: Literal["all", "race", "gender", "race_gender"]
    group: Name
    trials: Annotated[int, Field(strict=True, ge=1)]
    errors: list[Count]


class Demographics(StrictModel):
    """Per-group false-alarm and miss curves of one embedder on labelled faces.

    The false-alarm curves must cover every group the policy protects (RACES and GENDERS), each attribute's groups
    adding up to all passers-by, so a table that leaves a group out, or counts it twice, cannot weaken the floor.
    """

    embedder_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="the model file these were measured with")
    dataset: str
    command: str
    watchlist_size: int = Field(ge=1, description="people on the list the passers-by were searched against")
    thresholds: list[GridPoint] = Field(min_length=2)
    false_alarms: list[GroupCurve] = Field(min_length=1, description="passers-by (nobody on the list)")
    misses: list[GroupCurve] = Field(default_factory=list, description="mated searches")

    @model_validator(mode="after")
    def _consistent(self) -> "Demographics":
        steps = [b - a for a, b in zip(self.thresholds, self.thresholds[1:], strict=False)]
        if any(not 0 < step <= MAX_STEP for step in steps):
            raise ValueError(f"demographics.thresholds must increase in steps of at most {MAX_STEP}")
        for kind in ("false_alarms", "misses"):
            seen = set()
            for c in getattr(self, kind):
                key = (c.data, c.attribute, c.group)
                if key in seen:
                    raise ValueError(f"demographics.{kind}: {key} appears twice")
                seen.add(key)
                if len(c.errors) != len(self.thresholds) or any(e > c.trials for e in c.errors):
                    raise ValueError(f"demographics.{kind} {c.group}: one count per threshold, each 0..{c.trials}")
                sign = 1 if kind == "false_alarms" else -1  # false alarms fall as the threshold rises, misses rise
                if any(sign * (b - a) > 0 for a, b in zip(c.errors, c.errors[1:], strict=False)):
                    raise ValueError(f"demographics.{kind} {c.group}: counts must "
                                     f"{'fall' if kind == 'false_alarms' else 'rise'} as the threshold rises")
        everyone = [c for c in self.false_alarms if c.attribute == "all"]
        if len(everyone) != 1:
            raise ValueError("demographics.false_alarms needs exactly one curve of all passers-by (attribute 'all')")
        for attribute, names in PROTECTED.items():
            groups = [c for c in self.false_alarms if c.attribute == attribute]
            missing = sorted(set(names) - {c.group for c in groups})
            if missing or len(groups) != len(names):
                raise ValueError(f"demographics.false_alarms must give each {attribute} group once "
                                 f"({', '.join(names)}); missing or unknown: {missing or [c.group for c in groups]}")
            counts = [sum(c.errors[i] for c in groups) for i in range(len(self.thresholds))]
            if sum(c.trials for c in groups) != everyone[0].trials or counts != everyone[0].errors:
                raise ValueError(f"demographics.false_alarms: the {attribute} groups must add up to all passers-by")
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
        return [c for c in self.false_alarms if c.attribute in PROTECTED]

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

    def worst_shift(self, reference: float) -> tuple[float, str]:
        """How much higher the threshold must be for the worst protected group to reach the `reference` false-alarm
        rate than for all passers-by together, and that group (0 and 'none' when no group needs more).

        Only a group the data shows to be worse counts: at the threshold where all passers-by reach the reference
        rate, the lower end of its 95 % interval lies above their rate. A small group's excess that may be chance
        moves no one's threshold; the ceiling (`ceiling_floor`) guards what the data cannot rule out. ValueError
        when the grid does not reach that rate, for everyone or for a worse group: no shift can be measured.
        """
        everyone = next(c for c in self.false_alarms if c.attribute == "all")
        base = self.threshold_for(everyone, reference)
        if base is None:
            raise ValueError(f"all passers-by never fall to {reference:g} false alarms up to {self.thresholds[-1]}")
        if base == self.thresholds[0]:
            raise ValueError(f"the grid starts at {base}, where all passers-by are already under {reference:g} false "
                             "alarms: where each group gets there cannot be seen")
        i = self.thresholds.index(base)
        shift, worst = 0.0, "none"
        for c in self.policy_groups():
            if wilson(c.errors[i], c.trials)[0] <= everyone.errors[i] / everyone.trials:
                continue
            t = self.threshold_for(c, reference)
            if t is None:
                raise ValueError(f"the {c.group} group never falls to {reference:g} false alarms up to "
                                 f"{self.thresholds[-1]}")
            if t - base > shift + 1e-9:
                shift, worst = t - base, c.group
        return round(shift, 4), worst
