"""`edge bench watchlist`: build and install a large bundle, load it, match against it, and its memory.

    edge bench watchlist [--entries 100000] [--million 1000000] [--faces 8]

Single-threaded on purpose: the device shares its cores with capture and inference. Synthetic random
L2-normalised embeddings stand in for enrolled faces; real photos are covered by the tests. Installing,
loading and matching run in fresh processes (edge.bench.watchlist_child, BLAS threads fixed to 1 before numpy
loads) so that their resident memory is the watchlist's alone; this process only builds the bundle.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge.bench.watchlist_child import unit_rows
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.fsio import write_atomic
from edge.keys import generate_encryption, generate_signing, save_private, save_public
from edge.models import Manifest
from edge.watchlist.bundle import BundleSpec, EmbedderRef
from edge.watchlist.entries import WatchlistEntry
from edge.watchlist.sealing import Subject, seal

EMBEDDER = DEFAULT_EMBEDDER  # its dimension sets the list's size in memory
SINGLE_THREAD = {var: "1" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def run_watchlist_bench(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="edge-wl-bench-") as tmp:
        figures = _run(args, Path(tmp))
    for line in _report(figures, args):
        print(line)
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2))
    return 0


def _run(args: argparse.Namespace, folder: Path) -> dict:
    spec = Manifest.load().spec(EMBEDDER)
    sha, dim = spec.sha256, spec.dim or 0
    hq, device = generate_signing(), generate_encryption()
    save_private(device, folder / "device.key")
    save_public(hq.public_key(), folder / "hq.pub")
    figures: dict = {"cpu": _cpu(), "load_average": os.getloadavg()[0], "entries": args.entries,
                     "faces": args.match_faces, "storage": args.storage, "embedder": EMBEDDER, "dim": dim}

    subjects = _subjects(args.entries, dim)
    now = datetime.now(timezone.utc)
    spec = BundleSpec(watchlist_id="bench", version=1, issued=now, not_before=now, expires=now + timedelta(days=1),
                      scope="bench", embedder=EmbedderRef(name=EMBEDDER, sha256=sha, dim=dim))
    t = time.perf_counter()
    data = seal(spec, subjects, [("bench-device", device.public_key())], hq)
    write_atomic(folder / "bench.bundle", data)
    figures["build_s"] = time.perf_counter() - t
    figures["bundle_mb"] = len(data) / 1e6
    del data, subjects

    figures.update(_child(args, "install", folder, sha, dim))
    figures.update(_child(args, "install_file", folder, sha, dim))
    figures.update(_child(args, "load", folder, sha, dim))
    if args.million:
        figures["million"] = _child(args, "gallery", folder, sha, dim)
    return figures


def _child(args: argparse.Namespace, kind: str, folder: Path, sha: str, dim: int) -> dict:
    cmd = [sys.executable, "-m", "edge.bench.watchlist_child", "--child", kind, "--dir", str(folder), "--faces",
           str(args.match_faces), "--repeats", str(args.repeats), "--storage", args.storage, "--entries",
           str(args.entries), "--million", str(args.million)]
    # BLAS threads are fixed when numpy loads
    env = {**os.environ, **SINGLE_THREAD, "EDGE_BENCH_SHA": sha, "EDGE_BENCH_DIM": str(dim)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"bench {kind} process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _subjects(n: int, dim: int) -> list[Subject]:
    now = datetime.now(timezone.utc)
    rows = unit_rows(n, seed=1, dim=dim)
    expires = now + timedelta(days=30)
    return [Subject(WatchlistEntry.model_construct(
        subject_id=f"S{i:07d}", label=f"Person {i}", category="wanted", case_reference=f"CASE-2025-{i:07d}",
        legal_basis="Court order 17/2025", approver="Insp. Kaur", added=now, expires=expires), rows[i: i + 1])
        for i in range(n)]


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cpus, 1 thread used)"
    return f"{os.cpu_count()} cpus, 1 thread used"


def _report(f: dict, args: argparse.Namespace) -> list[str]:
    lines = [f"CPU: {f['cpu']}, load average {f['load_average']:.1f} at start; gallery storage {f['storage']}; "
             f"{f['faces']} faces per frame",
             f"{f['entries']:,} entries: bundle {f['bundle_mb']:.1f} MB built and written in {f['build_s']:.2f} s "
             f"(target < 30 s); installed in {f['install_s']:.2f} s (target < 30 s); reloaded at start in "
             f"{f['load_s']:.2f} s",
             f"{f['entries']:,} entries install, peak resident: {f['peak_install_mb']:.0f} MB from the bundle's bytes "
             f"(as MQTT delivers it; bytes included), {f['peak_install_file_mb']:.0f} MB in "
             f"{f['install_file_s']:.2f} s from the bundle file (process {f['rss_before_install_mb']:.0f} MB before)",
             f"{f['entries']:,} entries loaded: {f['rss_loaded_mb']:.0f} MB resident (gallery array "
             f"{f['gallery_mb']:.0f} MB; process {f['rss_process_mb']:.0f} MB, peak while loading "
             f"{f['peak_load_mb']:.0f} MB)",
             f"{f['entries']:,} entries match: {f['ms_per_face_frame']:.2f} ms per face (median; best "
             f"{f['ms_per_face_frame_best']:.2f}) with {f['faces']} faces together (target <= 2 ms); "
             f"{f['ms_per_face_single']:.2f} ms for a lone face"]
    if "million" in f:
        m = f["million"]
        lines.append(f"{m['entries']:,} entries: {m['ms_per_face_frame']:.1f} ms per face (median; best "
                     f"{m['ms_per_face_frame_best']:.1f}) with {f['faces']} faces together (target <= 40 ms), "
                     f"{m['ms_per_face_single']:.1f} ms for a lone face; gallery "
                     f"{m['rss_loaded_mb']:.0f} MB resident (array {m['gallery_mb']:.0f} MB), process peak "
                     f"{m['peak_process_mb']:.0f} MB (target: fits in 1 GB)")
    return lines
