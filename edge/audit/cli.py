"""`edge audit verify LOG [--pub FILE]`: check a device's audit log; exit 1 when anything is wrong."""

import argparse
from pathlib import Path

from edge.audit.verify import VerifyReport, verify_file
from edge.cli import Commands
from edge.keys import load_signing_public


def register(commands: Commands) -> None:
    audit = commands.group("audit", "the device's append-only, hash-chained audit log")
    verify = audit.add_parser(
        "verify", help="find edited, missing, inserted or reordered records and bad checkpoint signatures",
        description="Verify an audit log. Exit 0: intact; 1: problems found (each named); 2: cannot check.",
    )
    verify.add_argument("log", type=Path, help="the audit log file (JSON lines)")
    verify.add_argument("--pub", type=Path, action="append", default=[], metavar="FILE",
                        help="the device's Ed25519 public key (PEM) to check checkpoints; repeat for older keys")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    keys = [load_signing_public(p) for p in args.pub]
    report = verify_file(args.log, keys)
    print(report.model_dump_json(indent=2) if args.json else render(report))
    return 0 if report.ok else 1


def render(report: VerifyReport) -> str:
    span = f"seq {report.first_seq}-{report.last_seq}" if report.records else "none"
    signed = (f"; signed through seq {report.signed_through}" if report.signed_through is not None else "")
    lines = [f"{report.source}: device {report.device or '?'}, {report.records} records ({span}){signed}"]
    lines += [f"PROBLEM: {p.message}" for p in report.problems]
    lines += [f"note: {n}" for n in report.notes]
    lines.append("OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)")
    return "\n".join(lines)
