"""Watchlist bundles: chunked, retained, delivered intact to devices that were offline when HQ published."""

import hashlib
import os
import queue
import random
from pathlib import Path

from link_helpers import Broker, connect
from mqtt_collector import Collector

from edge.cli import main as edge_main
from edge.link.chunks import Reassembler, chunk_topic, manifest_topic, publish_bundle, split
from edge.link.uplink import Bundle, Uplink
from edge.protocol import topics


def test_bundle_published_while_device_offline_arrives_when_it_reconnects(broker: Broker, tmp_path: Path) -> None:
    bundles: queue.Queue[Bundle] = queue.Queue()
    config = broker.config("device-a")
    first = Uplink(config, broker.fleet.signing["a"], fleet="north", on_bundle=bundles.put)
    first.start()
    first.wait_connected(5)
    first.stop()  # the device goes offline; its session stays at the broker

    big = os.urandom(3 * 1024 * 1024 + 12345)  # larger than the broker's 1 MiB packet limit: must be chunked
    (tmp_path / "big.bundle").write_bytes(big)
    certs = broker.fleet.certs
    assert edge_main(["watchlist", "publish", str(tmp_path / "big.bundle"), "--fleet", "north",
                      "--broker", f"127.0.0.1:{broker.local.port}", "--ca", str(certs / "ca.crt"),
                      "--cert", str(certs / "hq-publisher.crt"), "--key", str(certs / "hq-publisher.key")]) == 0

    device = Uplink(config, broker.fleet.signing["a"], fleet="north", on_bundle=bundles.put)
    device.start()
    try:
        got = bundles.get(timeout=10)
        assert (got.source, got.sha256, got.data) == ("fleet:north", hashlib.sha256(big).hexdigest(), big)

        # Live, to the device alone; then a smaller fleet bundle replaces the big one.
        own = os.urandom(1000)
        publish_bundle(broker.config("hq-publisher"), topics.device_bundle("a"), own)
        got = bundles.get(timeout=10)
        assert (got.source, got.data) == ("device:a", own)
        small = os.urandom(700 * 1024)
        publish_bundle(broker.config("hq-publisher"), topics.fleet_bundle("north"), small)
        assert bundles.get(timeout=10).data == small
        assert bundles.empty()  # each bundle handed over once, despite retained re-delivery
    finally:
        device.stop()

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


def test_reassembler_takes_pieces_in_any_order_and_refuses_corruption() -> None:
    data = os.urandom(10_000)
    manifest, chunks = split(data, 1024)
    pieces = [("chunk", c) for c in chunks] + [("manifest", manifest.model_dump_json(by_alias=True).encode())]
    random.Random(7).shuffle(pieces)
    corrupt = bytearray(chunks[3])
    corrupt[-1] ^= 0xFF

    reassembler = Reassembler()
    assert reassembler.feed("p", "chunk", bytes(corrupt)) is None
    assert reassembler.feed("p", "chunk", b"no header line") is None
    assert reassembler.feed("p", "manifest", b"{not json") is None
    results = [reassembler.feed("p", kind, payload) for kind, payload in pieces if payload != chunks[3]]
    assert results == [None] * len(results)  # chunk 3 is the corrupt one: the hash check refuses the bundle
    assert reassembler.feed("p", "chunk", chunks[3]) == data  # the intact chunk arrives (e.g. on resubscribe)
    assert all(reassembler.feed("p", kind, payload) is None for kind, payload in pieces)  # delivered once
