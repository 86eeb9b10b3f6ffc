"""Who may touch which topics: a registry of fleet identities and pairings, rendered as mosquitto's ACL file.

The registry (JSON) lists HQ clients (with their roles), devices (with their fleet) and handhelds (with the
devices each is paired to). An HQ client gets only its roles' rights (HQ_RIGHTS): the watchlist publisher
writes bundles, the ingest workers read, the pairing tool writes pairing records and device commands; a
compromised ingest worker cannot publish a watchlist, nor the pairing tool. `write_acl` turns it into
explicit `user` blocks: mosquitto's `pattern` lines can only substitute the whole username (`device-cam01`),
while topics carry the bare id (`devices/cam01`), and fleet membership and pairings are per-identity facts
anyway. Anything not granted is denied, including
to clients with a valid certificate that are not in the registry. This is the one ACL writer: `edge hq pki
issue --registry` and `edge hq pair` both call it, so the pairing grants are always there.

After changing the registry: `write_acl(registry, acl_path)` then make the running broker re-read the
file with SIGHUP (`reload_broker(pid)`, or `systemctl reload mosquitto`). Existing subscriptions are
re-checked on the next message, so an unpaired handheld stops receiving at once.

Typical use (what `edge hq pair` builds on):
    registry = Registry.load(path); registry.pair("h1", "cam01"); registry.save(path)
    write_acl(registry, acl_path); reload_broker(broker_pid)
"""

import json
import os
import signal
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, field_validator

from edge.config.base import StrictModel, check_id
from edge.errors import EdgeError
from edge.fsio import write_atomic
from edge.protocol import topics
from edge.protocol.topics import Identity


class RegistryError(EdgeError):
    """The registry file is unreadable, or names an identity that is not registered."""


HqRole = Literal["publisher", "ingest", "pairing"]
HQ_ROLES: tuple[HqRole, ...] = get_args(HqRole)
HQ_RIGHTS: dict[HqRole, tuple[str, ...]] = {
    "publisher": (f"topic readwrite {topics.ROOT}/fleets/+/watchlist/bundle/#",
                  f"topic readwrite {topics.any_device('watchlist/bundle')}/#"),
    "ingest": (f"topic read {topics.ROOT}/#",),
    "pairing": (f"topic write {topics.any_device('pairing')}", f"topic write {topics.any_handheld('pairing')}",
                f"topic write {topics.any_device('commands')}/#"),
}


def default_hq_roles(hq_id: str) -> list[HqRole]:
    """The role an HQ id names by convention (`publisher…`, `ingest…`, `pairing…`), or none."""
    return [role for role in HQ_ROLES if hq_id.startswith(role)]


class DeviceEntry(StrictModel):
    fleet: str | None = None

    @field_validator("fleet")
    @classmethod
    def _fleet(cls, v: str | None) -> str | None:
        return None if v is None else check_id(v, "fleet")


class HandheldEntry(StrictModel):
    devices: list[str] = Field(default_factory=list, description="device ids this handheld may read")


class Registry(StrictModel):
    """Identities known to the broker. Ids are bare (`cam01`); the broker username is `<role>-<id>`."""

    hq: list[str] = Field(default_factory=list)
    hq_roles: dict[str, list[HqRole]] = Field(
        default_factory=dict, description="hq id -> its roles; an id not here has the role its name starts with")
    devices: dict[str, DeviceEntry] = Field(default_factory=dict)
    handhelds: dict[str, HandheldEntry] = Field(default_factory=dict)

    @field_validator("hq")
    @classmethod
    def _hq(cls, v: list[str]) -> list[str]:
        return [check_id(i, "hq id") for i in v]

    @field_validator("devices", "handhelds")
    @classmethod
    def _ids(cls, v: dict[str, object]) -> dict[str, object]:
        for key in v:
            check_id(key, "id")
        return v

    @classmethod
    def load(cls, path: Path) -> "Registry":
        """Read `path`; a missing file is an empty registry."""
        if not path.exists():
            return cls()
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"cannot read registry {path}: {exc}") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, self.model_dump_json(indent=2) + "\n", mode=0o644)

    def add(self, identity: Identity, fleet: str | None = None, hq_roles: list[HqRole] | None = None) -> None:
        """Register an identity (idempotent); a device may be (re)assigned to a fleet, an HQ client given roles
        (default: the role its id starts with, e.g. `ingest2`; an id that names none needs them given)."""
        if identity.role != "hq" and hq_roles:
            raise RegistryError(f"{identity.name} is not an HQ client: HQ roles do not apply")
        if identity.role == "hq":
            roles = list(hq_roles or default_hq_roles(identity.id))
            if not roles:
                raise RegistryError(f"say what {identity.name} does: --hq-role {' | '.join(HQ_ROLES)} (repeatable)")
            if identity.id not in self.hq:
                self.hq.append(identity.id)
            self.hq_roles[identity.id] = sorted(set(roles))
        elif identity.role == "device":
            entry = self.devices.setdefault(identity.id, DeviceEntry())
            if fleet is not None:
                entry.fleet = check_id(fleet, "fleet")
        else:
            self.handhelds.setdefault(identity.id, HandheldEntry())

    def roles(self, hq_id: str) -> list[HqRole]:
        """An HQ client's roles: as registered, else as its id names (registries from before roles)."""
        return self.hq_roles.get(hq_id) or default_hq_roles(hq_id)

    def paired_handhelds(self, device: str) -> list[str]:
        """The handhelds `device` sends its alerts to, sorted."""
        return sorted(h for h, entry in self.handhelds.items() if device in entry.devices)

    def pair(self, handheld: str, device: str) -> None:
        """Let `device` send sealed alerts to `handheld` and read its decisions, and `handheld` read the
        device's status (idempotent)."""
        self._require(handheld, device)
        entry = self.handhelds[handheld]
        if device not in entry.devices:
            entry.devices.append(device)

    def unpair(self, handheld: str, device: str) -> None:
        self._require(handheld, device)
        entry = self.handhelds[handheld]
        if device in entry.devices:
            entry.devices.remove(device)

    def _require(self, handheld: str, device: str) -> None:
        if handheld not in self.handhelds:
            raise RegistryError(f"handheld {handheld!r} is not registered; issue its certificate with --registry first")
        if device not in self.devices:
            raise RegistryError(f"device {device!r} is not registered; issue its certificate with --registry first")


def render_acl(registry: Registry) -> str:
    """mosquitto acl_file text granting each registered identity exactly what its role needs.

    An HQ client gets the rights of its roles only (HQ_RIGHTS); one with no role gets none.

    A device writes sealed alerts only into the inboxes of handhelds paired with it, under its own id (so
    it cannot pose as another device), and reads only their decisions. A handheld reads its inbox and its
    pairing record, writes only its decisions, and reads the status of its paired devices; never their
    match events, which may carry the face crop the sealed alert keeps end-to-end encrypted.
    """
    lines = [
        "# Generated by edge.hq.acl from the fleet registry. Do not edit: change the registry and regenerate.",
        "# No anonymous section: a client that is not listed here has no access at all.",
        "",
    ]
    for hq in registry.hq:
        roles = registry.roles(hq)
        lines += [f"# {', '.join(roles) or 'no role: no access (give it one with --hq-role)'}",
                  f"user {Identity('hq', hq).name}"]
        lines += sorted({right for role in roles for right in HQ_RIGHTS[role]})
        lines.append("")
    for device, entry in sorted(registry.devices.items()):
        lines += [
            f"user {Identity('device', device).name}",
            f"topic write {topics.status(device)}",
            f"topic write {topics.match_events(device)}",
            f"topic write {topics.audit(device)}",
            f"topic write {topics.watchlist_state(device)}",
            f"topic read {topics.device_bundle(device)}/#",
            f"topic read {topics.commands(device)}/#",
            f"topic read {topics.device_pairing(device)}",
        ]
        if entry.fleet is not None:
            lines.append(f"topic read {topics.fleet_bundle(entry.fleet)}/#")
        for handheld in registry.paired_handhelds(device):
            lines += [f"topic write {topics.handheld_inbox(handheld, device)}",
                      f"topic read {topics.adjudications(handheld)}"]
        lines.append("")
    for handheld, entry in sorted(registry.handhelds.items()):
        lines += [
            f"user {Identity('handheld', handheld).name}",
            f"topic read {topics.handheld_base(handheld)}/alerts/#",
            f"topic read {topics.handheld_pairing(handheld)}",
            f"topic write {topics.adjudications(handheld)}",
        ]
        lines += [f"topic read {topics.status(device)}" for device in sorted(entry.devices)]
        lines.append("")
    return "\n".join(lines)


def write_acl(registry: Registry, path: Path) -> None:
    """Atomically replace the broker's ACL file (mode 0644: the broker user must read it)."""
    write_atomic(path, render_acl(registry) + "\n", mode=0o644)


def reload_broker(pid: int) -> None:
    """Ask a running mosquitto to re-read its ACL file (SIGHUP)."""
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise EdgeError(f"cannot signal broker process {pid}: {exc}; run `systemctl reload mosquitto` instead") from exc
