"""`edge hq broker --dir DIR`: the fleet's broker on this machine, for a trial.

mosquitto with deploy/mosquitto/mosquitto.conf as shipped, except the lines that name this machine's paths
and port (edge.hq.broker.LocalBroker): mutual TLS, identity as username, the ACL and the limits are the
production ones. It listens on 127.0.0.1 only and runs until Ctrl-C or SIGTERM.
"""

import argparse
import signal
import socket
import threading
from pathlib import Path

from edge.cliargs import DEFAULT_PORT, Commands
from edge.errors import EdgeError
from edge.hq import pki
from edge.hq.acl import Registry, write_acl
from edge.hq.broker import DEPLOY_CONF, LocalBroker

_POLL_S = 0.5


def register(commands: Commands) -> None:
    hq = commands.group("hq")
    broker = hq.add_parser(
        "broker", help="run mosquitto with the deploy configuration on 127.0.0.1, for a trial",
        description=__doc__.split("\n\n", 1)[1] + " DIR is the fleet folder the set-up commands write: "
        "DIR/pki (`edge hq pki init --out DIR/pki`), DIR/registry.json and DIR/acl (`edge hq pki issue "
        "--registry DIR/registry.json`, `edge hq pair --registry DIR/registry.json`); the broker's own "
        "state (config, persistence, log, pid file) goes to DIR/broker/.")
    broker.add_argument("--dir", type=Path, required=True, help="fleet folder (see above)")
    broker.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    broker.add_argument("--pki", type=Path, help="folder with ca.crt, broker.crt, broker.key (default: DIR/pki)")
    broker.add_argument("--acl", type=Path, help="ACL file the broker reads (default: DIR/acl, written from "
                        "DIR/registry.json when missing)")
    broker.set_defaults(func=broker_command)


def broker_command(args: argparse.Namespace) -> int:
    folder: Path = args.dir.resolve()
    tls = (args.pki or folder / "pki").resolve()
    missing = [name for name in (pki.CA_CERT, pki.BROKER_CERT, pki.BROKER_KEY) if not (tls / name).is_file()]
    if missing:
        raise EdgeError(f"{tls} lacks {', '.join(missing)}: make them with `edge hq pki init --out {tls}`")
    acl = (args.acl or folder / "acl").resolve()
    if not acl.is_file():
        registry = folder / "registry.json"
        if not registry.is_file():
            raise EdgeError(f"no ACL at {acl} and no {registry} to write it from: register the fleet's clients with "
                            f"`edge hq pki issue … --registry {registry}`")
        write_acl(Registry.load(registry), acl)
    if not 0 < args.port < 65536:
        raise EdgeError(f"--port {args.port}: give a port between 1 and 65535")
    _refuse_a_second_broker(folder / "broker" / "mosquitto.pid", args.port)
    broker = LocalBroker(folder / "broker", tls, acl, port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    broker.start()
    try:
        print(f"mosquitto (pid {broker.pid}) on 127.0.0.1:{broker.port} with {DEPLOY_CONF}\n"
              f"  clients: --broker 127.0.0.1:{broker.port} --ca {tls / pki.CA_CERT} and a certificate from "
              f"`edge hq pki issue`\n"
              f"  ACL: {acl}; after `edge hq pair`, reload with --broker-pid {broker.workdir / 'mosquitto.pid'}\n"
              f"  log: {broker.log}; Ctrl-C stops it", flush=True)
        while not stop.wait(_POLL_S):
            if not broker.running():
                raise EdgeError(f"mosquitto exited by itself; see {broker.log}")
    finally:
        broker.stop()
    return 0


def _refuse_a_second_broker(pid_file: Path, port: int) -> None:
    """Before anything in DIR/broker is touched: a broker already running from DIR (its pid file would be taken
    over, then removed), or anything on the port (clients would reach it, not this one), stops the command."""
    try:
        pid = int(pid_file.read_text().strip())
        running = "mosquitto" in Path(f"/proc/{pid}/comm").read_text()
    except (OSError, ValueError):
        running = False
    if running:
        raise EdgeError(f"a broker from this folder already runs (pid {pid}, {pid_file}): use it, or stop it first")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise EdgeError(f"127.0.0.1:{port} is taken ({exc.strerror}): stop what listens there, or give another "
                            "--port") from exc
