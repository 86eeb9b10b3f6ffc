"""`edge eval quality`: error-versus-reject curves of the quality gate's factors (docs/evaluation.md, "The quality
gate from error-versus-reject curves")."""

import argparse
import json
from pathlib import Path
from typing import Any

from edge.cliargs import data_root
from edge.errors import ConfigError
from edge.evaluation.embedcache import EmbedCache
from edge.evaluation.quality_eval import PER_CLASS, markdown, quality_report
from edge.evaluation.resolution import lfw_protocol

HELP = "error-versus-reject curves (EDC) of each quality factor: the gate's limits from measured curves"
DESCRIPTION = ("LFW 1:N (as identify --min-images 2 --exclude-known-label-noise), each probe shown once in a "
               "1280x720 frame at its own seeded size, blur and gain, through the device's detector, quality "
               "assessment, embedder and match; FNIR of the faces kept as each factor rejects more, and the limit "
               "each curve supports")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lfw", type=Path,
                   help="LFW folder (default $EDGE_TEST_DATA/lfw, else ../shared/data/lfw)")
    p.add_argument("--probes-per-class", type=int, default=PER_CLASS,
                   help="mated probes, and as many non-mated, each shown once (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the probe sample and each probe's conditions")


def run(args: argparse.Namespace, cache: EmbedCache, command: str) -> int:
    if args.probes_per_class < 1:
        raise ConfigError("--probes-per-class must be 1 or more")
    lfw = args.lfw or data_root() / "lfw"
    protocol = lfw_protocol(lfw)
    note = f"first photo (sorted) of each of the {len(protocol.gallery)} people in {lfw} with 2+ photos"
    report = quality_report(cache, protocol, args.probes_per_class, args.seed, gallery_note=note)
    report["command"] = command
    report["table"] = markdown(report)
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(report["table"])
    print(summary(report))
    if args.plot is not None:
        from edge.evaluation.plots import edc_plot

        edc_plot(args.plot, report)
    return 0


def summary(report: dict[str, Any]) -> str:
    s, gate = report["sample"], report["gate_as_configured"]
    parts = [f"{k} FNIR {100 * v['fnir']:.1f} % (all found) -> {_pct(gate[k]['fnir'])} (through the gate)"
             for k, v in report["all_found"].items()]
    return (f"quality {report['embedder']}: gallery {report['gallery_size']}, found {s['found_mated']} of "
            f"{s['mated']} mated and {s['found_non_mated']} of {s['non_mated']} non-mated probes; the gate as "
            f"configured rejects {_pct(gate['rejected'])} of the mated faces found; " + "; ".join(parts)
            + f"; {report['seconds']} s")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"
