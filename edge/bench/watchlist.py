"""Watchlist at scale: build and install a large bundle, load it, match against it, and its memory.

    python -m edge.watchlist.bench [--entries 100000] [--million 1000000] [--faces 8]

Single-threaded on purpose (BLAS threads set to 1 before numpy loads): the device shares its cores
with capture and inference. Synthetic random L2-normalised embeddings stand in for enrolled faces;
real photos are covered by the tests. Loading and matching run in fresh processes so that their
resident memory is the watchlist's alone.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402  (BLAS threads must be fixed before numpy is imported)
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from edge.config.watchlist import WatchlistConfig  # noqa: E402
from edge.fsio import write_atomic  # noqa: E402
from edge.keys import (  # noqa: E402
    generate_encryption,
    generate_signing,
    load_encryption_private,
    load_signing_public,
    save_private,
    save_public,
)
from edge.models import Manifest  # noqa: E402
from edge.watchlist.bundle import BundleSpec, EmbedderRef, Subject, seal  # noqa: E402
from edge.watchlist.entries import WatchlistEntry  # noqa: E402
from edge.watchlist.match import Gallery, match, to_bfloat16  # noqa: E402
from edge.watchlist.store import WatchlistStore  # noqa: E402

EMBEDDER = "mobilefacenet_192"
DIM = 192


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.watchlist.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=100_000, help="bundle size to build, install and match")
    parser.add_argument("--million", type=int, default=1_000_000, help="gallery size for the large match (0: skip)")
    parser.add_argument("--faces", type=int, default=8, help="faces of one frame matched together")
    parser.add_argument("--repeats", type=int, default=30, help="timed repetitions (median reported)")
    parser.add_argument("--storage", choices=("bfloat16", "float32"), default="bfloat16", help="gallery storage")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", choices=("install", "install_file", "load", "gallery"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        children = {"install": _install_child, "install_file": _install_child, "load": _load_child,
                    "gallery": _gallery_child}
        print(json.dumps(children[args.child](args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="edge-wl-bench-") as tmp:
        figures = _run(args, Path(tmp))
    for line in _report(figures, args):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def _run(args: argparse.Namespace, folder: Path) -> dict:
    sha = Manifest.load().spec(EMBEDDER).sha256
    hq, device = generate_signing(), generate_encryption()
    save_private(device, folder / "device.key")
    save_public(hq.public_key(), folder / "hq.pub")
    figures: dict = {"cpu": _cpu(), "load_average": os.getloadavg()[0], "entries": args.entries,
                     "faces": args.faces, "storage": args.storage}

    subjects = _subjects(args.entries)
    now = datetime.now(timezone.utc)
    spec = BundleSpec(watchlist_id="bench", version=1, issued=now, not_before=now, expires=now + timedelta(days=1),
                      scope="bench", embedder=EmbedderRef(name=EMBEDDER, sha256=sha, dim=DIM))
    t = time.perf_counter()
    data = seal(spec, subjects, [("bench-device", device.public_key())], hq)
    write_atomic(folder / "bench.bundle", data)
    figures["build_s"] = time.perf_counter() - t
    figures["bundle_mb"] = len(data) / 1e6
    del data, subjects

    figures.update(_child(args, "install", folder, sha))
    figures.update(_child(args, "install_file", folder, sha))
    figures.update(_child(args, "load", folder, sha))
    if args.million:
        figures["million"] = _child(args, "gallery", folder, sha)
    return figures


def _child(args: argparse.Namespace, kind: str, folder: Path, sha: str) -> dict:
    cmd = [sys.executable, "-m", "edge.watchlist.bench", "--child", kind, "--dir", str(folder), "--faces",
           str(args.faces), "--repeats", str(args.repeats), "--storage", args.storage, "--entries",
           str(args.entries), "--million", str(args.million)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "EDGE_BENCH_SHA": sha})
    if done.returncode != 0:
        raise SystemExit(f"bench {kind} process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _store(args: argparse.Namespace, name: str = "device") -> WatchlistStore:
    folder: Path = args.dir
    return WatchlistStore.open(folder / name, device_key=load_encryption_private(folder / "device.key"),
                               hq_public=load_signing_public(folder / "hq.pub"),
                               embedder_sha256=os.environ["EDGE_BENCH_SHA"],
                               config=WatchlistConfig(gallery_storage=args.storage))


def _install_child(args: argparse.Namespace) -> dict:
    """Install the bundle on an empty device store: its bytes read into memory first, as MQTT delivers it
    (`install`), or the file itself (`install_file`). Peak resident memory includes those bytes."""
    from_file = args.child == "install_file"
    store = _store(args, "device-file" if from_file else "device")
    rss_start = _memory()["rss_mb"]
    t = time.perf_counter()
    bundle = args.dir / "bench.bundle"
    result = store.install(bundle if from_file else bundle.read_bytes())
    if result.outcome != "installed":
        raise SystemExit(f"install refused: {result.refusal}")
    prefix = "install_file" if from_file else "install"
    return {f"{prefix}_s": time.perf_counter() - t, f"rss_before_{prefix}_mb": rss_start,
            f"peak_{prefix}_mb": _memory()["hwm_mb"]}


def _load_child(args: argparse.Namespace) -> dict:
    """Load the installed watchlist as the daemon does at start (verify, decrypt), its memory, and match."""
    rss_start = _memory()["rss_mb"]
    t = time.perf_counter()
    wl = _store(args).current
    figures = {"load_s": time.perf_counter() - t, "rss_loaded_mb": _memory()["rss_mb"] - rss_start,
               "rss_process_mb": _memory()["rss_mb"], "peak_load_mb": _memory()["hwm_mb"],
               "gallery_mb": wl.gallery.embeddings.nbytes / 1e6}
    figures.update(_time_match(wl.gallery, args.faces, args.repeats, now=time.time()))
    return figures


def _gallery_child(args: argparse.Namespace) -> dict:
    """A gallery of `--million` subjects (ids and labels included) built in place, and matched."""
    n = args.million
    rss_start = _memory()["rss_mb"]
    embeddings = np.empty((n, DIM), np.uint16 if args.storage == "bfloat16" else np.float32)
    for a in range(0, n, 65536):
        rows = _unit_rows(min(65536, n - a), seed=a)
        embeddings[a: a + len(rows)] = to_bfloat16(rows) if args.storage == "bfloat16" else rows
    gallery = Gallery(embeddings, np.arange(n, dtype=np.int32), tuple(f"S{i:07d}" for i in range(n)),
                      np.full(n, np.inf), tuple(f"Person {i}" for i in range(n)))
    figures = {"entries": n, "rss_loaded_mb": _memory()["rss_mb"] - rss_start,
               "gallery_mb": embeddings.nbytes / 1e6}
    figures.update(_time_match(gallery, args.faces, max(5, args.repeats // 5), now=0.0))
    figures.update({"rss_process_mb": _memory()["rss_mb"], "peak_process_mb": _memory()["hwm_mb"]})
    return figures


def _time_match(gallery: Gallery, faces: int, repeats: int, now: float) -> dict:
    """Median (and best) ms per face, the frame's faces matched together and one at a time."""
    probes = _unit_rows(faces, seed=7)
    out = {}
    for label, batch in (("frame", probes), ("single", probes[:1])):
        match(gallery, batch, now)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            match(gallery, batch, now)
            times.append(time.perf_counter() - t)
        out[f"ms_per_face_{label}"] = float(np.median(times)) * 1e3 / len(batch)
        out[f"ms_per_face_{label}_best"] = float(np.min(times)) * 1e3 / len(batch)
    return out


def _subjects(n: int) -> list[Subject]:
    now = datetime.now(timezone.utc)
    rows = _unit_rows(n, seed=1)
    expires = now + timedelta(days=30)
    return [Subject(WatchlistEntry.model_construct(
        subject_id=f"S{i:07d}", label=f"Person {i}", category="wanted", case_reference=f"CASE-2025-{i:07d}",
        legal_basis="Court order 17/2025", approver="Insp. Kaur", added=now, expires=expires), rows[i: i + 1])
        for i in range(n)]


def _unit_rows(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _memory() -> dict:
    """Resident and peak resident memory of this process (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "hwm_mb": int(fields["VmHWM"].split()[0]) / 1024}


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


if __name__ == "__main__":
    sys.exit(main())
