"""`edge demo`."""

import argparse
import json
from pathlib import Path

from edge.cliargs import add_report_arg


def register(commands) -> None:
    p = commands.add("demo", "the whole system on this machine: broker, HQ, a device on a sample clip, a handheld")
    p.add_argument("--media", type=Path, help="folder with the sample clip and photos (default: $EDGE_TEST_DATA/demo, "
                                              "else downloaded once and checked)")
    p.add_argument("--workdir", type=Path, help="keep keys, logs and databases here (default: a new temp folder)")
    p.add_argument("--manual", action="store_true", help="keep the handheld page up for a person to decide on it, "
                                                              "until Ctrl-C (default: a scripted officer decides "
                                                              "and the page closes when the clip ends)")
    p.add_argument("--port", type=int, default=0, help="handheld page port (default: any free)")
    add_report_arg(p, "also write the summary (JSON) here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.demo.run import run_demo

    summary = run_demo(args.media, args.workdir, args.manual, args.port)
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if summary["audit_chain_verified"] else 1
