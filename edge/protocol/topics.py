"""MQTT topic names and client identities: one place, so the device, HQ, the handheld and the broker ACL agree.

Every topic lives under `edge/v1`. An identifier (device, handheld, fleet, HQ client) becomes one topic level
and one ACL line, so it is restricted to characters that mean nothing to MQTT or to mosquitto's ACL syntax.
"""

from dataclasses import dataclass
from typing import Literal

from edge.config.base import ID_PATTERN, check_id

ROOT = "edge/v1"

Role = Literal["device", "handheld", "hq"]
ROLES: tuple[Role, ...] = ("device", "handheld", "hq")

@dataclass(frozen=True)
class Identity:
    """Who a client is: the certificate CN `<role>-<id>`, which the broker also uses as username and client id."""

    role: Role
    id: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} is not one of {', '.join(ROLES)}")
        check_id(self.id, f"{self.role} id")

    @property
    def name(self) -> str:
        return f"{self.role}-{self.id}"

    @classmethod
    def parse(cls, name: str) -> "Identity":
        """`device-cam01` -> Identity("device", "cam01")."""
        role, sep, ident = name.partition("-")
        if not sep or role not in ROLES:
            raise ValueError(f"identity {name!r} must look like <role>-<id> with role one of {', '.join(ROLES)}")
        return cls(role, ident)  # type: ignore[arg-type]


def device_base(device: str) -> str:
    return f"{ROOT}/devices/{check_id(device, 'device id')}"


def status(device: str) -> str:
    """Retained device status; the broker publishes the device's will here when it drops off."""
    return f"{device_base(device)}/status"


def match_events(device: str) -> str:
    return f"{device_base(device)}/events/match"


def audit(device: str) -> str:
    return f"{device_base(device)}/audit"


def watchlist_state(device: str) -> str:
    return f"{device_base(device)}/watchlist/state"


def commands(device: str) -> str:
    """Prefix of topics HQ uses to talk to one device (`…/commands/#`)."""
    return f"{device_base(device)}/commands"


def device_bundle(device: str) -> str:
    """Prefix of the retained watchlist bundle addressed to one device (`…/manifest`, `…/chunk/<i>`)."""
    return f"{device_base(device)}/watchlist/bundle"


def fleet_bundle(fleet: str) -> str:
    """Prefix of the retained watchlist bundle for every device of a fleet."""
    return f"{ROOT}/fleets/{check_id(fleet, 'fleet')}/watchlist/bundle"


def device_pairing(device: str) -> str:
    """Retained HQ-signed record of the handhelds a device alerts (`edge.device_pairing/1`)."""
    return f"{device_base(device)}/pairing"


def handheld_base(handheld: str) -> str:
    """Prefix of a handheld's own topics (its inbox, its pairing record, its adjudications)."""
    return f"{ROOT}/handhelds/{check_id(handheld, 'handheld id')}"


def handheld_inbox(handheld: str, device: str) -> str:
    """Sealed alerts from `device` to `handheld`: `edge/v1/handhelds/<h>/alerts/<d>` (the ACL binds `<d>`)."""
    return f"{handheld_base(handheld)}/alerts/{check_id(device, 'device id')}"


def handheld_inbox_filter(handheld: str) -> str:
    """What a handheld subscribes to: its alerts from every device (the ACL and its pairing decide which count)."""
    return f"{handheld_base(handheld)}/alerts/+"


def handheld_pairing(handheld: str) -> str:
    """Retained HQ-signed record of the devices a handheld trusts (`edge.handheld_pairing/1`)."""
    return f"{handheld_base(handheld)}/pairing"


def adjudications(handheld: str) -> str:
    """Officers' signed decisions (`edge.adjudication/1`) published by one handheld."""
    return f"{handheld_base(handheld)}/adjudications"


def any_device(suffix: str) -> str:
    """Filter over every device, e.g. `any_device("events/match")` -> `edge/v1/devices/+/events/match`."""
    return f"{ROOT}/devices/+/{suffix}"


def any_handheld(suffix: str) -> str:
    """Filter over every handheld, e.g. `any_handheld("pairing")` -> `edge/v1/handhelds/+/pairing`."""
    return f"{ROOT}/handhelds/+/{suffix}"


def all_adjudications() -> str:
    """`edge/v1/handhelds/+/adjudications`: devices and HQ subscribe to this; the ACL lets a device read only
    the handhelds paired with it."""
    return any_handheld("adjudications")


def shared(group: str, topic_filter: str) -> str:
    """MQTT 5 shared subscription: the broker hands each message to one member of `group`."""
    return f"$share/{check_id(group, 'share group')}/{topic_filter}"


@dataclass(frozen=True)
class OwnTopic:
    """A topic under `edge/v1/<devices|handhelds>/<id>/` split into the owner's id and the rest (`events/match`, …)."""

    owner: str
    suffix: str


def _parse(topic: str, level: str) -> OwnTopic | None:
    parts = topic.split("/", 4)
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[2] != level or not ID_PATTERN.fullmatch(parts[3]):
        return None
    return OwnTopic(parts[3], parts[4])


def parse_device_topic(topic: str) -> OwnTopic | None:
    """Split a device topic, or None when `topic` is not one (or its id is not a valid identifier)."""
    return _parse(topic, "devices")


def parse_handheld_topic(topic: str) -> OwnTopic | None:
    """Split a handheld topic, or None when `topic` is not one (or its id is not a valid identifier)."""
    return _parse(topic, "handhelds")
