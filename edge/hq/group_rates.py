"""The deployment report's demographic section: for each embedder and threshold a device used, the false-alarm and
miss rates measured per race and gender group, with counts, 95 % intervals, the data behind them, and what those
measurements do not cover. Read from the calibration tables HQ ships with (engines/calibration-<embedder>.toml)."""

from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import Field

from edge.config.base import StrictModel
from edge.errors import ConfigError
from edge.hq.text import markdown
from edge.watchlist.calibration import Calibration
from edge.watchlist.demographics import GENDERS, RACES, Demographics, GroupRate

SHOWN = ("all", "race", "gender")


def not_covered(demo: Demographics) -> list[str]:
    """What the measurement behind these rates cannot speak for."""
    return [
        "still photos, not this camera's video: distance, angle, light and motion change the rates; the rates are "
        "per search, the device alerts per track",
        f"false alarms were measured against one list of {demo.watchlist_size} people; they grow roughly in "
        "proportion to a list's size and depend on who is on it",
        f"only the groups measured ({', '.join(RACES)}; {', '.join(GENDERS)}), as the data's labels give them "
        "(estimated or noisy for some sources), and only the ages the data holds: see docs/evaluation.md",
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
    policy: str | None
    measured: bool
    dataset: str = ""
    false_alarms: list[GroupRateRow] = Field(default_factory=list)
    misses: list[GroupRateRow] = Field(default_factory=list)
    outside_grid: bool = Field(False, description="the threshold lies outside the measured range: the rates shown "
                                                  "are at its nearest end and may understate")
    not_covered: list[str] = Field(default_factory=list)


def load_calibrations(folder: Path) -> tuple[dict[str, Calibration], list[str]]:
    """The calibration tables in an engines folder, by the sha256 of the model each was measured for, and why any
    table could not be read (its model's rates are then reported as not measured)."""
    out, problems = {}, []
    for path in sorted(folder.glob("calibration-*.toml")):
        try:
            cal = Calibration.load(path)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if path.name != f"calibration-{cal.embedder}.toml":  # a stray copy: the device reads only its own name
            problems.append(f"{path} is a table for {cal.embedder} under another name: left out")
            continue
        out[cal.embedder_sha256] = cal
    return out, problems


def in_force(used: Iterable[tuple[str, float, str | None]],
             calibrations: Mapping[str, Calibration]) -> list[GroupRatesInForce]:
    """One entry per (embedder sha256, threshold) a device used, with the policy it gave for it."""
    seen: dict[tuple[str, float], str | None] = {}
    for sha, threshold, policy in used:
        key = (sha, round(threshold, 4))
        if seen.get(key) is None:  # a record that names the rule wins over one from before rules were recorded
            seen[key] = policy
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
            measured=True, dataset=demo.dataset, not_covered=not_covered(demo),
            outside_grid=not demo.thresholds[0] <= threshold <= demo.thresholds[-1],
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
        policy = markdown(e.policy) if e.policy else "policy not recorded"  # the device's text
        lines.append(f"### {name}, threshold {e.threshold:.4f} ({policy})")
        if not e.measured:
            lines += ["", "**Not measured**: HQ has no per-group table for this model; its rates per group are "
                          "unknown. Run `edge eval demographics --write-calibration` for it.", ""]
            continue
        lines += ["", f"Data: {e.dataset}."]
        if e.outside_grid:
            lines.append("**This threshold lies outside the measured range**: the rates below are at its nearest end "
                         "and may understate the rate at the threshold itself.")
        lines += ["",
                  "| Searches | Group | Errors | Of | Rate | 95 % interval |", "|---|---|---|---|---|---|"]
        for kind, rows in (("false alarms", e.false_alarms), ("misses", e.misses)):
            for r in rows:
                lines.append(f"| {kind} ({r.data}, at {r.measured_at:.2f}) | {r.group} | {r.errors} | {r.trials} | "
                             f"{100 * r.rate:.2f} % | {100 * r.ci95[0]:.2f}-{100 * r.ci95[1]:.2f} % |")
        lines += ["", "Not covered by these figures:"] + [f"- {n}" for n in e.not_covered] + [""]
    return lines
