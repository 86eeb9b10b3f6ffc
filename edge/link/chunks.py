"""Watchlist bundles as retained MQTT messages: split into chunks under one topic prefix, reassembled and
checked on the device.

Layout under a prefix (`topics.fleet_bundle(f)` or `topics.device_bundle(d)`), all retained, QoS 1:
`<prefix>/chunk/<i>` = `<BundleChunk header JSON>\\n<raw bytes>`, then `<prefix>/manifest` = BundleManifest.
Chunks are published before the manifest, so a manifest never names chunks the broker does not hold.
A device that connects later gets every retained piece on subscribe; pieces arrive in any order. Each
chunk carries its own sha256 (a bad chunk is dropped alone) and the bundle is handed over once all chunks
of the manifest's bundle are in and the whole matches the manifest's sha256. The bundle is opaque bytes
here: signature, decryption and rollback checks belong to edge.watchlist.
"""

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from edge.config.link import LinkConfig
from edge.link.mqtt import Ack, Incoming, LinkError, MqttClient
from edge.protocol.canonical import encode
from edge.protocol.messages import BundleChunk, BundleManifest, decode, utc_now
from edge.protocol.refused import Refused

log = logging.getLogger(__name__)

MANIFEST = "manifest"
CHUNK = "chunk"
_KEEP_GROUPS = 3


def manifest_topic(prefix: str) -> str:
    return f"{prefix}/{MANIFEST}"


def chunk_topic(prefix: str, index: int) -> str:
    return f"{prefix}/{CHUNK}/{index}"


def split(data: bytes, chunk_bytes: int) -> tuple[BundleManifest, list[bytes]]:
    """The manifest and the chunk payloads (header line + raw slice) for `data`."""
    if not data:
        raise ValueError("a bundle cannot be empty")
    digest = hashlib.sha256(data).hexdigest()
    count = -(-len(data) // chunk_bytes)
    manifest = BundleManifest(
        sha256=digest, size=len(data), chunks=count, chunk_bytes=chunk_bytes, published_at=utc_now()
    )
    payloads = []
    for i in range(count):
        piece = data[i * chunk_bytes : (i + 1) * chunk_bytes]
        header = BundleChunk(sha256=digest, index=i, count=count, digest=hashlib.sha256(piece).hexdigest())
        payloads.append(encode(header.body()) + b"\n" + piece)
    return manifest, payloads


def publish_bundle(config: LinkConfig, prefix: str, data: bytes, timeout: float = 120.0) -> BundleManifest:
    """Publish `data` retained under `prefix` and wait for every PUBACK; clear chunks left by a larger predecessor.

    Raises LinkError when the broker is unreachable, refuses a piece (ACL), or does not answer in time.
    """
    manifest, payloads = split(data, config.chunk_bytes)
    previous: list[BundleManifest] = []
    got_previous = threading.Event()

    def on_message(message: Incoming) -> None:
        if message.topic == manifest_topic(prefix) and message.payload:
            try:
                _, old = decode(message.payload)
            except Refused as exc:
                log.warning("previous manifest on %s is unreadable: %s", message.topic, exc)
                return
            if isinstance(old, BundleManifest):
                previous.append(old)
        got_previous.set()

    client = MqttClient(config, on_message=on_message)
    client.start()
    try:
        client.wait_connected(min(timeout, 30.0))
        client.subscribe([manifest_topic(prefix)])
        if not client.wait_subscribed(10.0)[manifest_topic(prefix)].ok:
            raise LinkError(f"broker refused {client.identity.name} access to {manifest_topic(prefix)}: check the ACL")
        got_previous.wait(0.5)  # a retained manifest follows the SUBACK at once when there is one
        old_count = max((m.chunks for m in previous), default=0)
        _publish_all(client, [(chunk_topic(prefix, i), p) for i, p in enumerate(payloads)], timeout)
        _publish_all(client, [(manifest_topic(prefix), encode(manifest.body()))], timeout)
        _publish_all(client, [(chunk_topic(prefix, i), b"") for i in range(manifest.chunks, old_count)], timeout)
    finally:
        client.stop()
    return manifest


def _publish_all(client: MqttClient, messages: list[tuple[str, bytes]], timeout: float) -> None:
    if not messages:
        return
    done = threading.Semaphore(0)
    refused: list[str] = []

    def acked(topic: str) -> Callable[[Ack], None]:
        def on_ack(ack: Ack) -> None:
            if not ack.ok:
                refused.append(f"{topic}: {ack.reason}")
            done.release()

        return on_ack

    for topic, payload in messages:
        client.publish(topic, payload, retain=True, on_ack=acked(topic))
    for _ in messages:
        if not done.acquire(timeout=timeout):
            raise LinkError(f"broker {client.address} stopped acknowledging the bundle: {client.last_error}")
    if refused:
        raise LinkError(f"broker refused {len(refused)} piece(s) of the bundle, e.g. {refused[0]}; check the ACL")


@dataclass
class _Target:
    manifest: BundleManifest | None = None
    delivered: str | None = None


class Reassembler:
    """Collects chunks per prefix and returns a bundle's bytes once, when complete and intact.

    Keeps at most three bundles' chunks per prefix (the current manifest's plus stragglers of a publish
    in progress), so a misbehaving publisher cannot grow memory without bound.
    """

    def __init__(self) -> None:
        self._targets: dict[str, _Target] = {}
        self._chunks: dict[str, OrderedDict[str, dict[int, bytes]]] = {}

    def feed(self, prefix: str, kind: str, payload: bytes) -> bytes | None:
        """Take one message under `prefix` (`kind` = "manifest" or "chunk"); return the bundle when complete.

        Malformed pieces are logged and dropped; an empty payload (a cleared retained topic) is ignored.
        """
        if not payload:
            return None
        target = self._targets.setdefault(prefix, _Target())
        groups = self._chunks.setdefault(prefix, OrderedDict())
        if kind == MANIFEST:
            try:
                _, manifest = decode(payload)
            except Refused as exc:
                log.warning("dropped watchlist manifest on %s: %s", prefix, exc)
                return None
            if not isinstance(manifest, BundleManifest):
                log.warning("dropped %s payload on the manifest topic of %s", manifest.schema_, prefix)
                return None
            target.manifest = manifest
        elif kind == CHUNK:
            header_bytes, sep, data = payload.partition(b"\n")
            try:
                _, header = decode(header_bytes)
            except Refused as exc:
                log.warning("dropped watchlist chunk on %s: %s", prefix, exc)
                return None
            if not sep or not isinstance(header, BundleChunk) or header.index >= header.count:
                log.warning("dropped watchlist chunk on %s: bad header or index", prefix)
                return None
            if header.sha256 == target.delivered:
                return None
            if hashlib.sha256(data).hexdigest() != header.digest:
                log.warning("dropped watchlist chunk %d on %s: its bytes do not match its digest", header.index, prefix)
                return None
            group = groups.setdefault(header.sha256, {})
            groups.move_to_end(header.sha256)
            group[header.index] = data
            keep = target.manifest.sha256 if target.manifest else None
            while len(groups) > _KEEP_GROUPS:
                oldest = next(s for s in groups if s != keep)
                del groups[oldest]
        else:
            log.warning("ignored unexpected watchlist topic %s/%s", prefix, kind)
            return None
        return self._complete(prefix, target, groups)

    def _complete(self, prefix: str, target: _Target, groups: "OrderedDict[str, dict[int, bytes]]") -> bytes | None:
        manifest = target.manifest
        if manifest is None or manifest.sha256 == target.delivered:
            return None
        group = groups.get(manifest.sha256, {})
        if len(group) < manifest.chunks or any(i not in group for i in range(manifest.chunks)):
            return None
        data = b"".join(group[i] for i in range(manifest.chunks))
        if len(data) != manifest.size or hashlib.sha256(data).hexdigest() != manifest.sha256:
            log.error("watchlist bundle on %s does not match its manifest (size or sha256); dropped", prefix)
            del groups[manifest.sha256]
            return None
        target.delivered = manifest.sha256
        groups.clear()
        return data
