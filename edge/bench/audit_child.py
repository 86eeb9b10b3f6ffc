"""The child process of `edge bench audit`: verify one log several times in a fresh process.

    python -m edge.bench.audit_child --log FILE --pub FILE --runs N

A process of its own, so that its peak resident memory is the verifier's (and the imports it needs) alone.
Prints its figures as one JSON line.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from edge.audit.verify import verify_file
from edge.bench.procinfo import memory_mb
from edge.keys import load_signing_public


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.bench.audit_child")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--pub", type=Path, required=True)
    parser.add_argument("--runs", type=int, required=True)
    args = parser.parse_args(argv)
    keys = [load_signing_public(args.pub)]
    rss_before, _ = memory_mb()
    times, records = [], 0
    for _ in range(args.runs):
        t = time.perf_counter()
        report = verify_file(args.log, keys)
        times.append(time.perf_counter() - t)
        if not report.ok:
            problems = "; ".join(p.message for p in report.problems[:3])
            raise SystemExit(f"the benchmark's log does not verify ({problems}): delete {args.log} to rebuild it")
        records = report.records
    _, peak = memory_mb()
    print(json.dumps({"records": records, "verify_s": times, "rss_before_verify_mb": rss_before,
                      "verify_peak_mb": peak}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
