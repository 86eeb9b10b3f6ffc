"""The `edge eval demographics` report: per-group rates at the thresholds the device would use, before and after
the group policy, with counts and 95 % intervals, and the worst-to-best ratio per rate."""

import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from edge.config.match import MatchConfig
from edge.errors import ConfigError
from edge.evaluation.demographics import RACE_MAP_NOTE, Searched, rates_at, worst_to_best
from edge.evaluation.identify import FAILED_POLICY
from edge.watchlist.calibration import FLOOR_AT, Calibration, ThresholdPolicy
from edge.watchlist.demographics import Demographics, GroupRate

PROTOCOL = {
    "false_alarms": "UTKFace adults (no identities: passers-by only) searched against the London Set list; a "
                    "passer-by is a false alarm when any candidate scores at or above the threshold",
    "misses": "london: each London person's smiling photo against the list enrolled from their neutral photo; lfw: "
              "LFW photos of people with a race label against LFW's 1,680-person gallery (first photo of each person "
              "with 2+); a mated search is a miss unless its own person is the best candidate at or above the "
              "threshold",
    "interval": "95 % Wilson score interval",
    "labels": RACE_MAP_NOTE,
    "failed_images": FAILED_POLICY,
}


@dataclass(frozen=True)
class Named:
    name: str
    value: float
    policy: str


def named_thresholds(cal: Calibration, demo: Demographics, sizes: list[int],
                     extra: tuple[float, ...]) -> tuple[list[Named], str | None]:
    """The thresholds to report: LFW's alone (before), the policy's with the group curves (after), and any asked
    for; and why the device would refuse the table with these curves, if it would."""
    target = MatchConfig().target_fpir
    out = [Named("floor (LFW)", cal.floor, "before: LFW floor"),
           Named("fixed default (LFW)", cal.fixed_threshold, "before: calibrated fixed threshold")]
    out += [Named(f"constant FPIR {target:g} at {n} (LFW average)", round(max(cal.floor, cal.threshold_at(n, target)),
                                                                          4), "before: all passers-by")
            for n in sizes]
    refused = None
    try:
        with_groups = Calibration.model_validate({**cal.model_dump(), "demographics": demo.model_dump()})
        policy = ThresholdPolicy(MatchConfig(), with_groups, cal.embedder)
        fixed = ThresholdPolicy(MatchConfig(mode="fixed"), with_groups, cal.embedder)
    except ValidationError as exc:
        refused = "; ".join(e["msg"] for e in exc.errors())
    except ConfigError as exc:
        refused = str(exc)
    else:
        out += [Named("floor (with groups)", policy.floor, f"after: {policy.floor_source}"),
                Named("fixed default (with groups)", fixed.threshold, f"after: fixed ({fixed.fixed_source})")]
        for n in sizes:
            t = policy.for_gallery(n)
            out.append(Named(f"constant FPIR {target:g} at {n} (shipped policy)", t.value, f"after: {t.policy}"))
    out += [Named(f"asked {t:g}", t, "--at-thresholds") for t in extra]
    return out, refused


def _rate(r: GroupRate) -> dict[str, Any]:
    low, high = r.interval
    return {"data": r.data, "attribute": r.attribute, "group": r.group, "errors": r.errors, "trials": r.trials,
            "rate": round(r.rate, 5), "ci95": [round(low, 5), round(high, 5)]}


def at_threshold(named: Named, passers: Searched, mated: list[Searched]) -> dict[str, Any]:
    fa = rates_at(passers, named.value)
    misses = {m.data: rates_at(m, named.value) for m in mated}
    return {
        "name": named.name, "threshold": named.value, "policy": named.policy,
        "false_alarms": [_rate(r) for r in fa],
        "misses": [_rate(r) for rs in misses.values() for r in rs],
        "worst_to_best": {
            "false_alarms": {a: worst_to_best(fa, a) for a in ("race", "gender")},
            "misses": {data: {a: ratio for a in ("race", "gender") if (ratio := worst_to_best(rs, a))}
                       for data, rs in misses.items()},
        },
    }


def demographics_report(cal: Calibration, demo: Demographics, passers: Searched, mated: list[Searched],
                        extra: tuple[float, ...], started: float) -> tuple[dict[str, Any], list[Named]]:
    sizes = sorted({p.gallery_size for p in cal.points})
    named, refused = named_thresholds(cal, demo, sizes, extra)
    try:
        shift, worst = demo.worst_shift(FLOOR_AT[1])
    except ValueError as exc:
        shift, worst = None, str(exc)
    ceiling = demo.ceiling_floor(MatchConfig().group_ceiling)
    report = {
        "embedder": cal.embedder,
        "embedder_sha256": cal.embedder_sha256,
        "dataset": demo.dataset,
        "protocol": PROTOCOL,
        "watchlist_size": demo.watchlist_size,
        "passers_by": {"searched": len(passers.people) - passers.no_face, "no_face": passers.no_face},
        "mated": {m.data: {"searched": len(m.people), "no_face": m.no_face} for m in mated},
        "policy": {
            "group_ceiling": MatchConfig().group_ceiling,
            "floor_for_ceiling": None if ceiling is None else ceiling[0],
            "set_by": None if ceiling is None else ceiling[1],
            "reference_fpir": FLOOR_AT[1],
            "worst_group": worst, "worst_group_shift": shift,
            "refused": refused,
        },
        "at_thresholds": [at_threshold(n, passers, mated) for n in named],
        "curves": demo.model_dump(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return report, named


def summary(report: dict[str, Any]) -> list[str]:
    """A few lines per threshold: false alarms and misses by race, and the worst-to-best ratio."""
    lines = []
    for row in report["at_thresholds"]:
        fa = [r for r in row["false_alarms"] if r["attribute"] in ("all", "race")]
        lines.append(f"{row['name']}: {row['threshold']:.4f} ({row['policy']})")
        lines.append("  false alarms: " + ", ".join(f"{r['group']} {100 * r['rate']:.2f} % ({r['errors']}/"
                                                     f"{r['trials']})" for r in fa))
        for data in report["mated"]:
            ms = [r for r in row["misses"] if r["data"] == data and r["attribute"] in ("all", "race")]
            lines.append(f"  misses {data}: " + ", ".join(f"{r['group']} {100 * r['rate']:.1f} % ({r['errors']}/"
                                                          f"{r['trials']})" for r in ms))
        ratio = row["worst_to_best"]["false_alarms"].get("race", {})
        if ratio.get("worst"):
            lines.append(f"  false alarms worst/best by race: {ratio['worst']} / {ratio['best']} = "
                         + (f"{ratio['ratio']}x" if ratio["ratio"] is not None else "n/a (best group had none)"))
    return lines
