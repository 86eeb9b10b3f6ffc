"""Watchlist bundles as retained MQTT messages: split into chunks under one topic prefix, reassembled and
checked on the device.

Layout under a prefix (`topics.fleet_bundle(f)` or `topics.device_bundle(d)`), all retained, QoS 1:
`<prefix>/chunk/<i>` = `<BundleChunk header JSON>\\n<raw bytes>`, then `<prefix>/manifest` = BundleManifest.
Chunks are published before the manifest, so a manifest never names chunks the broker does not hold.
A device that connects later gets every retained piece on subscribe; pieces arrive in any order. Each
chunk carries its own sha256 (a bad chunk is dropped alone) and the bundle is handed over once all chunks
of the manifest's bundle are in and the whole matches the manifest's sha256. A device writes each chunk to a
spool file as it arrives and hands over that file: a 1,000,000-entry bundle (~400 MB) is never in its memory,
let alone twice (chunks and joined copy). What a device spools is bounded by the configured largest bundle
(`watchlist.max_bundle_mb`): a manifest or chunk that announces a larger bundle is refused unread, every chunk
but the last must be at least MIN_CHUNK_BYTES (so the chunks received are tracked in at most one byte per
MIN_CHUNK_BYTES), and the spool files of one prefix together never exceed that size: an older partial bundle
gives way to a newer one. The bundle is opaque bytes here: signature, decryption and rollback checks belong to
edge.watchlist.
"""

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.config.link import LinkConfig
from edge.link.mqtt import Ack, Incoming, LinkError, MqttClient
from edge.protocol.canonical import encode
from edge.protocol.messages import BundleChunk, BundleManifest, decode, utc_now
from edge.protocol.refused import Refused

log = logging.getLogger(__name__)

MANIFEST = "manifest"
CHUNK = "chunk"
_KEEP_GROUPS = 3
_ASSEMBLING, _COMPLETE = ".spooling", ".spooled"  # names no other file of the device uses
_READ = 1 << 20  # bytes hashed at a time when a spooled bundle is checked
MIN_CHUNK_BYTES = 1024  # the least link.chunk_bytes a publisher may use


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
    return manifest, [chunk_payload(manifest, i, data[i * chunk_bytes : (i + 1) * chunk_bytes]) for i in range(count)]


def chunk_payload(manifest: BundleManifest, index: int, piece: bytes) -> bytes:
    """The message of chunk `index` (its header line, then its raw bytes) of the bundle `manifest` names."""
    header = BundleChunk(sha256=manifest.sha256, index=index, count=manifest.chunks,
                         digest=hashlib.sha256(piece).hexdigest())
    return encode(header.body()) + b"\n" + piece


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


@dataclass(frozen=True)
class Spooled:
    """A complete bundle that matched its manifest, in its spool file (the caller's to remove)."""

    sha256: str
    size: int
    path: Path


class _Dropped(Exception):
    """A chunk that cannot be placed (logged and dropped; the bundle completes when an intact copy arrives)."""


@dataclass
class _Group:
    """One bundle being assembled in its spool file: each chunk at index x the chunk size, which every chunk but
    the last has (learnt from the first of them; the last waits in memory until then)."""

    path: Path
    count: int
    chunk_bytes: int | None = None
    size: int | None = None
    have: bytearray = field(init=False)  # one byte per chunk: 1 once spooled or held
    received: int = 0  # distinct chunks spooled or held
    stored: int = 0  # their bytes
    last: bytes | None = None

    def __post_init__(self) -> None:
        self.have = bytearray(self.count)

    def put(self, index: int, count: int, data: bytes) -> None:
        if count != self.count:
            raise _Dropped(f"it says the bundle has {count} chunks, others {self.count}")
        if index < self.count - 1:
            if self.chunk_bytes is None:
                self.chunk_bytes = len(data)
                if self.last is not None:
                    self._write(self.count - 1, self.last)
                    self.last = None
            elif len(data) != self.chunk_bytes:
                raise _Dropped(f"{len(data)} bytes, other chunks {self.chunk_bytes}")
        elif self.chunk_bytes is None and self.count > 1:
            self._count(index, data)
            self.last = data
            return
        self._count(index, data)
        self._write(index, data)

    def complete(self) -> bool:
        return self.received == self.count  # with two chunks or more, one set chunk_bytes: the last is spooled

    def _count(self, index: int, data: bytes) -> None:
        if not self.have[index]:
            self.have[index] = 1
            self.received += 1
            self.stored += len(data)

    def _write(self, index: int, data: bytes) -> None:
        offset = index * (self.chunk_bytes or 0)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        if index == self.count - 1:
            self.size = offset + len(data)


class Reassembler:
    """Collects chunks per prefix in spool files and returns a bundle's file once, when complete and intact.

    `spool` is a folder of this process's own (created 0700; what a killed process left there is removed).
    Keeps at most three bundles per prefix (the current manifest's plus stragglers of a publish in progress),
    and at most `max_bundle_bytes` in the spool files of a prefix together (watchlist.max_bundle_mb), so a
    misbehaving publisher can neither fill the disk nor the memory.
    """

    def __init__(self, spool: Path, max_bundle_bytes: int) -> None:
        self._spool = spool
        self._max = max_bundle_bytes
        spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        spool.chmod(0o700)  # an existing folder keeps its mode otherwise
        for left in [*spool.glob("*" + _ASSEMBLING), *spool.glob("*" + _COMPLETE)]:
            left.unlink()
        self._targets: dict[str, _Target] = {}
        self._groups: dict[str, OrderedDict[str, _Group]] = {}

    def feed(self, prefix: str, kind: str, payload: bytes) -> Spooled | None:
        """Take one message under `prefix` (`kind` = "manifest" or "chunk"); return the bundle when complete.

        A malformed piece is refused (Refused, for the caller to count and log); an empty payload (a cleared
        retained topic) is ignored.
        """
        if not payload:
            return None
        target = self._targets.setdefault(prefix, _Target())
        groups = self._groups.setdefault(prefix, OrderedDict())
        if kind == MANIFEST:
            _, manifest = decode(payload)
            if not isinstance(manifest, BundleManifest):
                raise Refused("malformed", f"a {manifest.schema_} payload on the manifest topic of {prefix}")
            if manifest.size > self._max:
                raise Refused("oversized", f"watchlist manifest on {prefix} announces {manifest.size} bytes, over the "
                              f"{self._max} of watchlist.max_bundle_mb")
            target.manifest = manifest
        elif kind == CHUNK:
            header_bytes, sep, data = payload.partition(b"\n")
            if not sep:
                raise Refused("malformed", f"watchlist chunk on {prefix} has no header line")
            _, header = decode(header_bytes)
            if not isinstance(header, BundleChunk) or header.index >= header.count:
                raise Refused("malformed", f"watchlist chunk on {prefix}: not a chunk header, or index past count")
            if header.sha256 == target.delivered:
                return None
            if hashlib.sha256(data).hexdigest() != header.digest:
                raise Refused("malformed", f"watchlist chunk {header.index} on {prefix}: its bytes do not match its "
                              "digest")
            self._check_size(prefix, header, data)
            self._put(prefix, groups, target, header, data)
        else:
            raise Refused("unexpected_topic", f"no watchlist topic {prefix}/{kind}")
        return self._complete(prefix, target, groups)

    def _check_size(self, prefix: str, header: BundleChunk, data: bytes) -> None:
        """Refuse a chunk of a bundle that would be over the limit, judged from this chunk alone."""
        last = header.index == header.count - 1
        if not last and len(data) < MIN_CHUNK_BYTES:
            raise Refused("malformed", f"watchlist chunk {header.index} on {prefix} is {len(data)} bytes: chunks "
                          f"but the last have at least {MIN_CHUNK_BYTES}")
        least = (header.count - 1) * (MIN_CHUNK_BYTES if last else len(data)) + (len(data) if last else 1)
        if least > self._max:
            raise Refused("oversized", f"watchlist chunk {header.index} of {header.count} on {prefix} belongs to a "
                          f"bundle of at least {least} bytes, over the {self._max} of watchlist.max_bundle_mb")

    def _make_room(self, prefix: str, groups: "OrderedDict[str, _Group]", keep: set[str], need: int) -> None:
        """Drop the oldest partial bundles (not those in `keep`) until `need` more bytes fit under the limit."""
        while sum(g.stored for g in groups.values()) + need > self._max:
            older = next((sha for sha in groups if sha not in keep), None)
            if older is None:
                raise Refused("oversized", f"watchlist chunks on {prefix} would spool more than the {self._max} "
                              "bytes of watchlist.max_bundle_mb")
            log.warning("partial watchlist bundle %s on %s dropped to make room for a newer one", older, prefix)
            self._drop(groups, older)

    def _put(self, prefix: str, groups: "OrderedDict[str, _Group]", target: _Target, header: BundleChunk,
             data: bytes) -> None:
        known = groups.get(header.sha256)
        if known is None or header.count != known.count or not known.have[header.index]:
            keep = {header.sha256} | ({target.manifest.sha256} if target.manifest else set())
            self._make_room(prefix, groups, keep, len(data))
        group = groups.get(header.sha256) or self._new_group(prefix, groups, header)
        groups.move_to_end(header.sha256)
        try:
            try:
                group.put(header.index, header.count, data)
            except _Dropped as exc:
                manifest = target.manifest if target.manifest and target.manifest.sha256 == header.sha256 else None
                if manifest is None or not _fits(manifest, header, data):
                    raise  # without the manifest the first layout stands: one bad chunk cannot undo the others
                # the same bundle cut as its manifest says, after chunks of an earlier cut (republished with
                # another chunk size): start again with the manifest's layout
                log.info("watchlist bundle on %s arrives cut another way (%s); assembling it afresh", prefix, exc)
                self._drop(groups, header.sha256)
                self._new_group(prefix, groups, header).put(header.index, header.count, data)
        except _Dropped as exc:
            log.warning("dropped watchlist chunk %d on %s: %s", header.index, prefix, exc)
        except OSError as exc:
            log.error("cannot spool watchlist chunk %d on %s to %s: %s; the bundle is dropped until it is sent "
                      "again", header.index, prefix, group.path, exc.strerror)
            self._drop(groups, header.sha256)
        keep = target.manifest.sha256 if target.manifest else None
        while len(groups) > _KEEP_GROUPS:
            self._drop(groups, next(s for s in groups if s != keep))

    def _new_group(self, prefix: str, groups: "OrderedDict[str, _Group]", header: BundleChunk) -> _Group:
        name = f"{prefix.replace('/', '_')}-{header.sha256}"
        group = groups[header.sha256] = _Group(self._spool / (name + _ASSEMBLING), header.count)
        return group

    def _complete(self, prefix: str, target: _Target, groups: "OrderedDict[str, _Group]") -> Spooled | None:
        manifest = target.manifest
        if manifest is None or manifest.sha256 == target.delivered:
            return None
        group = groups.get(manifest.sha256)
        if group is None or not group.complete():  # however it was cut, its bytes must be the manifest's
            return None
        if group.size != manifest.size or _file_sha256(group.path) != manifest.sha256:
            log.error("watchlist bundle on %s does not match its manifest (size or sha256); dropped", prefix)
            self._drop(groups, manifest.sha256)
            return None
        target.delivered = manifest.sha256
        done = group.path.rename(group.path.with_suffix(_COMPLETE))
        del groups[manifest.sha256]
        for sha in list(groups):
            self._drop(groups, sha)
        return Spooled(manifest.sha256, manifest.size, done)

    @staticmethod
    def _drop(groups: "OrderedDict[str, _Group]", sha256: str) -> None:
        groups.pop(sha256).path.unlink(missing_ok=True)


def _fits(manifest: BundleManifest, header: BundleChunk, data: bytes) -> bool:
    """Whether a chunk is cut as its manifest says."""
    return header.count == manifest.chunks and (header.index == header.count - 1 or len(data) == manifest.chunk_bytes)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_READ):
            digest.update(block)
    return digest.hexdigest()
