"""`edge hq pair --handheld H --device D [--unpair]`: who gets a device's alerts, on the broker and in signed records.

One command changes three things; nothing is written unless every key needed is found:
1. the fleet registry (pairings) and the broker ACL generated from it, written where the running broker
   reads it (--acl, else the acl_file of the broker given by --broker-pid, else 'acl' beside the
   registry), then a broker reload;
2. HQ-signed pairing records for the device (its handhelds and their keys) and for the handheld (its
   devices and their keys), written under --out;
3. with --broker: those records published retained on `devices/<id>/pairing` and `handhelds/<id>/pairing`.
Public keys come from provisioning folders under --keys: `<keys>/device-<id>/device_signing.pub` (from
`edge device provision`) and `<keys>/handheld-<id>/handheld_{signing,encryption}.pub` (`edge handheld provision`).
"""

import argparse
import shlex
from pathlib import Path

from edge.cliargs import Commands, link_config
from edge.errors import EdgeError
from edge.hq.acl import Registry, reload_broker, write_acl
from edge.hq.broker import acl_file_of
from edge.keys import load_encryption_public, load_signing_private, load_signing_public
from edge.link.mqtt import LinkError, MqttClient
from edge.protocol.pairing import (
    DevicePairing,
    DevicePeer,
    HandheldPairing,
    HandheldPeer,
    device_record,
    handheld_record,
    payload,
    raw_b64,
    save_record,
)
from edge.protocol.topics import device_pairing, handheld_pairing

_PUBLISH_TIMEOUT_S = 15.0
DEPLOY_ACL = "/etc/mosquitto/edge/acl"  # acl_file in deploy/mosquitto/mosquitto.conf


def register(commands: Commands) -> None:
    hq = commands.group("hq")
    pair = hq.add_parser("pair", help="pair (or unpair) an officer's handheld with a device",
                         description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    pair.add_argument("--handheld", required=True, help="handheld id")
    pair.add_argument("--device", required=True, help="device id")
    pair.add_argument("--unpair", action="store_true", help="remove the pairing instead of adding it")
    pair.add_argument("--registry", type=Path, required=True, help="fleet registry (JSON) from `edge hq pki issue`")
    pair.add_argument("--acl", type=Path, help="broker ACL file to regenerate (default: the acl_file of the broker "
                      "given by --broker-pid, else 'acl' beside the registry)")
    pair.add_argument("--keys", type=Path, required=True,
                      help="folder of provisioning folders device-<id>/ and handheld-<id>/ (public keys)")
    pair.add_argument("--hq-key", type=Path, required=True, help="HQ signing key (hq_signing.key) to sign the records")
    pair.add_argument("--out", type=Path,
                      help="folder for the signed records (default: 'pairing' beside the registry)")
    pair.add_argument("--broker-pid", type=Path, help="mosquitto pid file: send it SIGHUP to reload the ACL")
    pair.add_argument("--broker", metavar="HOST[:PORT]", help="publish the records retained on this broker (TLS)")
    pair.add_argument("--ca", type=Path, help="with --broker: fleet CA certificate")
    pair.add_argument("--cert", type=Path, help="with --broker: an hq-<id> client certificate")
    pair.add_argument("--key", type=Path, help="with --broker: its private key")
    pair.set_defaults(func=pair_command)


def handheld_peer(keys: Path, handheld: str) -> HandheldPeer:
    folder = keys / f"handheld-{handheld}"
    try:
        return HandheldPeer(id=handheld, signing_key=raw_b64(load_signing_public(folder / "handheld_signing.pub")),
                            encryption_key=raw_b64(load_encryption_public(folder / "handheld_encryption.pub")))
    except EdgeError as exc:
        raise EdgeError(f"{exc}; --keys needs handheld-{handheld}/ as `edge handheld provision` made it") from None


def device_peer(keys: Path, device: str) -> DevicePeer:
    try:
        return DevicePeer(id=device, signing_key=raw_b64(load_signing_public(keys / f"device-{device}" /
                                                                             "device_signing.pub")))
    except EdgeError as exc:
        raise EdgeError(f"{exc}; --keys needs device-{device}/ as `edge device provision` made it") from None


def pair_command(args: argparse.Namespace) -> int:
    publish = [args.broker, args.ca, args.cert, args.key]
    if any(publish) and not all(publish):
        raise EdgeError("to publish the records give all of --broker, --ca, --cert and --key (an hq-<id> certificate)")
    hq_key = load_signing_private(args.hq_key)
    registry = Registry.load(args.registry)
    if args.unpair:
        registry.unpair(args.handheld, args.device)
    else:
        registry.pair(args.handheld, args.device)
    # Every record is built before anything is written: a missing key leaves registry and ACL untouched.
    device_rec = device_record(args.device, [handheld_peer(args.keys, h) for h in
                                             registry.paired_handhelds(args.device)], hq_key)
    handheld_rec = handheld_record(args.handheld, [device_peer(args.keys, d) for d in
                                                   registry.handhelds[args.handheld].devices], hq_key)
    pid = _broker_pid(args.broker_pid)
    acl = _acl_path(args.acl, pid, args.registry)
    registry.save(args.registry)
    write_acl(registry, acl)
    verb = "unpaired from" if args.unpair else "paired with"
    print(f"handheld {args.handheld} {verb} device {args.device}; ACL written to {acl}")
    if pid is not None:
        reload_broker(pid)
        print(f"broker (pid {pid}) reloaded its ACL")
    else:
        print(f"the broker reads the file named by acl_file in its mosquitto.conf (deploy: {DEPLOY_ACL}): if that "
              f"is not {acl}, copy it there or rerun with --acl or --broker-pid; then reload the broker so the ACL "
              "takes effect: systemctl reload mosquitto (or kill -HUP <pid>)")
    out = args.out or args.registry.with_name("pairing")
    records: list[tuple[str, Path, DevicePairing | HandheldPairing]] = [
        (device_pairing(args.device), out / f"device-{args.device}.json", device_rec),
        (handheld_pairing(args.handheld), out / f"handheld-{args.handheld}.json", handheld_rec),
    ]
    for _, path, record in records:
        save_record(record, path)
    print(f"signed pairing records: {records[0][1]} ({len(device_rec.handhelds)} handheld(s)), "
          f"{records[1][1]} ({len(handheld_rec.devices)} device(s))")
    if args.broker is None:
        for topic, path, _ in records:
            print(f"  publish retained: mosquitto_pub -r -q 1 -t {shlex.quote(topic)} -f {shlex.quote(str(path))} "
                  "(with an hq certificate), or rerun with --broker")
        return 0
    _publish_retained(args, [(topic, payload(record)) for topic, _, record in records])
    print(f"published retained to {args.broker}: {', '.join(topic for topic, _, _ in records)}")
    return 0


def _broker_pid(pid_file: Path | None) -> int | None:
    if pid_file is None:
        return None
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise EdgeError(f"cannot read a pid from {pid_file}: {exc}; nothing changed. Give the running broker's "
                        "pid file, or leave --broker-pid out and reload the broker yourself") from exc
    # A pid file outlives a broker that was killed; its pid may be another program's now, which SIGHUP would end.
    if Path("/proc/self").is_dir():
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            name = ""
        if "mosquitto" not in name:
            raise EdgeError(f"{pid_file} names pid {pid}, which is {f'{name!r}' if name else 'not running'}, not "
                            "mosquitto (a broker that stopped without removing it?); nothing changed. Give the "
                            "running broker's pid file, or leave --broker-pid out and reload the broker yourself")
    return pid


def _acl_path(given: Path | None, pid: int | None, registry: Path) -> Path:
    """Where the ACL goes: --acl, else the file the running broker reads, else beside the registry.

    A --acl the running broker does not read is refused: its reload would not see the pairing."""
    read = acl_file_of(pid) if pid is not None else None
    if given is not None and read is not None and given.resolve() != read.resolve():
        raise EdgeError(f"the broker (pid {pid}) reads its ACL from {read}, not --acl {given}: the pairing would not "
                        f"take effect; nothing changed. Leave --acl out (it then writes {read}) or give that file")
    return given or read or registry.with_name("acl")


def _publish_retained(args: argparse.Namespace, messages: list[tuple[str, bytes]]) -> None:
    client = MqttClient(link_config(args))
    client.start()
    try:
        client.wait_connected(_PUBLISH_TIMEOUT_S)
        for topic, data in messages:
            ack = client.publish_wait(topic, data, True, _PUBLISH_TIMEOUT_S)
            if not ack.ok:
                raise LinkError(f"broker refused the pairing record on {topic}: {ack.reason}; does the ACL let "
                                f"{client.identity.name} write pairing topics?")
    finally:
        client.stop()
