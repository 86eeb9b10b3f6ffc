"""The child processes of `edge bench watchlist`: install, load and match, each in a fresh process.

    python -m edge.bench.watchlist_child --child install|install_file|load|gallery --dir DIR [options]

Started by edge.bench.watchlist with BLAS threads fixed to 1 in its environment and the embedder's sha256 in
$EDGE_BENCH_SHA (dimension $EDGE_BENCH_DIM); prints its figures as one JSON line.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edge.config.watchlist import WatchlistConfig
from edge.keys import load_encryption_private, load_signing_public
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.match import Gallery, match, to_bfloat16
from edge.watchlist.store import WatchlistStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.bench.watchlist_child")
    parser.add_argument("--child", choices=("install", "install_file", "load", "gallery"), required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--entries", type=int, required=True)
    parser.add_argument("--million", type=int, required=True)
    parser.add_argument("--faces", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--storage", choices=("bfloat16", "float32"), required=True)
    args = parser.parse_args(argv)
    children = {"install": _install_child, "install_file": _install_child, "load": _load_child,
                "gallery": _gallery_child}
    print(json.dumps(children[args.child](args)))
    return 0


def _store(args: argparse.Namespace, name: str = "device") -> WatchlistStore:
    folder: Path = args.dir
    return WatchlistStore.open(folder / name, device_key=load_encryption_private(folder / "device.key"),
                               hq_public=load_signing_public(folder / "hq.pub"),
                               embedders=DeviceEmbedders.only("bench", os.environ["EDGE_BENCH_SHA"]),
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
    embeddings = np.empty((n, _dim()), np.uint16 if args.storage == "bfloat16" else np.float32)
    for a in range(0, n, 65536):
        rows = unit_rows(min(65536, n - a), seed=a)
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
    probes = unit_rows(faces, seed=7)
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


def _dim() -> int:
    return int(os.environ["EDGE_BENCH_DIM"])


def unit_rows(n: int, seed: int, dim: int | None = None) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim or _dim()), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _memory() -> dict:
    """Resident and peak resident memory of this process (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "hwm_mb": int(fields["VmHWM"].split()[0]) / 1024}


if __name__ == "__main__":
    sys.exit(main())
