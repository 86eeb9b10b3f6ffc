"""`edge audit verify LOG [--pub FILE | --no-signatures] [--anchor SEQ:HASH]`: check a device's audit log.

Exit 0: intact (checkpoint signatures checked, or skipped on purpose with --no-signatures); 1: problems found;
2: cannot check; 3: the chain holds together but no key was given, so a log rewritten with recomputed hashes
would pass too: only the device's signatures on the checkpoints reveal that.
"""

import argparse
from pathlib import Path

from edge.audit.verify import Anchor, VerifyReport, verify_file
from edge.cliargs import Commands
from edge.keys import load_signing_public

UNSIGNED = "chain intact; signatures NOT checked: give --pub to detect a rewritten log"
EXIT_UNSIGNED = 3


def register(commands: Commands) -> None:
    audit = commands.group("audit", "the device's append-only, hash-chained audit log")
    verify = audit.add_parser(
        "verify", help="find edited, missing, inserted or reordered records and bad checkpoint signatures",
        description="Verify an audit log. Exit 0: intact; 1: problems found (each named); 2: cannot check; "
                    f"{EXIT_UNSIGNED}: chain intact but signatures not checked (no --pub): a log rewritten with "
                    "recomputed hashes passes that far, only the checkpoint signatures reveal it.",
    )
    verify.add_argument("log", type=Path, help="the audit log file (JSON lines)")
    keys = verify.add_mutually_exclusive_group()
    keys.add_argument("--pub", type=Path, action="append", default=[], metavar="FILE",
                      help="the device's Ed25519 public key (PEM) to check checkpoints; repeat for older keys")
    keys.add_argument("--no-signatures", action="store_true",
                      help=f"check the chain only, and exit 0 rather than {EXIT_UNSIGNED} when it holds (still "
                           "warning that a rewritten log would pass)")
    verify.add_argument("--anchor", metavar="SEQ:HASH",
                        help="a head the device announced outside the log (its status; `edge hq report` prints the "
                             "last one): names the records missing when the log's end was cut off")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    keys = [load_signing_public(p) for p in args.pub]
    report = verify_file(args.log, keys, Anchor.parse(args.anchor) if args.anchor is not None else None)
    print(report.model_dump_json(indent=2) if args.json else render(report))
    if not report.ok:
        return 1
    return 0 if report.signatures_checked or args.no_signatures else EXIT_UNSIGNED


def render(report: VerifyReport) -> str:
    span = f"seq {report.first_seq}-{report.last_seq}" if report.records else "none"
    signed = (f"; signed through seq {report.signed_through}" if report.signed_through is not None else "")
    lines = [f"{report.source}: device {report.device or '?'}, {report.records} records ({span}){signed}"]
    lines += [f"PROBLEM: {p.message}" for p in report.problems]
    lines += [f"note: {n}" for n in report.notes]
    if not report.ok:
        lines.append(f"FAILED: {len(report.problems)} problem(s)")
    else:
        lines.append("OK" if report.signatures_checked else UNSIGNED)
    return "\n".join(lines)
