"""What a test's MQTT client received (pass a Collector as its on_message), waiting for what a test expects, and
publishing many messages at once (`flood`).

Shared by tests/link and tests/handheld; pytest puts tests/ on sys.path for tests/conftest.py, so test
modules and area helpers import it as `mqtt_collector`.
"""

import queue
import threading
from collections.abc import Callable

from edge.link.mqtt import Ack, Incoming, MqttClient


class Collector:
    """Received messages in arrival order; `wait` and `wait_for` block until the expected one is there."""

    def __init__(self) -> None:
        self.messages: list[Incoming] = []
        self._cond = threading.Condition()

    def __call__(self, message: Incoming) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def topics(self) -> set[str]:
        with self._cond:
            return {m.topic for m in self.messages}

    def wait_for(self, topic: str, timeout: float = 5.0) -> bool:
        """True once a message arrived on `topic`, False after `timeout` seconds without one."""
        with self._cond:
            return self._cond.wait_for(lambda: any(m.topic == topic for m in self.messages), timeout)

    def wait(self, predicate: Callable[[Incoming], bool], timeout: float = 5.0) -> Incoming:
        """The first message satisfying `predicate`; fails the test, naming the topics seen, after `timeout`."""
        def first() -> Incoming | None:
            return next((m for m in self.messages if predicate(m)), None)

        with self._cond:
            self._cond.wait_for(lambda: first() is not None, timeout)
            found = first()
        assert found is not None, f"no matching message in {timeout} s; got topics {[m.topic for m in self.messages]}"
        return found


def flood(client: MqttClient, messages: list[tuple[str, bytes, bool]]) -> None:
    """Publish (topic, payload, retain) at QoS 1 and wait until the broker took every one."""
    acks: queue.Queue[Ack] = queue.Queue()
    for topic, data, retain in messages:
        client.publish(topic, data, retain, acks.put)
    for _ in messages:
        assert acks.get(timeout=30).ok
