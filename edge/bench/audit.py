"""`edge bench audit`: verify a long device audit log; records per second and peak resident memory.

    edge bench audit [--records 525000] [--runs 3] [--log FILE] [--report FILE]

The log is what a device writes with the default policy (a signed checkpoint every 100 records or 5 minutes):
a `counters` record a minute, an alert and its decision now and then, a period of use a day. It is written
through `AuditLog` once and kept (default: in ~/.cache/edge/bench) for later runs; its public key lies beside
it. Verification runs in a fresh process (edge.bench.audit_child), so its peak resident memory is the
verifier's alone, and the checkpoint signatures are checked, as `edge audit verify --pub` does.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.audit.log import AuditLog
from edge.audit.records import (
    AdjudicationBody,
    AlertBody,
    CountersBody,
    PeriodStartBody,
    PeriodStopBody,
    WatchlistInstalledBody,
)
from edge.bench.procinfo import cpu_model
from edge.config.audit import AuditConfig
from edge.errors import EdgeError
from edge.keys import generate_signing, save_public
from edge.runtime.progress import progress

DEVICE = "cam-bench"
T0 = 1_700_000_040  # a minute boundary
H = "ab" * 32
YEAR = 525_000  # records: one `counters` record a minute for a year (docs/audit.md)
PEAK_TARGET_MB = 150.0  # for a year's log, on a small Jetson's free memory
# The whole-file verifier the streaming one replaced (commit c42dcf7), measured with this benchmark on the
# development VM: 9,931 records/s at 101,000 records (best of 3), 9,337 at 525,000 (best of 2; 3,048 MB peak).
BASELINE_RECORDS_PER_S = 9_931.0
BASELINE_MACHINE = "the development VM (AMD EPYC, 2 cpus)"
ONE_THREAD = {var: "1" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def run_audit_bench(args: argparse.Namespace) -> int:
    if args.records < 10 or args.verify_runs < 1:
        raise EdgeError(f"--records {args.records} --runs {args.verify_runs}: give at least 10 records (a log "
                        "starts with a checkpoint, a watchlist and a period) and 1 run")
    log = args.log or _cache() / f"audit-{args.records}.log"
    pub = log.with_name(log.name + ".pub.pem")
    figures: dict = {"command": _command(args), "machine": cpu_model(), "threads": 1,
                     "python": platform.python_version(), "load_average": os.getloadavg()[0], "log": str(log)}
    if log.exists() and not pub.exists():
        raise EdgeError(f"{log} is there but not its public key {pub}: put the device's key there to benchmark "
                        "that log, or give another --log path to write a new one")
    if log.exists():
        print(f"reusing {log} (delete it to write a new one)", file=sys.stderr)
    else:
        figures["log_written_s"] = _write_log(log, pub, args.records)
    figures["log_mb"] = log.stat().st_size / 1e6
    child = _child(log, pub, args.verify_runs)
    best = min(child["verify_s"])
    figures.update(records=child["records"], runs=args.verify_runs, verify_s=child["verify_s"],
                   rss_before_verify_mb=child["rss_before_verify_mb"])
    figures["verify_peak_mb"] = _figure(child["verify_peak_mb"], figures, PEAK_TARGET_MB, "at most", (
        f"at most {PEAK_TARGET_MB:.0f} MB peak resident for a year's log ({YEAR:,} records), the whole process"))
    figures["verify_records_per_s"] = _figure(child["records"] / best, figures, BASELINE_RECORDS_PER_S, "at least", (
        f"at least {BASELINE_RECORDS_PER_S:,.0f} records/s, what the whole-file verifier did on {BASELINE_MACHINE} "
        "(this benchmark, before streaming)"))
    for line in _report(figures):
        print(line)
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _figure(value: float, figures: dict, target: float, direction: str, rule: str) -> dict:
    met = value <= target if direction == "at most" else value >= target
    return {"value": round(value, 1), "target": target, "target_rule": rule, "met": met,
            "machine": figures["machine"], "threads": figures["threads"]}


def _write_log(log: Path, pub: Path, records: int) -> float:
    """Write the log beside where it will stay, under a temporary name (a log that is there is whole), then its
    public key. Not in /dev/shm: a year's log is hundreds of MB, more than a container's /dev/shm holds, and
    the fsync at each checkpoint only slows writing, which this benchmark does not measure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    part = log.with_name(log.name + ".part")
    part.unlink(missing_ok=True)
    try:
        t = time.perf_counter()
        key = generate_signing()
        _append_all(part, key, records)
        elapsed = time.perf_counter() - t
        save_public(key.public_key(), pub)
        part.rename(log)
    finally:
        part.unlink(missing_ok=True)
    return elapsed


class _Clock:
    def __init__(self) -> None:
        self.t = float(T0)

    def __call__(self) -> float:
        return self.t


def _append_all(path: Path, key: Ed25519PrivateKey, records: int) -> None:
    policy, clock = AuditConfig(), _Clock()
    with AuditLog.open(path, key, policy.checkpoint_every, device_id=DEVICE, fsync="checkpoint", clock=clock,
                       checkpoint_seconds=policy.checkpoint_seconds) as log, \
            progress(total=records, unit="records", desc=f"writing a {records:,}-record audit log") as bar:
        minute, day = 0, 0
        log.append("watchlist_installed", WatchlistInstalledBody(
            watchlist_id="wl-city", version=7, entries=1000, expires=T0 + 400 * 86400, bundle_sha256=H,
            model_sha256=H, threshold=0.5, threshold_policy="fixed (match.threshold)", embedder_sha256=H))
        log.append("period_start", _period(day))
        while log.head[0] + 2 < records:  # room for a checkpoint after the record and the one close writes
            clock.t = T0 + 60.0 * (minute + 1)
            start = T0 + 60 * minute
            log.append("counters", CountersBody(minute_start=start, minute_end=start + 60, frames=1500 + minute % 7,
                                                faces_seen=12, faces_discarded=11, tracks_ended_without_match=9,
                                                alerts=int(minute % 97 == 41)))
            if minute % 97 == 41:
                log.append("alert", _alert(f"ev-{minute}", clock.t))
                log.append("adjudication", AdjudicationBody(event_id=f"ev-{minute}", decision="confirmed",
                                                            by="PC 4711", decided_at=clock.t + 30))
            if minute % 1440 == 1439:
                log.append("period_stop", PeriodStopBody(period_id=f"day-{day}", reason="operator"))
                day += 1
                log.append("period_start", _period(day))
            minute += 1
            bar.update(log.head[0] + 1 - bar.n)
        bar.update(records - bar.n)


def _period(day: int) -> PeriodStartBody:
    return PeriodStartBody(period_id=f"day-{day}", place="Main St / 5th Ave", camera="cam-bench/front",
                           operator="PC 4711", purpose="case 2024-117", watchlist_id="wl-city", watchlist_version=7,
                           watchlist_size=1000, threshold=0.5, threshold_policy="fixed (match.threshold)",
                           embedder_sha256=H)


def _alert(event_id: str, t: float) -> AlertBody:
    return AlertBody(event_id=event_id, track_id=3, frame=120, frame_time=t - 20, subject_id="s-17",
                     watchlist_id="wl-city", watchlist_version=7, score=0.61, threshold=0.5,
                     threshold_policy="fixed (match.threshold)", margin=0.2, probe_quality=0.8,
                     box=(10.0, 20.0, 110.0, 140.0), detector_sha256=H, embedder_sha256=H, crop_sha256=H)


def _child(log: Path, pub: Path, runs: int) -> dict:
    cmd = [sys.executable, "-m", "edge.bench.audit_child", "--log", str(log), "--pub", str(pub), "--runs", str(runs)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    if done.returncode != 0:
        raise SystemExit(f"audit verify process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge" / "bench"


def _command(args: argparse.Namespace) -> str:
    words = ["edge bench audit", f"--records {args.records}", f"--runs {args.verify_runs}"]
    words += [f"--log {args.log}"] if args.log else []
    words += [f"--report {args.json_out}"] if args.json_out else []
    return " ".join(words)


def _report(f: dict) -> list[str]:
    peak, rate = f["verify_peak_mb"], f["verify_records_per_s"]
    return [
        f"{f['machine']}, {f['threads']} thread, Python {f['python']}, load average {f['load_average']:.1f} at start",
        f"log: {f['records']:,} records, {f['log_mb']:.0f} MB ({f['log']})",
        f"edge audit verify --pub: {rate['value']:,.0f} records/s (best of {f['runs']} runs: "
        f"{min(f['verify_s']):.1f} s; {rate['target_rule']}: {'met' if rate['met'] else 'MISSED'})",
        f"peak resident {peak['value']:.0f} MB, {f['rss_before_verify_mb']:.0f} MB of it before verifying "
        f"({peak['target_rule']}: {'met' if peak['met'] else 'MISSED'})",
    ]
