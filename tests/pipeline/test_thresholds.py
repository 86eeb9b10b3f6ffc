"""Thresholds: each embedder's floor is enforced wherever users set one; the constant-FPIR mode follows the
list's size; no value tuned for one embedder is applied to another."""

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_config
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.config.match import MatchConfig
from edge.errors import ConfigError
from edge.models import ENGINES_DIR, Manifest
from edge.watchlist.calibration import Calibration, CalibrationPoint, ThresholdPolicy, calibration_path, load_policy
from edge.watchlist.demographics import RACES, Demographics, GroupCurve, wilson

MANIFEST = Manifest.load(ENGINES_DIR)


def shipped(name: str) -> Calibration:
    path: Path = calibration_path(ENGINES_DIR, name)
    if not path.is_file():
        pytest.fail(f"{path} missing: run `edge eval calibrate --embedder {name}` and commit it")
    return Calibration.load(path)


def policy(name: str, **match) -> ThresholdPolicy:
    return load_policy(MatchConfig(**match), ENGINES_DIR, name, MANIFEST.spec(name).sha256)


def test_replay_refuses_a_threshold_below_the_embedders_floor(tmp_path, capsys):
    floor = policy(DEFAULT_EMBEDDER).floor
    code = main(["replay", "--source", str(tmp_path), "--enroll", str(tmp_path), "--threshold", str(floor - 0.05)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--threshold {floor - 0.05}: give a cosine from the floor {floor} of {DEFAULT_EMBEDDER}" in err


def test_replay_threshold_is_used_in_the_default_mode():
    """`--threshold` alone means a fixed threshold (it used to be ignored under constant_fpir)."""
    cfg = MatchConfig(threshold=0.7)
    assert cfg.mode == "fixed"
    assert policy(DEFAULT_EMBEDDER, threshold=0.7).for_gallery(3).value == 0.7
    with pytest.raises(ValueError, match="used only in mode 'fixed'"):
        MatchConfig(mode="constant_fpir", threshold=0.7)


def test_device_config_refuses_a_threshold_below_the_floor(tmp_path):
    floor = policy(DEFAULT_EMBEDDER).floor
    path = tmp_path / "edge.toml"
    path.write_text(f'[device]\nid = "cam-1"\n[match]\nthreshold = {floor - 0.01:.2f}\n')
    cfg = load_config(path)
    with pytest.raises(ConfigError, match=r"match\.threshold .* is below the floor"):
        policy(DEFAULT_EMBEDDER, **cfg.match.model_dump(exclude_unset=True))


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_nan_and_infinite_settings_are_refused(tmp_path, bad):
    path = tmp_path / "edge.toml"
    for key in ("threshold", "floor", "target_fpir"):
        path.write_text(f'[device]\nid = "cam-1"\n[match]\nmode = "fixed"\n{key} = {bad}\n')
        with pytest.raises(ConfigError, match=rf"match\.{key}"):
            load_config(path)


def test_a_configured_floor_may_raise_the_measured_one_never_lower_it():
    measured = shipped(DEFAULT_EMBEDDER).floor
    with pytest.raises(ConfigError, match="below the floor measured"):
        policy(DEFAULT_EMBEDDER, floor=measured - 0.1, mode="fixed", threshold=measured)
    raised = policy(DEFAULT_EMBEDDER, floor=measured + 0.05)
    assert raised.for_gallery(2).value == pytest.approx(measured + 0.05)


GRID = [round(0.40 + 0.01 * i, 2) for i in range(31)]  # 0.40 .. 0.70


def falling(trials: int, zero_at: float) -> list[int]:
    """False alarms falling linearly from 20 % of `trials` at 0.40 to none at `zero_at`."""
    return [max(0, round(0.2 * trials * (zero_at - t) / (zero_at - 0.40))) for t in GRID]


def demographics(races: dict[str, tuple[int, list[int]]], thresholds: list[float] = GRID) -> Demographics:
    """Passers-by of the five race groups, each half female and half male, and all of them together."""
    def curve(attribute: str, group: str, trials: int, errors: list[int]) -> GroupCurve:
        return GroupCurve(data="synthetic", attribute=attribute, group=group, trials=trials, errors=errors)

    def total(parts: list[tuple[int, list[int]]]) -> tuple[int, list[int]]:
        return sum(t for t, _ in parts), [sum(e) for e in zip(*(e for _, e in parts), strict=True)]

    rows = [races.get(r, (1, [0] * len(thresholds))) for r in RACES]
    female = total([(t // 2, [e // 2 for e in es]) for t, es in rows])
    male = total([(t - t // 2, [e - e // 2 for e in es]) for t, es in rows])
    curves = [curve("all", "all", *total(rows)), *(curve("race", r, *row) for r, row in zip(RACES, rows, strict=True)),
              curve("gender", "female", *female), curve("gender", "male", *male)]
    return Demographics(embedder_sha256="0" * 64, dataset="synthetic", command="test", watchlist_size=100,
                        thresholds=thresholds, false_alarms=curves)


def groups(black_zero_at: float = 0.50) -> Demographics:
    """Black passers-by draw false alarms up to `black_zero_at`, every other group up to 0.50."""
    others = {r: (150, falling(150, 0.50)) for r in ("Asian", "Indian", "Others")}
    return demographics({"White": (1000, falling(1000, 0.50)), "Black": (200, falling(200, black_zero_at)), **others})


def table(demographics: Demographics | None = None) -> Calibration:
    points = []
    for size, base in ((100, 0.55), (1000, 0.60)):
        for fpir, offset in ((1e-2, 0.0), (1e-3, 0.05)):
            points.append(CalibrationPoint(gallery_size=size, fpir=fpir, threshold=base + offset))
    return Calibration.measured("m", "0" * 64, "test", "test", points, demographics or groups())


def test_floor_and_fixed_threshold_follow_from_the_points():
    t = table()
    assert t.floor == 0.55  # FPIR 1e-2 at 100 people
    assert t.fixed_threshold == 0.64  # FPIR 1e-3 at 500: 0.65 - 0.05 * log10(2) = 0.635, rounded up
    edited = t.model_dump() | {"floor": 0.2}
    with pytest.raises(ValueError, match="does not follow from the points"):
        Calibration(**edited)


def test_constant_fpir_threshold_grows_with_the_list():
    p = ThresholdPolicy(MatchConfig(mode="constant_fpir", target_fpir=1e-3, fpir_for="all"), table())
    small, large, huge = (p.for_gallery(n) for n in (100, 1000, 10000))
    assert small.value == pytest.approx(0.60) and large.value == pytest.approx(0.65)
    assert huge.value == pytest.approx(0.70)  # extrapolated at the measured slope
    assert small.fpir == pytest.approx(1e-3) and small.mode == "constant_fpir"


def test_fixed_threshold_reports_the_fpir_it_stands_for():
    p = ThresholdPolicy(MatchConfig(mode="fixed", threshold=0.60), table())
    assert p.for_gallery(100).fpir == pytest.approx(1e-3)
    assert p.for_gallery(1000).fpir == pytest.approx(1e-2)


def test_an_uncalibrated_embedder_is_not_used(tmp_path):
    """No table, no measured floor: configured numbers cannot stand in for it (faceres_1024 ships without one)."""
    faceres = MANIFEST.spec("faceres_1024")
    for match in ({}, {"threshold": 0.9, "floor": 0.8}):
        with pytest.raises(ConfigError, match="faceres_1024 has no calibration table"):
            load_policy(MatchConfig(**match), ENGINES_DIR, faceres.name, faceres.sha256)
    with pytest.raises(ConfigError, match="sface_128 has no calibration table"):  # an engines folder without it
        load_policy(MatchConfig(threshold=0.9), tmp_path, "sface_128", MANIFEST.spec("sface_128").sha256)


def test_the_floor_can_be_raised_above_the_fixed_threshold_in_the_default_mode():
    fixed = shipped(DEFAULT_EMBEDDER).fixed_threshold
    raised = policy(DEFAULT_EMBEDDER, floor=fixed + 0.05)  # constant_fpir: the fixed threshold is not used
    assert raised.for_gallery(100).value == pytest.approx(fixed + 0.05)
    fixed_mode = policy(DEFAULT_EMBEDDER, mode="fixed", floor=fixed + 0.05).for_gallery(100)
    assert fixed_mode.value == pytest.approx(fixed + 0.05), "the default fixed threshold never sits below the floor"
    assert fixed_mode.policy == "fixed (floor: match.floor)"


@pytest.mark.parametrize("edit", [
    {"points": [{"gallery_size": 100, "fpir": 0.01, "threshold": float("nan")}]},
    {"points": [{"gallery_size": 100, "fpir": 0.0, "threshold": 0.5}]},
    {"points": [{"gallery_size": -5, "fpir": 0.01, "threshold": 0.5}]},
])
def test_a_damaged_table_is_refused(edit):
    t = table().model_dump() | edit
    with pytest.raises(ValueError):
        Calibration(**t)
    holes = table().model_dump()
    holes["points"] = holes["points"][:-1]  # one (size, FPIR) missing
    with pytest.raises(ValueError, match="each FPIR once at each gallery size"):
        Calibration(**holes)


@pytest.mark.parametrize("name", ["sface_128", "mobilefacenet_192"])
def test_shipped_calibration_matches_the_shipped_embedder(name):
    table = shipped(name)
    assert table.embedder_sha256 == MANIFEST.spec(name).sha256
    p = policy(name)
    thresholds = [p.for_gallery(n).value for n in (100, 500, 1680)]
    assert thresholds == sorted(thresholds), "a longer list needs a higher threshold for the same FPIR"
    assert all(table.floor <= t < 1 for t in thresholds)
    tiny = p.for_gallery(2)
    assert tiny.value == p.floor >= table.floor, "a tiny list sits on the floor"
    assert tiny.fpir_bound, "its rate is a bound"
    assert tiny.policy.startswith("floor: ")


def test_thresholds_never_carry_over_between_embedders():
    """SFace's impostor scores sit lower than MobileFaceNet's: each has its own floor and fixed threshold."""
    sface, mfn = shipped("sface_128"), shipped("mobilefacenet_192")
    assert sface.floor < mfn.floor and sface.fixed_threshold < mfn.fixed_threshold
    assert policy("sface_128").for_gallery(500).value != policy("mobilefacenet_192").for_gallery(500).value


# --- the group policy (issue 14) ----------------------------------------------------------------------------------

def test_a_group_above_the_ceiling_raises_the_floor():
    """Black passers-by draw false alarms up to 0.60, White ones up to 0.50: the floor rises until the Black group's
    upper 95 % bound is under the ceiling, above the LFW floor (0.55) that averages the two."""
    cal = table(groups(black_zero_at=0.60))
    p = ThresholdPolicy(MatchConfig(group_ceiling=0.03), cal)
    black = next(c for c in cal.demographics.false_alarms if c.group == "Black")
    i = GRID.index(p.floor)
    assert p.floor > cal.floor
    assert wilson(black.errors[i], black.trials)[1] <= 0.03 < wilson(black.errors[i - 1], black.trials)[1]
    assert "Black set it" in p.floor_source
    assert p.for_gallery(2).policy == f"floor: {p.floor_source}"
    lax = ThresholdPolicy(MatchConfig(group_ceiling=0.05), cal)
    assert cal.floor <= lax.floor < p.floor, "a higher ceiling lets the floor stay lower"


def test_a_ceiling_the_data_cannot_show_is_refused():
    """200 Black passers-by with no false alarm bound the rate only below 1.9 %: a 1 % ceiling cannot be shown."""
    with pytest.raises(ConfigError, match=r"Black group's 200 passers-by cannot show a rate below 1\.9 %"):
        ThresholdPolicy(MatchConfig(group_ceiling=0.01), table())


def test_constant_fpir_targets_the_worst_group_by_default():
    cal = table(groups(black_zero_at=0.60))
    worst = ThresholdPolicy(MatchConfig(group_ceiling=0.05), cal)
    average = ThresholdPolicy(MatchConfig(group_ceiling=0.05, fpir_for="all"), cal)
    assert MatchConfig().fpir_for == "worst_group"
    assert worst.worst_group == "Black" and worst.shift > 0
    t_worst, t_avg = worst.for_gallery(1000), average.for_gallery(1000)
    assert t_worst.value == pytest.approx(t_avg.value + worst.shift)
    assert "worst group, Black" in t_worst.policy and "all passers-by, on average" in t_avg.policy
    assert t_worst.fpir == pytest.approx(t_avg.fpir), "the rate stated is the one the worst group sees"


def test_an_excess_the_data_does_not_show_moves_no_threshold():
    """1 of 20 Black passers-by (5 %) against 10 of 1,023 (1 %) may be chance: the interval of 1/20 reaches below
    1 %. 8 of 200 against 12 of 1,203 is not: the Black group then needs a higher threshold, and gets it."""
    grid = [0.40, 0.41, 0.42, 0.43, 0.44]
    chance = demographics({"White": (1000, [18, 10, 9, 0, 0]), "Black": (20, [2, 1, 1, 0, 0])}, grid)
    assert chance.worst_shift(1e-2) == (0.0, "none")
    shown = demographics({"White": (1000, [18, 10, 9, 0, 0]), "Black": (200, [20, 10, 10, 4, 0])}, grid)
    assert shown.worst_shift(1e-2) == (0.01, "Black")


def test_a_group_that_never_falls_to_the_reference_rate_stops_the_worst_group_target():
    """2 % of 2,000 Black passers-by alarm at every threshold measured: no threshold holds them to 1 %."""
    never = demographics({"White": (4000, falling(4000, 0.50)), "Black": (2000, [40] * len(GRID)),
                          **{r: (2000, [0] * len(GRID)) for r in RACES[2:]}})
    with pytest.raises(ConfigError, match=r"Black group never falls to 0\.01 false alarms up to 0\.7.*fpir_for"):
        ThresholdPolicy(MatchConfig(group_ceiling=0.05), table(never))
    assert ThresholdPolicy(MatchConfig(group_ceiling=0.05, fpir_for="all"), table(never)).shift == 0
    fixed = ThresholdPolicy(MatchConfig(group_ceiling=0.05, threshold=0.66), table(never))  # fixed mode needs no shift
    assert fixed.for_gallery(10).policy == "fixed (match.threshold)"


def _set(d: dict, index: int, **changes: object) -> None:
    d["false_alarms"][index] = {**d["false_alarms"][index], **changes}


@pytest.mark.parametrize("edit", [
    lambda d: _set(d, 1, errors=d["false_alarms"][1]["errors"][:-1]),  # one count short
    lambda d: d["false_alarms"][1]["errors"].__setitem__(-1, 999),  # more errors than searches, and rising
    lambda d: d.update(false_alarms=d["false_alarms"][1:]),  # no curve for all passers-by
    lambda d: d.update(thresholds=list(reversed(d["thresholds"]))),
    lambda d: d["thresholds"].__setitem__(5, float("nan")),  # a NaN would make "must increase" pass
    lambda d: d["thresholds"].__setitem__(-1, 7.0),  # not a cosine
    lambda d: d.update(false_alarms=[c for c in d["false_alarms"] if c["group"] != "Black"]),  # a group left out
    lambda d: _set(d, 2, attribute="Race"),  # so the policy would not see it
    lambda d: _set(d, 2, trials=d["false_alarms"][2]["trials"] * 10),  # races no longer add up to everyone
    lambda d: _set(d, 2, errors=[True] * len(d["thresholds"])),  # not counts
    lambda d: d["false_alarms"].append({**d["false_alarms"][0], "data": "other"}),  # a second "all"
    lambda d: _set(d, 2, group="B" * 300),  # would overflow every message that names it
])
def test_damaged_group_curves_are_refused(edit):
    d = groups().model_dump()
    edit(d)
    with pytest.raises(ValueError):
        Demographics(**d)


@pytest.mark.parametrize("name", ["sface_128", "mobilefacenet_192"])
def test_shipped_group_policy_holds_every_group_under_the_ceiling(name):
    """At the shipped floor no race or gender group's measured false alarms can exceed the default ceiling."""
    demo = shipped(name).demographics
    assert demo is not None, f"run `edge eval demographics --embedder {name} --write-calibration`"
    p = policy(name)
    for rate in demo.rates("false_alarms", p.floor):
        if rate.attribute in ("race", "gender"):
            assert rate.interval[1] <= MatchConfig().group_ceiling, rate.text()


def test_a_grid_that_starts_too_high_or_a_list_too_short_cannot_hide_a_group():
    late = demographics({"White": (1000, [0] * 4), "Black": (200, [1, 0, 0, 0])}, [0.50, 0.51, 0.52, 0.53])
    with pytest.raises(ValueError, match=r"grid starts at 0\.5, where all passers-by are already under"):
        late.worst_shift(1e-2)
    with pytest.raises(ValueError, match=r"steps of at most 0\.01"):
        demographics({"White": (1000, [0, 0])}, [0.40, 0.45])
    short = table().model_dump()
    short["demographics"]["watchlist_size"] = 5
    with pytest.raises(ValueError, match="measured against a list of 5 people"):
        Calibration(**short)
