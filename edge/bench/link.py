"""`edge bench link`: N signed match events from a device process, through a real mosquitto, into the HQ store.

    edge bench link [--events 10000] [--workers 1] [--sync normal|full]

Builds a throwaway fleet (edge.demo.trial: CA, certificates, ACL, a provisioned device) in a temporary folder,
starts mosquitto with the deploy configuration on a free loopback port, runs HQ ingest worker(s) in this
process and the device uplink (outbox + publisher) in a child process (edge.bench.link_device), and prints
events per second from the first enqueue to the last event committed at HQ.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge.demo.trial import TrialFleet
from edge.hq.ingest import Ingest, PublicKeys
from edge.hq.store import EventStore
from edge.runtime.progress import progress

DEVICE = "bench"


def run_link_bench(events: int, workers: int, sync: str) -> int:
    with tempfile.TemporaryDirectory(prefix="edge-link-bench-") as tmp:
        root = Path(tmp)
        clients = tuple(f"ingest{i}" for i in range(workers))
        fleet = TrialFleet(root / "fleet").create(devices=(DEVICE,), hq_clients=clients)
        broker = fleet.broker()
        broker.start()
        store = EventStore.open(str(root / "hq.sqlite"))
        group = "bench" if workers > 1 else None  # several workers split the stream (shared subscription)
        ingests = [Ingest(fleet.link(f"hq-ingest{i}", broker.port), store, PublicKeys(fleet.keys), group)
                   for i in range(workers)]
        for worker in ingests:
            worker.start()
            worker.wait_connected(10)
        config = fleet.link(f"device-{DEVICE}", broker.port, outbox=root / "outbox.sqlite", outbox_sync=sync)
        (root / "device.json").write_text(config.model_dump_json())
        child = subprocess.Popen(
            [sys.executable, "-m", "edge.bench.link_device", "--config", str(root / "device.json"),
             "--key", str(fleet.device_dir(DEVICE) / "device_signing.key"), "--count", str(events), "--quiet"],
            stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None
        child.stdout.readline()  # "ready": the clock starts at the first enqueue
        start = time.perf_counter()
        with progress(total=events, unit="event", desc="stored at HQ") as bar:
            while (stored := store.count()) < events and child.poll() in (None, 0):
                bar.update(stored - bar.n)
                time.sleep(0.05)
            bar.update(store.count() - bar.n)
        elapsed = time.perf_counter() - start
        child.wait(60)
        for worker in ingests:
            worker.stop()
        broker.stop()
        stored = store.count()
        store.close()
        duplicates = sum(w.stats.duplicates for w in ingests)
        print(f"{stored} of {events} events stored exactly once in {elapsed:.2f} s: "
              f"{stored / elapsed:.0f} events/s end to end (device outbox sync={sync}, "
              f"{workers} ingest worker(s), {duplicates} duplicate deliveries absorbed)")
        return 0 if stored == events else 1
