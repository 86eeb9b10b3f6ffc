"""`edge bench watchlist`: real watchlists of two sizes built, installed, loaded and matched; each figure with the
machine, the thread count and the target it is held to.

    edge bench watchlist [--gallery-size 100000] [--million 1000000] [--repeats 30] [--storage bfloat16] [--report FILE]

Each size gets a real bundle (random L2-normalised embeddings stand in for enrolled faces; every entry has its
id, label, case reference, legal basis, approver and times, as a real list does), installed as a device installs
one: from the chunks MQTT delivers (spooled to disk by the link's own reassembler) and from a file; then loaded
as the daemon loads it at start, and matched with a lone face and with the eight faces of one frame. Installing,
loading and matching run in fresh processes (edge.bench.watchlist_child) with BLAS fixed to one thread before
numpy loads, as on a device whose other cores capture and infer; a peak is the whole process's. This process
only builds the bundles. Memory is in MB of 10^6 bytes.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge.bench.procinfo import cpu_model
from edge.bench.watchlist_child import unit_rows
from edge.config.embedder import DEFAULT_EMBEDDER
from edge.fsio import write_atomic
from edge.keys import generate_encryption, generate_signing, save_private, save_public
from edge.models import Manifest
from edge.watchlist.bundle import BundleSpec, EmbedderRef
from edge.watchlist.entries import WatchlistEntry
from edge.watchlist.sealing import Subject, seal

EMBEDDER = DEFAULT_EMBEDDER  # its dimension sets the list's size in memory
THREADS = 1
SINGLE_THREAD = {var: str(THREADS) for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass(frozen=True)
class Target:
    """At most `limit`, set for a list of `entries`; it holds for every list up to that size."""

    entries: int
    limit: float


TARGETS: dict[str, tuple[Target, ...]] = {  # docs/evaluation.md, "Watchlist at scale"
    "lone_face_ms": (Target(100_000, 2.0),),
    "batch8_ms_per_face": (Target(100_000, 0.5), Target(1_000_000, 10.0)),
    "install_peak_mb": (Target(1_000_000, 1100.0),),
}
UNITS = {"lone_face_ms": "ms", "batch8_ms_per_face": "ms per face", "install_peak_mb": "MB", "loaded_mb": "MB"}
NO_TARGET = {"loaded_mb": "no target of its own: it is what an install keeps, inside the install peak"}


def run_watchlist_bench(args: argparse.Namespace) -> int:
    spec = Manifest.load().spec(EMBEDDER)
    figures: dict = {"command": _command(args), "machine": cpu_model(), "threads": THREADS,
                     "python": platform.python_version(), "load_average": os.getloadavg()[0],
                     "storage": args.storage, "embedder": EMBEDDER, "dim": spec.dim, "memory_unit": "MB = 10^6 bytes",
                     "lists": []}
    with tempfile.TemporaryDirectory(prefix="edge-wl-bench-") as tmp:
        for n in [args.entries] + ([args.million] if args.million else []):
            folder = Path(tmp) / str(n)
            figures["lists"].append(_one_list(args, n, folder, figures, spec.sha256, spec.dim or 0))
            shutil.rmtree(folder)  # a 1,000,000-entry list leaves 1.2 GB of bundles behind
    for line in _report(figures):
        print(line)
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _one_list(args: argparse.Namespace, n: int, folder: Path, common: dict, sha: str, dim: int) -> dict:
    folder.mkdir()
    hq, device = generate_signing(), generate_encryption()
    save_private(device, folder / "device.key")
    save_public(hq.public_key(), folder / "hq.pub")
    now = datetime.now(timezone.utc)
    bundle_spec = BundleSpec(watchlist_id="bench", version=1, issued=now, not_before=now,
                             expires=now + timedelta(days=1), scope="bench",
                             embedder=EmbedderRef(name=EMBEDDER, sha256=sha, dim=dim))
    t = time.perf_counter()
    data = seal(bundle_spec, _subjects(n, dim), [("bench-device", device.public_key())], hq)
    write_atomic(folder / "bench.bundle", data)
    out: dict = {"entries": n, "build_s": time.perf_counter() - t, "bundle_mb": len(data) / 1e6}
    del data

    def held(name: str, value: float, **extra: float) -> dict:
        return figure(name, value, n, common, **extra)

    mqtt, file, load = (_child(args, kind, folder, sha, dim) for kind in ("install_mqtt", "install_file", "load"))
    out.update(install_s={"mqtt": mqtt["install_s"], "file": file["install_s"]}, load_s=load["load_s"],
               rss_before_install_mb=file["rss_before_mb"], gallery_array_mb=load["gallery_array_mb"],
               rss_after_matching_mb=load["rss_after_matching_mb"])
    out["install_peak_mb"] = {"mqtt": held("install_peak_mb", mqtt["peak_mb"]),
                              "file": held("install_peak_mb", file["peak_mb"])}
    out["loaded_mb"] = held("loaded_mb", load["loaded_mb"])
    out["lone_face_ms"] = held("lone_face_ms", load["lone_ms"], best=load["lone_ms_best"])
    out["batch8_ms_per_face"] = held("batch8_ms_per_face", load["batch8_ms"], best=load["batch8_ms_best"])
    return out


def figure(name: str, value: float, entries: int, common: dict, **extra: float) -> dict:
    """A figure with where it was measured and the target it is held to: the one set for the smallest list size
    at or above `entries`."""
    target = next((t for t in TARGETS.get(name, ()) if entries <= t.entries), None)
    if target is None:
        rule = NO_TARGET.get(name, f"no target for lists of {entries:,} entries")
    else:
        rule = f"at most {target.limit:,g} {UNITS[name]} at {target.entries:,} entries"
        rule += "" if entries == target.entries else " (held to every list up to that size)"
    return {"value": round(value, 3), **{k: round(v, 3) for k, v in extra.items()},
            "target": target.limit if target else None, "target_rule": rule,
            "met": value <= target.limit if target else None, "machine": common["machine"],
            "threads": common["threads"]}


def _child(args: argparse.Namespace, kind: str, folder: Path, sha: str, dim: int) -> dict:
    cmd = [sys.executable, "-m", "edge.bench.watchlist_child", "--child", kind, "--dir", str(folder),
           "--repeats", str(args.repeats), "--storage", args.storage]
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


def _command(args: argparse.Namespace) -> str:
    words = ["edge bench watchlist", f"--gallery-size {args.entries}", f"--million {args.million}",
             f"--repeats {args.repeats}", f"--storage {args.storage}"]
    return " ".join(words + ([f"--report {args.json_out}"] if args.json_out else []))


def _report(f: dict) -> list[str]:
    def judged(*figs: dict) -> str:
        verdicts = ["" if fig["met"] is None else "met" if fig["met"] else "MISSED" for fig in figs]
        return f"{figs[0]['target_rule']}{': ' if any(verdicts) else ''}{', '.join(v for v in verdicts if v)}"

    lines = [f"{f['machine']}, {f['threads']} thread, Python {f['python']}, load average {f['load_average']:.1f} at "
             f"start; gallery {f['storage']}, {f['embedder']} ({f['dim']}-d); memory in MB of 10^6 bytes"]
    for w in f["lists"]:
        peak, lone, batch = w["install_peak_mb"], w["lone_face_ms"], w["batch8_ms_per_face"]
        lines += [
            f"{w['entries']:,} entries: bundle {w['bundle_mb']:.1f} MB built in {w['build_s']:.1f} s; installed in "
            f"{w['install_s']['mqtt']:.1f} s from MQTT chunks, {w['install_s']['file']:.1f} s from a file; loaded at "
            f"start in {w['load_s']:.1f} s",
            f"  install peak, whole process: {peak['mqtt']['value']:.0f} MB from MQTT chunks, "
            f"{peak['file']['value']:.0f} MB from a file ({w['rss_before_install_mb']:.0f} MB before installing; "
            f"{judged(peak['mqtt'], peak['file'])})",
            f"  loaded: {w['loaded_mb']['value']:.0f} MB resident, gallery array {w['gallery_array_mb']:.0f} MB and "
            f"entries {w['loaded_mb']['value'] - w['gallery_array_mb']:.0f} MB; process "
            f"{w['rss_after_matching_mb']:.0f} MB after matching",
            f"  lone face {lone['value']:.2f} ms (best {lone['best']:.2f}; {judged(lone)})",
            f"  eight faces {batch['value']:.2f} ms per face (best {batch['best']:.2f}; {judged(batch)})",
        ]
    return lines
