"""`edge eval verify | identify | calibrate | resolution`: the accuracy figures we publish, measured on the device's
path."""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from edge.cliargs import add_model_args, add_renamed, add_report_arg, data_root, stack_from_args
from edge.errors import ConfigError, EdgeError
from edge.evaluation import quality_cli
from edge.evaluation.calibrate import FPIRS as CAL_FPIRS
from edge.evaluation.calibrate import (
    SIZES,
    calibration_toml,
    kept_demographics,
    measure,
    with_demographics,
    write_calibration,
)
from edge.evaluation.demographics import measured, search_all
from edge.evaluation.demographics_report import demographics_report, summary
from edge.evaluation.embedcache import EmbedCache
from edge.evaluation.identify import FLIP_NOTES, Protocol, build_protocol, det_curve, identify_report
from edge.evaluation.lfw import parse_pairs
from edge.evaluation.resolution import LEVELS, PER_CLASS, Condition, lfw_protocol, resolution_report
from edge.evaluation.stream_cli import add_parser as add_stream_parser
from edge.evaluation.verify import roc_curve, verify_report
from edge.watchlist.calibration import calibration_path, load_calibration

IDENTIFY_FLIPS = ("none", "enroll", "both")


def register(commands) -> None:
    group = commands.group("eval", "measure accuracy on labelled photos with the device's own detect-align-embed path")

    p = group.add_parser("verify", help="LFW 1:1 verification, official 10-fold protocol",
                         description="LFW 1:1 verification with the official pairs and 10-fold protocol")
    p.add_argument("--lfw", type=Path, required=True, help="LFW folder holding Name/Name_NNNN.jpg")
    p.add_argument("--pairs", type=Path, required=True, help="LFW pairs.txt")
    p.add_argument("--per-class", type=int, help="only the first N matched and N mismatched pairs of each fold")
    p.add_argument("--flip", default="none", help="none, both (flip-test), or a comma list to compare")
    _common(p)
    p.set_defaults(func=run_verify)

    p = group.add_parser("identify", help="1:N search: one photo per person enrolled, mated and non-mated probes",
                         description="1:N identification: each gallery person is enrolled from their first photo "
                                     "(sorted); probes of enrolled people are mated, all others non-mated")
    _protocol_args(p)
    p.add_argument("--flip", default="enroll",
                   help="none, enroll (gallery flip-summed, as the device enrolls; default), both (flip-test), "
                        "or a comma list to compare")
    _common(p)
    p.set_defaults(func=run_identify)

    p = group.add_parser("calibrate", help="thresholds at fixed FPIR for several watchlist sizes",
                         description="measure the threshold at each FPIR for random gallery subsets and write "
                                     "engines/calibration-<embedder>.toml")
    p.add_argument("--lfw", type=Path, help="LFW folder: shorthand for --gallery DIR --probes DIR --min-images 2 "
                                            "--exclude-known-label-noise (the reference protocol)")
    _protocol_args(p, required=False)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="gallery sizes, comma separated")
    p.add_argument("--fpirs", default=",".join(f"{f:g}" for f in CAL_FPIRS), help="FPIRs, comma separated")
    p.add_argument("--seed", type=int, default=0, help="random seed for the gallery subsets")
    p.add_argument("--repeats", type=int, default=5, help="random subsets averaged per gallery size")
    p.add_argument("--flip", choices=IDENTIFY_FLIPS, default="enroll", help="as for identify (default: enroll)")
    p.add_argument("--out", type=Path, help="table to write (default engines/calibration-<embedder>.toml)")
    p.add_argument("--at-thresholds", default="", help="also report FPIR and FNIR at these thresholds, comma separated")
    _common(p, plot=False)
    p.set_defaults(func=run_calibrate)

    p = group.add_parser("resolution", help="1:N error as faces get smaller (or blurred), through the quality gate",
                         description="LFW 1:N (as identify --min-images 2 --exclude-known-label-noise) with probes "
                                     "scaled to each eye distance in a 1280x720 frame, through the device's detector, "
                                     "quality gate, embedder and match")
    p.add_argument("--lfw", type=Path, help="LFW folder (default $EDGE_TEST_DATA/lfw, else ../shared/data/lfw)")
    p.add_argument("--levels", default=",".join(map(str, LEVELS)),
                   help="eye distances in frame pixels, comma separated")
    p.add_argument("--probes-per-level", type=int, default=PER_CLASS,
                   help="mated probes, and as many non-mated, shown at every level (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the probe sample and positions")
    p.add_argument("--blur", default="", help="also: Gaussian sigmas (frame pixels) at --blur-level, comma separated")
    p.add_argument("--blur-level", type=float, default=20.0, help="eye distance for the --blur sweep (default 20)")
    _common(p)
    p.set_defaults(func=run_resolution)

    p = group.add_parser("demographics", help="false alarms and misses per race and gender group, with intervals",
                         description="false alarms of UTKFace passers-by against the London Set list, and misses of "
                                     "London and LFW mated searches, per race, gender and race x gender group, at the "
                                     "floor, the fixed default and the constant-FPIR thresholds (docs/evaluation.md)")
    p.add_argument("--demographics", type=Path, dest="data", metavar="DIR",
                   help="demographics folder (default $EDGE_TEST_DATA/demographics, else ../shared/data/demographics)")
    add_renamed(p, "--data", "--demographics", type=Path)
    p.add_argument("--lfw", type=Path, help="LFW folder for mated searches by race (default beside --demographics); "
                                            "'none' leaves them out")
    p.add_argument("--at-thresholds", default="", help="also report at these thresholds, comma separated")
    p.add_argument("--write-calibration", action="store_true",
                   help="put the per-group curves into engines/calibration-<embedder>.toml (the device's policy "
                        "reads them)")
    _common(p)
    p.set_defaults(func=run_demographics)

    p = group.add_parser("quality", help=quality_cli.HELP, description=quality_cli.DESCRIPTION)
    quality_cli.add_args(p)
    _common(p)
    p.set_defaults(func=run_quality)

    add_stream_parser(group)


def _protocol_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--gallery", type=Path, required=required, help="folder, one sub-folder per person")
    p.add_argument("--probes", type=Path, required=required,
                   help="folder, one sub-folder per person (may be --gallery)")
    p.add_argument("--min-images", type=int, default=1,
                   help="enroll only people with at least N photos in --gallery (LFW reference protocol: 2)")
    p.add_argument("--exclude-known-label-noise", action="store_true",
                   help="leave out the 7 LFW single-image people known to be gallery people (figures with them "
                        "are reported too)")


def _common(p: argparse.ArgumentParser, plot: bool = True) -> None:
    add_report_arg(p, "also write the report (JSON) here; the summary goes to stdout either way")
    if plot:
        p.add_argument("--plot", type=Path, help="write the curve here (PNG)")
    add_model_args(p, threads=2)
    p.add_argument("--cache", type=Path, help="folder keeping faces and embeddings between runs")


def _cache(args: argparse.Namespace) -> EmbedCache:
    return EmbedCache(stack_from_args(args), args.cache, progress=True)


def _flips(text: str, allowed: tuple[str, ...]) -> list[str]:
    flips = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in flips if f not in allowed]
    if not flips or bad:
        raise ConfigError(f"--flip {text!r}: use one or more of {', '.join(allowed)}, comma separated")
    return flips


def _write_json(path: Path | None, report: dict[str, Any]) -> None:
    if path is None:  # no --report: the summary printed is all that was asked for
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def _command() -> str:
    """The command line that produced a report, less --cache (a cache changes how fast, never what)."""
    if not sys.argv or not sys.argv[0].endswith(("edge", "edge/__main__.py")):
        return ""
    argv, kept = sys.argv[1:], []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--cache":
            skip = True
        elif not arg.startswith("--cache="):
            kept.append(arg)
    return "edge " + shlex.join(kept)


def run_verify(args: argparse.Namespace) -> int:
    flips = _flips(args.flip, ("none", "both"))
    pairs = parse_pairs(args.pairs, args.lfw, args.per_class)
    cache = _cache(args)
    reports, curves = [], {}
    for flip in flips:
        report, ps = verify_report(cache, pairs, flip == "both")
        reports.append(report)
        curves[f"{cache.embedder}, flip {flip}: {100 * report['accuracy_mean']:.2f} %"] = roc_curve(ps.scores, ps.same)
        print(f"verify {cache.embedder} flip {flip}: accuracy {100 * report['accuracy_mean']:.2f} % "
              f"± {100 * report['accuracy_std']:.2f} over {report['pairs']} pairs; "
              f"threshold {report['threshold']:.3f}; "
              f"TAR@FAR1e-3 {_pct(report['tar_at_far_1e-3'])}; AUC {report['auc']:.4f}; "
              f"images with no face: {report['failed_images']['count']}")
    _write_variants(args.report, reports)
    if args.plot:
        from edge.evaluation.plots import roc_plot

        points = reports[0]["operating_points"]
        if points is None:
            print(f"the plot marks no operating thresholds: {reports[0]['operating_points_missing']}")
        roc_plot(args.plot, curves, f"LFW verification, {len(pairs)} pairs", _marks(points or [], reports[0]),
                 far_zero=0.5 / max(reports[0]["mismatched_pairs"], 1))
    return 0


def _marks(points: list[dict[str, Any]], report: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(label, FAR, TAR) of each device threshold, labelled with its value and where it falls on these pairs."""
    impostors = report["mismatched_pairs"]
    return [(f"{p['label']} {p['threshold']:.3f}: TAR {100 * p['tar']:.1f} %, FAR "
             + (f"0 of {impostors}" if p["far"] == 0 else f"{p['far']:.1e}"), p["far"], p["tar"]) for p in points]


def _write_variants(path: Path | None, reports: list[dict[str, Any]]) -> None:
    """The first variant fills the top-level keys; the others follow under `other_variants`."""
    out = {**reports[0], "command": _command()}
    if len(reports) > 1:
        out["other_variants"] = reports[1:]
    _write_json(path, out)


def _protocol(args: argparse.Namespace) -> tuple[Protocol, str]:
    if getattr(args, "lfw", None) is not None:
        if args.gallery is not None or args.probes is not None:
            raise ConfigError("give either --lfw or --gallery and --probes, not both")
        args.gallery = args.probes = args.lfw
        args.min_images, args.exclude_known_label_noise = 2, True
    elif args.gallery is None or args.probes is None:
        raise ConfigError("give --gallery and --probes (one sub-folder per person), or --lfw for LFW's protocol")
    if args.min_images < 1:
        raise ConfigError("--min-images must be 1 or more")
    protocol = build_protocol(args.gallery, args.probes, args.min_images, args.exclude_known_label_noise)
    note = (f"first photo (sorted) of each of the {len(protocol.gallery)} people in {args.gallery} with "
            f"{args.min_images}+ photos")
    return protocol, note


def run_identify(args: argparse.Namespace) -> int:
    flips = _flips(args.flip, IDENTIFY_FLIPS)
    protocol, note = _protocol(args)
    cache = _cache(args)
    reports, curves = [], {}
    for flip in flips:
        report, searches = identify_report(cache, protocol, flip, note)  # type: ignore[arg-type]  # checked by _flips
        reports.append(report)
        curves[f"{cache.embedder}, flip {flip}"] = det_curve(searches)
        print(f"identify {cache.embedder} flip {flip}: gallery {report['gallery_size']}, mated {report['mated']}, "
              f"non-mated {report['non_mated']}; rank-1 {_pct(report['rank1'])}; "
              f"FNIR {_pct(report['fnir_at_fpir_1e-2'])} at FPIR 1e-2 (threshold {report['threshold_at_fpir_1e-2']}), "
              f"{_pct(report['fnir_at_fpir_1e-3'])} at 1e-3 (threshold {report['threshold_at_fpir_1e-3']}); "
              f"images with no face: {report['failed_images']['count']}")
        if "known_label_noise" in report:
            noise = report["known_label_noise"]
            print(f"  known LFW label noise ({len(noise['excluded_from_non_mated'])} non-mated probes) excluded; "
                  f"with them: FNIR {_pct(noise['with_them_included']['fnir_at_fpir_1e-2'])} at FPIR 1e-2, "
                  f"{_pct(noise['with_them_included']['fnir_at_fpir_1e-3'])} at 1e-3")
    _write_variants(args.report, reports)
    if args.plot:
        from edge.evaluation.plots import det_plot

        det_plot(args.plot, curves, f"1:N, gallery {reports[0]['gallery_size']}, "
                                    f"{reports[0]['non_mated']} non-mated probes")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    try:
        sizes = tuple(int(v) for v in args.sizes.split(","))
        fpirs = tuple(float(v) for v in args.fpirs.split(","))
        at = tuple(float(v) for v in args.at_thresholds.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError("--sizes takes integers, --fpirs and --at-thresholds numbers, comma separated "
                          "(e.g. 100,500 and 1e-2,1e-3)") from exc
    if any(s < 1 for s in sizes) or any(not 0 < f < 1 for f in fpirs) or args.repeats < 1:
        raise ConfigError("--sizes must be >= 1, --fpirs between 0 and 1, --repeats >= 1")
    protocol, note = _protocol(args)
    cache = _cache(args)
    points, fixed = measure(cache, protocol, sizes, fpirs, args.flip, args.seed, args.repeats, sys.stderr.isatty(),
                            at)
    noise = "known LFW label noise excluded" if args.exclude_known_label_noise else "known LFW label noise included"
    dataset = (f"{args.gallery.name}: gallery = random subsets (seed {args.seed}, mean of {args.repeats} draws below "
               f"the full size) of the {note}; non-mated = {len(protocol.non_mated)} photos of people not "
               f"enrolled ({noise}); {FLIP_NOTES[args.flip]}; detector long side {args.long_side}")
    shipped = calibration_path(cache.stack.manifest.folder, cache.embedder)
    out = args.out or shipped
    kept, what = kept_demographics(out, cache.stack.embedder_sha256)
    text = calibration_toml(points, cache.embedder, cache.stack.embedder_sha256, dataset, _command(), kept)
    write_calibration(out, text)
    for p in points:
        print(f"gallery {p.gallery_size:5d}  FPIR {p.fpir:<6g} threshold {p.threshold:.4f}  FNIR {100 * p.fnir:5.1f} %")
    for f in fixed:
        print(f"gallery {f.gallery_size:5d}  threshold {f.threshold:<6g} FPIR {f.fpir:.2e} "
              f"({f.searches} non-mated searches)  FNIR {100 * f.fnir:5.1f} %")
    if kept or out != shipped:
        print(f"wrote {out}; {what}" + ("" if kept else f" (the device reads {shipped}, which is unchanged)"))
    else:
        print(f"wrote {out}; {what}: the device will not use {cache.embedder} until `edge eval demographics "
              f"--embedder {cache.embedder} --write-calibration` adds it")
    if args.report:
        _write_json(args.report, {"command": _command(), "dataset": dataset, "embedder": cache.embedder,
                                  "points": [vars(p) for p in points], "at_thresholds": [vars(f) for f in fixed]})
    return 0


def run_resolution(args: argparse.Namespace) -> int:
    try:
        levels = [float(v) for v in args.levels.split(",") if v.strip()]
        blurs = [float(v) for v in args.blur.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError("--levels and --blur take numbers, comma separated (e.g. 8,14,20)") from exc
    if not levels or not all(2 <= v <= 200 for v in levels) or not all(0 <= b <= 20 for b in blurs) or \
            not 2 <= args.blur_level <= 200 or args.probes_per_level < 1:
        raise ConfigError("--levels and --blur-level take eye distances from 2 to 200 px, --blur sigmas from 0 to "
                          "20 px, --probes-per-level 1 or more")
    conditions = [Condition(v) for v in levels] + [Condition(args.blur_level, b) for b in blurs]
    lfw = args.lfw or data_root() / "lfw"
    protocol = lfw_protocol(lfw)
    cache = _cache(args)
    note = f"first photo (sorted) of each of the {len(protocol.gallery)} people in {lfw} with 2+ photos"

    def show(row: dict) -> None:
        keys = list(row["with_gate"])
        gated = ", ".join(f"{k} {_pct(row['with_gate'][k]['fnir'])} / {_pct(row['with_gate'][k]['fpir'])}"
                          for k in keys)
        free = ", ".join(f"{k} {_pct(row['without_gate'][k]['fnir'])} / {_pct(row['without_gate'][k]['fpir'])}"
                         for k in keys)
        blur = f" blur {row['blur_sigma']:g}" if row["blur_sigma"] else ""
        print(f"{row['eye_distance']:5g} px{blur}: detected {_pct(row['detected'])}, through the gate "
              f"{_pct(row['passed_gate'])} {row['gate_reasons']}; FNIR / FPIR with the gate: {gated}; "
              f"without: {free}", flush=True)

    report = resolution_report(cache, protocol, conditions, args.probes_per_level, args.seed, gallery_note=note,
                               on_level=show)
    report["command"] = _command()
    _write_json(args.report, report)
    print(f"resolution {report['embedder']}: gallery {report['gallery_size']}, thresholds "
          f"{report['thresholds']}, {report['sample']['mated']} mated + {report['sample']['non_mated']} non-mated "
          f"probes per level; {report['seconds']} s")
    if args.plot:
        from edge.evaluation.plots import resolution_plot

        resolution_plot(args.plot, report)
    return 0


def run_quality(args: argparse.Namespace) -> int:
    return quality_cli.run(args, _cache(args), _command())


def run_demographics(args: argparse.Namespace) -> int:
    try:
        extra = tuple(float(v) for v in args.at_thresholds.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError("--at-thresholds takes numbers, comma separated (e.g. 0.53,0.595)") from exc
    if not all(-1 <= t <= 1 for t in extra):
        raise ConfigError("--at-thresholds: cosines lie between -1 and 1")
    started = time.perf_counter()
    data = args.data or data_root() / "demographics"
    lfw = None if str(args.lfw) == "none" else (args.lfw or data.parent / "lfw")
    if args.write_calibration and lfw is None:
        raise ConfigError("--write-calibration needs the LFW misses (HQ reports them from the table): leave out "
                          "--lfw none")
    cache = _cache(args)
    cal = load_calibration(cache.stack.manifest.folder, cache.embedder, cache.stack.embedder_sha256)
    passers, mated, size = search_all(cache, data, lfw)
    dataset = (f"false alarms: {len(passers.people)} UTKFace adults ({data.name}/utkface) against the {size} London "
               f"Set people ({data.name}/london) enrolled from their neutral photo (flip-summed); misses: "
               + ", ".join(f"{len(m.people)} {m.data} mated searches" for m in mated)
               + f"; detector long side {args.long_side}")
    demo = measured(passers, mated, size, dataset, _command(), cache.stack.embedder_sha256)
    report, _ = demographics_report(cal, demo, passers, mated, extra, started)
    report["command"] = _command()
    _write_json(args.report, report)
    print("\n".join(summary(report)))
    if args.plot:
        from edge.evaluation.plots import demographics_plot

        demographics_plot(args.plot, report)
    refused = report["policy"]["refused"]
    if refused:
        print(f"the shipped policy would refuse this embedder with these curves: {refused}")
    if args.write_calibration:
        out = calibration_path(cache.stack.manifest.folder, cache.embedder)
        if refused:
            raise EdgeError(f"{out} not changed: the device would refuse {cache.embedder} with these curves")
        write_calibration(out, with_demographics(out, demo, cache.stack.embedder_sha256))
        print(f"wrote the per-group curves into {out}")
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"

