"""The child processes of `edge bench watchlist`: install, load and match, each in a fresh process.

    python -m edge.bench.watchlist_child --child install_mqtt|install_file|load --dir DIR [options]

Started by edge.bench.watchlist with BLAS threads fixed to 1 in its environment and the embedder's sha256 in
$EDGE_BENCH_SHA (dimension $EDGE_BENCH_DIM); prints its figures as one JSON line. Memory in MB of 10^6 bytes.
"""

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edge.bench.procinfo import memory_mb
from edge.config.link import LinkConfig
from edge.config.watchlist import WatchlistConfig
from edge.keys import load_encryption_private, load_signing_public
from edge.link.chunks import MANIFEST, Reassembler, Spooled, chunk_payload
from edge.protocol.canonical import encode
from edge.protocol.messages import BundleManifest, utc_now
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.match import Gallery, match
from edge.watchlist.store import WatchlistStore

PREFIX = "edge/v1/fleets/bench/watchlist"
FACES = 8  # a frame's faces, matched together


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.bench.watchlist_child")
    parser.add_argument("--child", choices=("install_mqtt", "install_file", "load"), required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--storage", choices=("bfloat16", "float32"), required=True)
    args = parser.parse_args(argv)
    children = {"install_mqtt": _install_child, "install_file": _install_child, "load": _load_child}
    print(json.dumps(children[args.child](args)))
    return 0


def _store(args: argparse.Namespace, name: str) -> WatchlistStore:
    folder: Path = args.dir
    return WatchlistStore.open(folder / name, device_key=load_encryption_private(folder / "device.key"),
                               hq_public=load_signing_public(folder / "hq.pub"),
                               embedders=DeviceEmbedders.only("bench", os.environ["EDGE_BENCH_SHA"]),
                               config=WatchlistConfig(follow=("bench",), gallery_storage=args.storage))


def _install_child(args: argparse.Namespace) -> dict:
    """Install the bundle on an empty device store as the daemon does: from the chunks MQTT delivers, one message
    at a time through the link's reassembler into its spool file (`install_mqtt`), or from the file itself."""
    from_mqtt = args.child == "install_mqtt"
    store = _store(args, "device-mqtt" if from_mqtt else "device-file")
    bundle = args.dir / "bench.bundle"
    rss_before = memory_mb()[0]
    t = time.perf_counter()
    spooled = _delivered(bundle, args.dir / "spool") if from_mqtt else None
    result = store.install(spooled.path if spooled else bundle)
    if result.outcome != "installed":
        raise SystemExit(f"install refused: {result.refusal}")
    elapsed = time.perf_counter() - t
    if spooled:
        spooled.path.unlink()  # as the link does once the handler returns
    return {"install_s": elapsed, "rss_before_mb": rss_before, "peak_mb": memory_mb()[1]}


def _delivered(bundle: Path, spool: Path) -> Spooled:
    """The bundle as a device's link receives it: chunk messages of the default size, then the manifest."""
    chunk_bytes = LinkConfig().chunk_bytes
    digest, size = hashlib.sha256(), bundle.stat().st_size
    with open(bundle, "rb") as file:
        while block := file.read(chunk_bytes):
            digest.update(block)
    manifest = BundleManifest(sha256=digest.hexdigest(), size=size, chunks=-(-size // chunk_bytes),
                              chunk_bytes=chunk_bytes, published_at=utc_now())
    reassembler = Reassembler(spool, max(size, WatchlistConfig().max_bundle_bytes))
    with open(bundle, "rb") as file:
        for i in range(manifest.chunks):
            reassembler.feed(PREFIX, "chunk", chunk_payload(manifest, i, file.read(chunk_bytes)))
    spooled = reassembler.feed(PREFIX, MANIFEST, encode(manifest.body()))
    if spooled is None:
        raise SystemExit("the reassembler did not hand over the bundle")
    return spooled


def _load_child(args: argparse.Namespace) -> dict:
    """Load the installed watchlist as the daemon does at start (verify, decrypt), its memory, and match."""
    rss_before = memory_mb()[0]
    t = time.perf_counter()
    wl = _store(args, "device-file").current
    if wl is None:
        raise SystemExit("no watchlist loaded")
    figures = {"load_s": time.perf_counter() - t, "loaded_mb": memory_mb()[0] - rss_before,
               "gallery_array_mb": wl.gallery.embeddings.nbytes / 1e6}
    figures.update(_time_match(wl.gallery, args.repeats, now=time.time()))
    figures["rss_after_matching_mb"] = memory_mb()[0]
    return figures


def _time_match(gallery: Gallery, repeats: int, now: float) -> dict:
    """Median and best ms per face of `match()`: a lone face, and a frame's eight faces matched together."""
    probes = unit_rows(FACES, seed=7)
    out = {}
    for label, batch in (("lone", probes[:1]), ("batch8", probes)):
        match(gallery, batch, now)  # warm: whatever the matcher prepares once is not timed
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            match(gallery, batch, now)
            times.append(time.perf_counter() - t)
        out[f"{label}_ms"] = float(np.median(times)) * 1e3 / len(batch)
        out[f"{label}_ms_best"] = float(np.min(times)) * 1e3 / len(batch)
    return out


def unit_rows(n: int, seed: int, dim: int | None = None) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim or int(os.environ["EDGE_BENCH_DIM"])), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


if __name__ == "__main__":
    sys.exit(main())
