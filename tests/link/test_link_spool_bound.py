"""Watchlist chunks for unknown or oversized bundles, through the real broker, cannot grow a device's memory or
spool past its largest-bundle setting; a genuine bundle still arrives after them."""

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

from link_helpers import Broker

from edge.config.link import LinkConfig
from edge.link.chunks import chunk_topic, manifest_topic, publish_bundle
from edge.link.uplink import Bundle, Uplink
from edge.protocol import topics
from edge.protocol.canonical import encode
from edge.protocol.messages import BundleChunk, BundleManifest, utc_now

MAX_BUNDLE = 4 << 20  # the device's watchlist.max_bundle_mb here
PIECE = 900 << 10  # each hostile chunk (the broker's max_packet_size is 1 MiB)

# The attacker publishes from its own process, so that the device's memory is measured alone (a publisher's
# outgoing queue of 105 MiB in the same process would be counted too).
PUBLISH = """
import json, queue, sys
from pathlib import Path
from edge.config.link import LinkConfig
from edge.link.mqtt import MqttClient
config, folder = LinkConfig.model_validate_json(sys.argv[1]), Path(sys.argv[2])
client = MqttClient(config)
client.start()
client.wait_connected(10)
acks = queue.Queue()
topics = json.loads((folder / "topics.json").read_text())
for n, topic in enumerate(topics):
    client.publish(topic, (folder / str(n)).read_bytes(), False, acks.put)
assert all(acks.get(timeout=60).ok for _ in topics)
client.stop()
"""


def prepare(messages: list[tuple[str, bytes]], folder: Path) -> Path:
    """The messages as files for PUBLISH to send."""
    folder.mkdir()
    (folder / "topics.json").write_text(json.dumps([topic for topic, _ in messages]))
    for n, (_, data) in enumerate(messages):
        (folder / str(n)).write_bytes(data)
    return folder


def publish_elsewhere(config: LinkConfig, folder: Path) -> None:
    subprocess.run([sys.executable, "-c", PUBLISH, config.model_dump_json(), str(folder)], check=True, timeout=120)


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def disk_mib(folder: Path) -> float:
    total = 0
    for f in folder.iterdir():
        try:
            total += f.stat().st_blocks * 512
        except FileNotFoundError:  # removed by the reassembler between the listing and the look
            continue
    return total / (1 << 20)


def test_chunks_of_unknown_and_huge_bundles_stay_within_the_bundle_limit(broker: Broker, tmp_path: Path) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    config = broker.config("device-a")
    spool = config.outbox.parent / config.bundle_spool
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:  # the spool's disk use, every 10 ms
        while not done.wait(0.01):
            peak[0] = max(peak[0], disk_mib(spool))

    def on_bundle(bundle: Bundle) -> None:
        got.put(bundle.path.read_bytes())

    device = Uplink(config, broker.fleet.signing_key("a"), on_bundle=on_bundle, max_bundle_bytes=MAX_BUNDLE)
    device.start()
    device.wait_connected(5)
    prefix = topics.device_bundle("a")
    sampler = threading.Thread(target=sample)
    sampler.start()
    piece = os.urandom(PIECE)
    digest = hashlib.sha256(piece).hexdigest()
    huge = BundleManifest(sha256="ab" * 32, size=1 << 40, chunks=1 << 20, chunk_bytes=PIECE, published_at=utc_now())
    attack = [(manifest_topic(prefix), encode(huge.body()))]  # announced: 1 TiB
    for n in range(120):  # 105 MiB of chunks: of one unknown 1 TiB bundle, then of ten small unknown ones
        count, sha = (1 << 20, "cd" * 32) if n < 60 else (5, hashlib.sha256(bytes([n % 10])).hexdigest())
        header = BundleChunk(sha256=sha, index=n % count if n < 60 else n % 4, count=count, digest=digest)
        attack.append((chunk_topic(prefix, n), encode(header.body()) + b"\n" + piece))
    folder = prepare(attack, tmp_path / "attack")
    del attack, piece
    try:
        before = rss_mib()
        publish_elsewhere(broker.config("hq-publisher"), folder)
        wanted = b"the genuine bundle" * 100_000  # 1.7 MiB, under the limit
        publish_bundle(broker.config("hq-publisher"), prefix, wanted)
        assert got.get(timeout=30) == wanted
        grown = rss_mib() - before
        print(f"RSS {before:.0f} -> {before + grown:.0f} MiB after 105 MiB of hostile chunks; "
              f"spool at most {peak[0]:.1f} MiB; refusals {device.refusals}")
        assert peak[0] <= MAX_BUNDLE / (1 << 20)  # never more than one bundle's worth on disk
        assert grown < 40  # not the 105 MiB sent
        assert device.refusals["oversized"] >= 61  # the huge manifest and every chunk of the 1 TiB bundle
    finally:
        done.set()
        sampler.join()
        device.stop()
