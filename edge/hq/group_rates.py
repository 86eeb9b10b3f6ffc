"""The deployment report's demographic section: for each embedder and threshold a device used, the false-alarm and
miss rates measured per race and gender group, with counts, 95 % intervals, the data behind them, and what those
measurements do not cover. Read from the calibration tables HQ ships with (engines/calibration-<embedder>.toml)."""

from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import Field

from edge.config.base import StrictModel
from edge.errors import ConfigError
from edge.watchlist.calibration import Calibration
from edge.watchlist.demographics import GroupRate

SHOWN = ("all", "race", "gender")
NOT_COVERED = [
    "measured on still photos (UTKFace web crops, London Set studio portraits, LFW press photos), not on this "
    "camera's video: distance, angle, light and motion change the rates",
    "false alarms were measured against a list of 102 people (69 of them White); false alarms grow roughly in "
    "proportion to the list's size and depend on who is on it",
    "five coarse race groups and two genders, as the sources label them (UTKFace's race labels were estimated by an "
    "algorithm and checked by a person; LFW's are noisy); ages 18-59 only: no children or older people",
    "small groups give wide intervals: a count of 0 means a rate below the interval's upper end, not a rate of 0",
]


class GroupRateRow(StrictModel):
    data: str
    attribute: str
    group: str
    errors: int
    trials: int
    rate: float
    ci95: tuple[float, float]
    measured_at: float

    @classmethod
    def of(cls, r: GroupRate) -> "GroupRateRow":
        low, high = r.interval
        return cls(data=r.data, attribute=r.attribute, group=r.group, errors=r.errors, trials=r.trials,
                   rate=round(r.rate, 5), ci95=(round(low, 5), round(high, 5)), measured_at=r.threshold)


class GroupRatesInForce(StrictModel):
    """The per-group rates at one threshold a device used; `measured` False when HQ has no table for the model."""

    embedder: str | None
    embedder_sha256: str
    threshold: float
    policy: str
    measured: bool
    dataset: str = ""
    false_alarms: list[GroupRateRow] = Field(default_factory=list)
    misses: list[GroupRateRow] = Field(default_factory=list)
    not_covered: list[str] = Field(default_factory=lambda: list(NOT_COVERED))


def load_calibrations(folder: Path) -> dict[str, Calibration]:
    """The calibration tables in an engines folder, by the sha256 of the model each was measured for."""
    out = {}
    for path in sorted(folder.glob("calibration-*.toml")):
        try:
            cal = Calibration.load(path)
        except ConfigError:
            continue  # a damaged table: its model's rates are reported as not measured
        out[cal.embedder_sha256] = cal
    return out


def in_force(used: Iterable[tuple[str, float, str]],
             calibrations: Mapping[str, Calibration]) -> list[GroupRatesInForce]:
    """One entry per (embedder sha256, threshold) a device used, with the policy it gave for it."""
    seen: dict[tuple[str, float], str] = {}
    for sha, threshold, policy in used:
        seen.setdefault((sha, round(threshold, 4)), policy)
    out = []
    for (sha, threshold), policy in sorted(seen.items()):
        cal = calibrations.get(sha)
        demo = cal.demographics if cal is not None else None
        if demo is None:
            out.append(GroupRatesInForce(embedder=cal.embedder if cal else None, embedder_sha256=sha,
                                         threshold=threshold, policy=policy, measured=False))
            continue
        out.append(GroupRatesInForce(
            embedder=cal.embedder if cal else None, embedder_sha256=sha, threshold=threshold, policy=policy,
            measured=True, dataset=demo.dataset,
            false_alarms=[GroupRateRow.of(r) for r in demo.rates("false_alarms", threshold) if r.attribute in SHOWN],
            misses=[GroupRateRow.of(r) for r in demo.rates("misses", threshold) if r.attribute in SHOWN]))
    return out


def render(entries: list[GroupRatesInForce]) -> list[str]:
    """Markdown: per threshold in force, the rates by group with counts and intervals."""
    if not entries:
        return []
    lines = ["", "## Error rates by demographic group at the thresholds used", ""]
    for e in entries:
        name = e.embedder or f"embedder {e.embedder_sha256[:12]}"
        lines.append(f"### {name}, threshold {e.threshold:.4f} ({e.policy or 'policy not recorded'})")
        if not e.measured:
            lines += ["", "**Not measured**: HQ has no per-group table for this model; its rates per group are "
                          "unknown. Run `edge eval demographics --write-calibration` for it.", ""]
            continue
        lines += ["", f"Data: {e.dataset}.", "",
                  "| Searches | Group | Errors | Of | Rate | 95 % interval |", "|---|---|---|---|---|---|"]
        for kind, rows in (("false alarms", e.false_alarms), ("misses", e.misses)):
            for r in rows:
                lines.append(f"| {kind} ({r.data}, at {r.measured_at:.2f}) | {r.group} | {r.errors} | {r.trials} | "
                             f"{100 * r.rate:.2f} % | {100 * r.ci95[0]:.2f}-{100 * r.ci95[1]:.2f} % |")
        lines += ["", "Not covered by these figures:"] + [f"- {n}" for n in e.not_covered] + [""]
    return lines
