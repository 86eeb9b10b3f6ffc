"""Watchlist bundles: chunked, retained, delivered intact to devices that were offline when HQ published."""

import hashlib
import os
import queue
import random
from pathlib import Path

import pytest
from link_helpers import Broker, connect
from mqtt_collector import Collector

from edge.cli import main as edge_main
from edge.link.chunks import Reassembler, chunk_topic, manifest_topic, publish_bundle, split
from edge.link.uplink import Bundle, Uplink
from edge.protocol import topics
from edge.protocol.canonical import encode
from edge.protocol.messages import BundleChunk
from edge.protocol.refused import Refused

Received = tuple[str, str, bytes]


def receiver(into: "queue.Queue[Received]"):
    """An on_bundle that keeps what it was handed: the spooled file is the handler's only until it returns."""

    def on_bundle(bundle: Bundle) -> None:
        into.put((bundle.source, bundle.sha256, bundle.path.read_bytes()))

    return on_bundle


def test_bundle_published_while_device_offline_arrives_when_it_reconnects(broker: Broker, tmp_path: Path) -> None:
    bundles: queue.Queue[Received] = queue.Queue()
    config = broker.config("device-a")
    first = Uplink(config, broker.fleet.signing["a"], fleet="north", on_bundle=receiver(bundles))
    first.start()
    first.wait_connected(5)
    first.stop()  # the device goes offline; its session stays at the broker

    big = os.urandom(3 * 1024 * 1024 + 12345)  # larger than the broker's 1 MiB packet limit: must be chunked
    (tmp_path / "big.bundle").write_bytes(big)
    certs = broker.fleet.certs
    assert edge_main(["watchlist", "publish", str(tmp_path / "big.bundle"), "--fleet", "north",
                      "--broker", f"127.0.0.1:{broker.local.port}", "--ca", str(certs / "ca.crt"),
                      "--cert", str(certs / "hq-publisher.crt"), "--key", str(certs / "hq-publisher.key")]) == 0

    device = Uplink(config, broker.fleet.signing["a"], fleet="north", on_bundle=receiver(bundles))
    device.start()
    try:
        assert bundles.get(timeout=10) == ("fleet:north", hashlib.sha256(big).hexdigest(), big)

        # Live, to the device alone; then a smaller fleet bundle replaces the big one.
        own = os.urandom(1000)
        publish_bundle(broker.config("hq-publisher"), topics.device_bundle("a"), own)
        assert bundles.get(timeout=10)[::2] == ("device:a", own)
        small = os.urandom(700 * 1024)
        publish_bundle(broker.config("hq-publisher"), topics.fleet_bundle("north"), small)
        assert bundles.get(timeout=10)[2] == small
        assert bundles.empty()  # each bundle handed over once, despite retained re-delivery
    finally:
        device.stop()
    spool = config.outbox.parent / config.bundle_spool
    assert spool.is_dir() and not list(spool.iterdir())  # each spooled bundle removed once handled

    # Only the small bundle's two chunks and its manifest stay retained: the big one's extra chunks were cleared.
    inbox = Collector()
    hq = connect(broker, "hq-ingest", inbox)
    try:
        prefix = topics.fleet_bundle("north")
        hq.subscribe([f"{prefix}/#"])
        hq.wait_subscribed(5)
        assert inbox.wait_for(manifest_topic(prefix))
        assert inbox.wait_for(chunk_topic(prefix, 1))
    finally:
        hq.stop()
    assert inbox.topics() == {manifest_topic(prefix), chunk_topic(prefix, 0), chunk_topic(prefix, 1)}


def test_reassembler_takes_pieces_in_any_order_and_refuses_corruption(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    manifest, chunks = split(data, 1024)
    pieces = [("chunk", c) for c in chunks] + [("manifest", manifest.model_dump_json(by_alias=True).encode())]
    random.Random(7).shuffle(pieces)
    corrupt = bytearray(chunks[3])
    corrupt[-1] ^= 0xFF

    reassembler = Reassembler(tmp_path / "spool", 1 << 30)
    for kind, bad in (("chunk", bytes(corrupt)), ("chunk", b"no header line"), ("manifest", b"{not json")):
        with pytest.raises(Refused) as refused:
            reassembler.feed("p", kind, bad)
        assert refused.value.code == "malformed"
    results = [reassembler.feed("p", kind, payload) for kind, payload in pieces if payload != chunks[3]]
    assert results == [None] * len(results)  # chunk 3 is the corrupt one: the hash check refuses the bundle
    got = reassembler.feed("p", "chunk", chunks[3])  # the intact chunk arrives (e.g. on resubscribe)
    assert got is not None and got.path.read_bytes() == data and (got.sha256, got.size) == (manifest.sha256, 10_000)
    assert all(reassembler.feed("p", kind, payload) is None for kind, payload in pieces)  # delivered once
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [got.path.name]  # nothing else left behind


@pytest.mark.parametrize("last_first", [True, False])
def test_reassembler_spools_each_chunk_at_its_offset(last_first: bool, tmp_path: Path) -> None:
    """Chunks go to disk as they come; the last (shorter) one waits in memory only until another says the size."""
    data = os.urandom(5 * 1024 + 77)
    manifest, chunks = split(data, 1024)
    order = [5, 2, 0, 4, 1, 3] if last_first else [2, 5, 0, 4, 3, 1]
    reassembler = Reassembler(tmp_path / "spool", 1 << 30)
    assert reassembler.feed("p", "manifest", manifest.model_dump_json(by_alias=True).encode()) is None
    got = [reassembler.feed("p", "chunk", chunks[i]) for i in order]
    assert got[:-1] == [None] * 5 and got[-1] is not None and got[-1].path.read_bytes() == data
    # A chunk whose length disagrees with the others' (a broken publisher) is dropped; the bundle still completes.
    other = os.urandom(3000)
    manifest, chunks = split(other, 1024)
    piece = os.urandom(1500)
    header = BundleChunk(sha256=manifest.sha256, index=1, count=3, digest=hashlib.sha256(piece).hexdigest())
    for payload in (chunks[0], encode(header.body()) + b"\n" + piece, chunks[2], chunks[1]):
        assert reassembler.feed("q", "chunk", payload) is None
    done = reassembler.feed("q", "manifest", manifest.model_dump_json(by_alias=True).encode())
    assert done is not None and done.path.read_bytes() == other


def test_reassembler_removes_what_a_killed_process_left(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "edge_v1_fleets_north_bundle-ab.spooling").write_bytes(b"half a bundle")
    (spool / "edge_v1_fleets_north_bundle-cd.spooled").write_bytes(b"a bundle never installed")
    for kept in ("watchlist.bundle", "watchlist.previous.bundle", "versions.json"):  # a store's files: not its own
        (spool / kept).write_bytes(b"the installed list")
    spool.chmod(0o777)
    Reassembler(spool, 1 << 30)
    assert sorted(p.name for p in spool.iterdir()) == ["versions.json", "watchlist.bundle", "watchlist.previous.bundle"]
    assert spool.stat().st_mode & 0o777 == 0o700


def test_reassembler_takes_a_bundle_republished_with_another_chunk_size(tmp_path: Path) -> None:
    """A stale chunk of an earlier cut of the same bundle arrived first: chunks cut as the manifest says start the
    bundle afresh, and it completes."""
    data = os.urandom(5000)
    _, old_chunks = split(data, 1024)
    manifest, chunks = split(data, 2048)
    reassembler = Reassembler(tmp_path / "spool", 1 << 30)
    assert reassembler.feed("p", "chunk", old_chunks[3]) is None
    assert reassembler.feed("p", "manifest", manifest.model_dump_json(by_alias=True).encode()) is None
    got = [reassembler.feed("p", "chunk", c) for c in chunks]
    assert got[-1] is not None and got[-1].path.read_bytes() == data
