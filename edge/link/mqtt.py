"""The one module that talks paho: MQTT 5 over mutual TLS, a will, reconnect with back-off, acks as callbacks.

Everything else in edge sees `MqttClient`: publish with a callback on PUBACK (reason code included),
subscriptions that are re-sent on every reconnect, and a connection error that says why. The client id
is the certificate's CN; the broker enforces that (`use_username_as_clientid`), so one identity holds
one connection. Sessions are persistent (clean_start false + session expiry): what arrives for a client
while it is away waits at the broker.
"""

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.config.link import LinkConfig
from edge.errors import EdgeError
from edge.protocol.topics import Identity

log = logging.getLogger(__name__)


class LinkError(EdgeError):
    """The broker cannot be reached, refused us, or a TLS file is missing or unusable."""


@dataclass(frozen=True)
class Ack:
    """A broker's answer to a PUBLISH or SUBSCRIBE: MQTT 5 reason code (< 0x80 is success) and its name."""

    code: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.code < 0x80


@dataclass(frozen=True)
class Will:
    """What the broker publishes for us if we vanish without a clean DISCONNECT."""

    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True)
class Incoming:
    """A received message. `generation` counts connections: an ack is only valid on the connection it came on."""

    topic: str
    payload: bytes
    retain: bool
    mid: int
    qos: int
    generation: int


OnMessage = Callable[[Incoming], None]


def read_identity(cert: Path) -> Identity:
    """The identity (`device-<id>`, …) in a client certificate's CN."""
    try:
        parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise LinkError(f"cannot read client certificate {cert}: {exc}; issue one with `edge hq pki issue`") from exc
    names = parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        return Identity.parse(str(names[0].value) if names else "")
    except ValueError as exc:
        raise LinkError(f"certificate {cert}: {exc}") from exc


def _tls_context(config: LinkConfig) -> ssl.SSLContext:
    for what, path in (("CA certificate", config.ca), ("client certificate", config.cert), ("client key", config.key)):
        if not path.is_file():
            raise LinkError(f"link {what} {path} not found; set it in the [link] config or issue it with `edge hq pki`")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(config.ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(config.cert), str(config.key))
    except (ssl.SSLError, OSError) as exc:
        raise LinkError(f"cannot load TLS files ({config.ca}, {config.cert}, {config.key}): {exc}") from exc
    return context


class _AckTable:
    """Pairs acks with their requests, even when the ack arrives before publish()/subscribe() returns its mid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[int, Callable[[Any], None]] = {}
        self._early: dict[int, Any] = {}

    def expect(self, mid: int, callback: Callable[[Any], None]) -> None:
        with self._lock:
            if mid not in self._early:
                self._waiting[mid] = callback
                return
            result = self._early.pop(mid)
        callback(result)

    def resolve(self, mid: int, result: Any) -> None:
        with self._lock:
            callback = self._waiting.pop(mid, None)
            if callback is None:
                self._early[mid] = result
                return
        callback(result)


class MqttClient:
    """A persistent-session MQTT 5 client over mutual TLS that reconnects by itself.

    Callbacks (`on_message`, `on_connect`, publish acks) run on paho's network thread: keep them short.
    """

    def __init__(
        self,
        config: LinkConfig,
        will: Will | None = None,
        on_message: OnMessage | None = None,
        on_connect: Callable[[], None] | None = None,
        manual_ack: bool = False,
    ) -> None:
        """`manual_ack`: the caller acknowledges each QoS 1 message with ack() once it is safely stored."""
        self.config = config
        self.identity = read_identity(config.cert)
        self._on_message = on_message
        self._on_connect = on_connect
        self._cond = threading.Condition()
        self._connected = False
        self._generation = 0
        self._stopping = False
        self._last_error = "no connection attempt yet"
        self._filters: list[str] = []
        self._granted: dict[str, Ack] = {}
        self._acks = _AckTable()
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.identity.name,
            protocol=paho.MQTTv5,
            reconnect_on_failure=True,
            manual_ack=manual_ack,
        )
        self._context = _tls_context(config)
        client.tls_set_context(self._context)
        client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        client.max_inflight_messages_set(config.inflight)
        client.max_queued_messages_set(0)
        if will is not None:
            client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_subscribe = self._handle_subscribe
        client.on_message = self._handle_message
        client.on_log = self._handle_log
        self._client = client

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str:
        return self._last_error

    def start(self) -> None:
        """Connect in the background; reconnects with back-off until stop()."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.config.session_expiry_s
        self._client.connect_async(
            self.config.host, self.config.port, self.config.keepalive_s, clean_start=False, properties=properties
        )
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> None:
        with self._cond:
            if self._cond.wait_for(lambda: self._connected, timeout):
                return
        raise LinkError(
            f"no MQTT connection to {self.address} as {self.identity.name} within {timeout:g} s: {self.diagnose()}"
        )

    def diagnose(self) -> str:
        """Why we are not connected, found by one TCP + TLS attempt of our own (paho hides the TLS error)."""
        if self._last_error.startswith("broker refused"):
            return self._last_error
        try:
            with (
                socket.create_connection((self.config.host, self.config.port), timeout=5) as raw,
                self._context.wrap_socket(raw, server_hostname=self.config.host) as tls,
            ):
                tls.settimeout(1.0)
                tls.recv(1)  # TLS 1.3: the broker's verdict on our certificate arrives as an alert here
        except ssl.SSLCertVerificationError as exc:
            return f"the broker's certificate is not trusted: {exc.verify_message} (check link.ca and link.host)"
        except ssl.SSLError as exc:
            return f"the broker refused our TLS client certificate {self.config.cert}: {exc.reason or exc}"
        except TimeoutError:
            return f"TLS accepted, but no MQTT session: {self._last_error}"
        except OSError as exc:
            return f"cannot reach the broker: {exc.strerror or exc}"
        return f"the broker closed the connection: {self._last_error}"

    def stop(self) -> None:
        """Disconnect cleanly (the broker drops the will) and stop the network thread."""
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    def subscribe(self, filters: Sequence[str]) -> None:
        """Subscribe at QoS 1 now (if connected) and again after every reconnect."""
        with self._cond:
            new = [f for f in filters if f not in self._filters]
            self._filters.extend(new)
            connected = self._connected
        if new and connected:
            self._send_subscribe(new)

    def wait_subscribed(self, timeout: float) -> dict[str, Ack]:
        """Block until the broker answered every subscription; return its answer per filter."""
        with self._cond:
            self._cond.wait_for(lambda: all(f in self._granted for f in self._filters), timeout)
            missing = [f for f in self._filters if f not in self._granted]
            if missing:
                raise LinkError(f"broker {self.address} did not answer subscriptions {missing} within {timeout:g} s")
            return dict(self._granted)

    def publish(
        self, topic: str, payload: bytes, retain: bool = False, on_ack: Callable[[Ack], None] | None = None
    ) -> None:
        """Publish at QoS 1. paho keeps the message until PUBACK, across reconnects; `on_ack` gets the answer."""
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise LinkError(f"cannot queue a message for {topic}: {paho.error_string(info.rc)}")
        self._acks.expect(info.mid, on_ack or (lambda _ack: None))

    def publish_wait(self, topic: str, payload: bytes, retain: bool, timeout: float) -> Ack:
        """Publish and block until the broker acknowledged."""
        done = threading.Event()
        result: list[Ack] = []

        def acked(ack: Ack) -> None:
            result.append(ack)
            done.set()

        self.publish(topic, payload, retain, acked)
        if not done.wait(timeout):
            raise LinkError(
                f"broker {self.address} did not acknowledge {topic} within {timeout:g} s: {self._last_error}"
            )
        return result[0]

    def ack(self, message: Incoming) -> bool:
        """PUBACK a message received with manual_ack; False (and no ack) if its connection is gone.

        The broker redelivers unacknowledged messages on the next connection, so skipping is safe.
        """
        if message.qos == 0 or message.generation != self._generation or not self._connected:
            return False
        return self._client.ack(message.mid, message.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    # paho callbacks, on its network thread. An exception here would kill that thread: catch all.

    def _send_subscribe(self, filters: list[str]) -> None:
        rc, mid = self._client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            log.warning("subscribe %s to %s not sent: %s", filters, self.address, paho.error_string(rc))
            return
        self._acks.expect(mid, lambda codes: self._subscribed(filters, codes))

    def _subscribed(self, filters: list[str], codes: list[ReasonCode]) -> None:
        with self._cond:
            for f, code in zip(filters, codes, strict=False):
                ack = Ack(code.value, str(code))
                self._granted[f] = ack
                if not ack.ok:
                    log.error("broker %s refused subscription %s for %s: %s",
                              self.address, f, self.identity.name, ack.reason)
            self._cond.notify_all()

    def _handle_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        try:
            if reason.is_failure:
                self._last_error = f"broker refused the connection: {reason}"
                log.warning("MQTT %s refused %s: %s", self.address, self.identity.name, reason)
                return
            log.info("MQTT connected to %s as %s (session present: %s)", self.address, self.identity.name,
                     flags.session_present)
            with self._cond:
                self._connected = True
                self._generation += 1
                self._granted.clear()
                filters = list(self._filters)
                self._cond.notify_all()
            if filters:
                self._send_subscribe(filters)
            if self._on_connect is not None:
                self._on_connect()
        except Exception:
            log.exception("error in MQTT connect handler")

    def _handle_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._last_error = f"cannot connect to {self.address}"
        log.debug("MQTT connect to %s failed", self.address)

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            self._cond.notify_all()
        if reason.is_failure:
            self._last_error = f"disconnected: {reason}"
        if was and not self._stopping:
            log.warning("MQTT connection to %s lost (%s); reconnecting with back-off", self.address, reason)

    def _handle_publish(self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any) -> None:
        try:
            self._acks.resolve(mid, Ack(reason.value, str(reason)))
        except Exception:
            log.exception("error in MQTT publish-ack handler")

    def _handle_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any
    ) -> None:
        try:
            self._acks.resolve(mid, codes)
        except Exception:
            log.exception("error in MQTT subscribe-ack handler")

    def _handle_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        incoming = Incoming(message.topic, bytes(message.payload), bool(message.retain), message.mid, message.qos,
                            self._generation)
        if self._on_message is None:
            return
        try:
            self._on_message(incoming)
        except Exception:  # acknowledged: left unacknowledged, it would hold one of the broker's in-flight slots
            self.ack(incoming)
            log.exception("error handling MQTT message on %s", message.topic)

    def _handle_log(self, client: paho.Client, userdata: Any, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            log.debug("paho: %s", text)

