"""`edge hq pki init | issue`: the fleet CA, the broker certificate and per-identity client certificates."""

import argparse
import shlex
from pathlib import Path

from edge.cliargs import Commands, add_renamed
from edge.errors import EdgeError
from edge.hq import pki
from edge.hq.acl import HQ_ROLES, Registry, default_hq_roles, write_acl
from edge.protocol.topics import ROLES, Identity


def register(commands: Commands) -> None:
    hq = commands.group("hq")
    group = hq.add_parser("pki", help="fleet certificate authority for the MQTT broker (mutual TLS)")
    sub = group.add_subparsers(dest="pki_command", metavar="COMMAND")
    sub.required = True

    init = sub.add_parser("init", help="create the fleet CA and the broker certificate")
    init.add_argument("--out", type=Path, required=True, help="folder for ca.crt, ca.key, broker.crt, broker.key")
    init.add_argument("--name", action="append", default=[], metavar="HOST",
                      help="extra DNS name or IP of the broker (repeatable); localhost and 127.0.0.1 are always in")
    init.add_argument("--days", type=int, default=3650, help="CA validity in days (broker cert: at most 825)")
    init.add_argument("--force", action="store_true",
                      help="replace an existing CA (invalidates every issued certificate)")
    init.set_defaults(func=_init)

    issue = sub.add_parser("issue", help="issue a client certificate; its CN <role>-<id> is the broker username")
    issue.add_argument("--role", choices=ROLES, required=True, help="what the client is: its topics and ACL follow")
    issue.add_argument("--id", required=True, help="device, handheld or HQ client id (letters, digits, _ . -)")
    issue.add_argument("--ca-dir", type=Path, required=True, dest="ca", metavar="DIR",
                       help="the CA folder made by `edge hq pki init` (ca.crt and ca.key)")
    add_renamed(issue, "--ca", "--ca-dir", type=Path)
    issue.add_argument("--out", type=Path, required=True, help="folder for <role>-<id>.crt/.key and ca.crt")
    issue.add_argument("--days", type=int, default=825, help="validity in days")
    issue.add_argument("--force", action="store_true", help="replace an existing certificate and key")
    issue.add_argument("--registry", type=Path, help="also register the identity in this fleet registry (JSON)")
    issue.add_argument("--fleet", help="with --registry and --role device: the device's fleet (its watchlist topic)")
    issue.add_argument("--hq-role", action="append", choices=HQ_ROLES, metavar="ROLE",
                       help="with --registry and --role hq: what this HQ client does, and so all it may do on the "
                       f"broker ({', '.join(HQ_ROLES)}; repeatable). Default: the role its id starts with")
    issue.add_argument("--acl", type=Path,
                       help="with --registry: regenerate this broker ACL file (default: 'acl' beside the registry)")
    issue.set_defaults(func=_issue)


def _init(args: argparse.Namespace) -> int:
    out = pki.init_ca(args.out, args.name, args.days, args.force)
    print(f"CA and broker certificate written to {out}")
    print(f"  broker needs: {out / pki.CA_CERT}, {out / pki.BROKER_CERT}, {out / pki.BROKER_KEY}")
    print(f"  keep offline: {out / pki.CA_KEY}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    try:
        identity = Identity(args.role, args.id)
    except ValueError as exc:
        raise EdgeError(str(exc)) from exc
    if args.fleet is not None and (args.registry is None or args.role != "device"):
        raise EdgeError("--fleet only applies with --registry and --role device")
    if args.hq_role and (args.registry is None or args.role != "hq"):
        raise EdgeError("--hq-role only applies with --registry and --role hq")
    if args.registry is not None and args.role == "hq" and not (args.hq_role or default_hq_roles(args.id)):
        raise EdgeError(f"say what hq-{args.id} does with --hq-role ({', '.join(HQ_ROLES)}; repeatable), or give "
                        "it an id that starts with its role (e.g. ingest2): it gets only that role's broker rights")
    files = pki.issue(args.ca, identity, args.out, args.days, force=args.force)
    print(f"{identity.name}: {files.cert}, {files.key} (CA: {files.ca})")
    if args.registry is not None:
        registry = Registry.load(args.registry)
        try:
            registry.add(identity, args.fleet, args.hq_role)
        except ValueError as exc:
            raise EdgeError(str(exc)) from exc
        registry.save(args.registry)
        acl = args.acl or args.registry.with_name("acl")
        write_acl(registry, acl)
        local = args.registry.with_name("broker") / "mosquitto.pid"  # `edge hq broker --dir` beside the registry
        how = f"kill -HUP $(cat {shlex.quote(str(local))})" if local.is_file() else "systemctl reload mosquitto"
        print(f"registered in {args.registry}; ACL written to {acl}: reload the broker ({how})")
    return 0
