"""The device status carries what each model runs on and why it is not TensorRT, so that a Jetson silently
running on its CPU is visible at HQ: through a real broker into the HQ store."""

import json
from pathlib import Path

from link_helpers import Broker, wait

from edge.config.runtime import RuntimeConfig
from edge.hq.ingest import Ingest, PublicKeys
from edge.hq.store import EventStore
from edge.link.uplink import Uplink
from edge.vision.stack import VisionStack


def test_status_at_hq_says_which_runtime_and_why(broker: Broker, tmp_path: Path) -> None:
    store = EventStore.open(str(tmp_path / "hq.sqlite"))
    ingest = Ingest(broker.config("hq-ingest"), store, PublicKeys(broker.fleet.device_keys))
    ingest.start()
    ingest.wait_connected(5)
    uplink = Uplink(broker.config("device-a"), broker.fleet.signing["a"], fleet="north")
    stack = VisionStack.open(runtime=RuntimeConfig(backend="auto"))
    uplink.start()
    uplink.wait_connected(5)
    try:
        wait(lambda: bool(store.statuses()), 10, "the status the uplink sends on connecting")

        def runtime_at_hq() -> str:
            found = [json.loads(s.payload) for s in store.statuses() if s.device == "a"]
            return found[0].get("runtime", "") if found else ""

        assert runtime_at_hq() == ""
        uplink.set_runtime(stack.runtimes())
        uplink.set_status(counters={"frames": 1})
        wait(lambda: runtime_at_hq() != "", 10, "the runtime in the status at HQ")
    finally:
        uplink.stop()
        ingest.stop()
        stack.close()
    said = runtime_at_hq()
    assert said == stack.runtimes()
    assert said.startswith("detector onnxruntime:retinaface_mnet025") and "; embedder onnxruntime:" in said
    assert "(TensorRT not installed)" in said  # this machine has no TensorRT: the reason is given
