"""Link benchmark: N signed match events from a device process, through a real mosquitto, into the HQ store.

    python -m edge.link.bench [--events 10000] [--workers 1] [--sync normal|full]

Builds a throwaway fleet (CA, certificates, ACL) in a temporary folder, starts mosquitto with the deploy
configuration on a free loopback port, runs HQ ingest worker(s) in this process and the device uplink
(outbox + publisher) in a child process, and prints events per second from the first enqueue to the last
event committed at HQ. `python -m edge.link.bench device …` is that child: it sends synthetic events
through a real Uplink and is also what the tests kill with SIGKILL.
"""

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tqdm import tqdm

from edge.config.link import LinkConfig
from edge.hq import pki
from edge.hq.acl import Registry, write_acl
from edge.hq.broker import LocalBroker
from edge.hq.ingest import Ingest, PublicKeys
from edge.hq.store import EventStore
from edge.link.uplink import Uplink
from edge.protocol.messages import Box, MatchEvent, ModelHashes, WatchlistRef, utc_now
from edge.protocol.topics import Identity

_NAMESPACE = uuid.UUID("6f1c3a52-8f0e-4c4e-9a51-1d5f0b8f2a10")
_HASH = "ab" * 32


def synthetic_event_id(device: str, index: int) -> str:
    """Deterministic event id, so a restarted sender re-sends index i under the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"{device}/{index}"))


def synthetic_match(device: str, index: int) -> MatchEvent:
    return MatchEvent(
        event_id=synthetic_event_id(device, index), device=device, camera="cam0", track=index,
        observed_at=utc_now(), subject_id=f"subject-{index % 50}", label="Test Subject", category="test",
        case_ref="BENCH-0", score=0.71, threshold=0.5, margin=0.2, probe_quality=0.9,
        box=Box(x1=10, y1=20, x2=110, y2=140), watchlist=WatchlistRef(id="bench", version=1, sha256=_HASH),
        models=ModelHashes(detector=_HASH, embedder=_HASH),
    )


def device_main(argv: list[str]) -> int:
    """Child process: enqueue events `first`..`count-1`, print each index once committed, wait until drained."""
    parser = argparse.ArgumentParser(prog="python -m edge.link.bench device")
    parser.add_argument("--config", type=Path, required=True, help="LinkConfig as JSON")
    parser.add_argument("--key", type=Path, required=True, help="device Ed25519 private key (PEM)")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="do not print each index")
    args = parser.parse_args(argv)
    uplink = Uplink(LinkConfig.model_validate_json(args.config.read_text()), args.key)
    uplink.start()
    print("ready", flush=True)
    for i in range(args.first, args.count):
        uplink.send_match(synthetic_match(uplink.device_id, i))
        if not args.quiet:
            print(i, flush=True)
    drained = uplink.wait_drained(300.0)
    print("drained" if drained else "not drained", flush=True)
    uplink.stop()
    return 0 if drained else 1


def _fleet(root: Path, device: str, workers: int) -> Path:
    """CA, certificates, ACL, device signing key and its public key for HQ, all under `root`."""
    pki.init_ca(root / "ca")
    registry = Registry()
    for identity in [Identity("device", device)] + [Identity("hq", f"ingest{i}") for i in range(workers)]:
        pki.issue(root / "ca", identity, root / "certs")
        registry.add(identity)
    write_acl(registry, root / "acl")
    key = Ed25519PrivateKey.generate()
    (root / "keys").mkdir()
    (root / "keys" / f"{device}.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (root / "device.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return root / "certs"


def bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.link.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1, help="HQ ingest workers sharing the stream")
    parser.add_argument("--sync", choices=("normal", "full"), default="full", help="device outbox SQLite sync mode")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edge-link-bench-") as tmp:
        root = Path(tmp)
        certs = _fleet(root, "bench", args.workers)
        broker = LocalBroker(root / "broker", root / "ca", root / "acl")
        broker.start()

        def config(name: str, **extra: object) -> LinkConfig:
            return LinkConfig(host="127.0.0.1", port=broker.port, ca=certs / "ca.crt", cert=certs / f"{name}.crt",
                              key=certs / f"{name}.key", **extra)  # type: ignore[arg-type]

        store = EventStore.open(str(root / "hq.sqlite"))
        group = "bench" if args.workers > 1 else None  # several workers split the stream (shared subscription)
        workers = [Ingest(config(f"hq-ingest{i}"), store, PublicKeys(root / "keys"), group)
                   for i in range(args.workers)]
        for worker in workers:
            worker.start()
            worker.wait_connected(10)
        (root / "device.json").write_text(
            config("device-bench", outbox=root / "outbox.sqlite", outbox_sync=args.sync).model_dump_json()
        )
        child = subprocess.Popen(
            [sys.executable, "-m", "edge.link.bench", "device", "--config", str(root / "device.json"),
             "--key", str(root / "device.key"), "--count", str(args.events), "--quiet"],
            stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None
        child.stdout.readline()  # "ready": the clock starts at the first enqueue
        start = time.perf_counter()
        with tqdm(total=args.events, unit="event", desc="stored at HQ") as bar:
            while (stored := store.count()) < args.events and child.poll() in (None, 0):
                bar.update(stored - bar.n)
                time.sleep(0.05)
            bar.update(store.count() - bar.n)
        elapsed = time.perf_counter() - start
        child.wait(60)
        for worker in workers:
            worker.stop()
        broker.stop()
        stored = store.count()
        store.close()
        duplicates = sum(w.stats.duplicates for w in workers)
        print(f"{stored} of {args.events} events stored exactly once in {elapsed:.2f} s: "
              f"{stored / elapsed:.0f} events/s end to end (device outbox sync={args.sync}, "
              f"{args.workers} ingest worker(s), {duplicates} duplicate deliveries absorbed)")
        return 0 if stored == args.events else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["device"]:
        return device_main(argv[1:])
    return bench_main(argv)


if __name__ == "__main__":
    sys.exit(main())
