"""A throwaway fleet on loopback for the demo, the benchmarks and the tests: one builder, one layout.

Each step is the `edge` command an operator would run (`edge hq pki init | issue`, `edge hq keys init`,
`edge device provision`, `edge handheld provision`, `edge hq pair`), run in this process and logged to
ROOT/setup.log, so what a demo, a benchmark or a test stands on is what the set-up commands make. The broker
is mosquitto with the deploy configuration on 127.0.0.1 (LocalBroker).

Layout under ROOT: pki/ (CA, broker certificate), certs/ (client certificates `<role>-<id>.crt|key` and
ca.crt), registry.json and acl, hq/ (HQ signing key pair, HQ event store), devices/ (provisioning folders
`device-<id>/` and `handheld-<id>/`, as HQ ingest and `edge hq pair --keys` read them), state/<device>/,
broker/.
"""

import contextlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge.cli import main
from edge.config.link import LinkConfig
from edge.errors import EdgeError
from edge.hq.acl import Registry, write_acl
from edge.hq.broker import LocalBroker
from edge.keys import DEVICE_TOML, HQ_SIGNING_KEY, HQ_SIGNING_PUB


class TrialFleet:
    """Paths and set-up steps of a fleet under `root`; `fleet` is the devices' fleet (their watchlist topic)."""

    def __init__(self, root: Path, fleet: str = "trial") -> None:
        self.root = root
        self.fleet = fleet
        self.pki = root / "pki"
        self.certs = root / "certs"
        self.registry = root / "registry.json"
        self.acl = root / "acl"
        self.hq = root / "hq"
        self.keys = root / "devices"
        self.hq_db = self.hq / "events.sqlite"

    @property
    def hq_signing_key(self) -> Path:
        return self.hq / HQ_SIGNING_KEY

    @property
    def hq_signing_pub(self) -> Path:
        return self.hq / HQ_SIGNING_PUB

    def device_dir(self, device: str) -> Path:
        return self.keys / f"device-{device}"

    def handheld_dir(self, handheld: str) -> Path:
        return self.keys / f"handheld-{handheld}"

    def state_dir(self, device: str) -> Path:
        return self.root / "state" / device

    def cert(self, name: str) -> tuple[Path, Path]:
        """Certificate and key of client `name` (`<role>-<id>`, the broker username)."""
        return self.certs / f"{name}.crt", self.certs / f"{name}.key"

    def run(self, *argv: object) -> str:
        """Run an `edge` command in this process; its output is returned (and kept in setup.log)."""
        args = [str(a) for a in argv]
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(args)
        text = out.getvalue()
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "setup.log", "a") as log:
            log.write(f"$ edge {' '.join(args)}\n{text}\n")
        if code != 0:
            raise EdgeError(f"`edge {' '.join(args)}` failed ({code}): {text.strip()[-500:]}")
        return text

    # set-up steps, each one command

    def init_ca(self) -> None:
        self.run("hq", "pki", "init", "--out", self.pki)

    def issue(self, role: str, ident: str, fleet: str | None = None, registered: bool = True,
              out: Path | None = None) -> None:
        """A client certificate for `<role>-<ident>` (in certs/, or `out`), registered (ACL rewritten) unless not."""
        extra = ["--registry", self.registry, "--acl", self.acl] if registered else []
        if fleet is not None:
            extra += ["--fleet", fleet]
        self.run("hq", "pki", "issue", "--role", role, "--id", ident, "--ca-dir", self.pki, "--out", out or self.certs,
                 *extra)

    def init_hq_keys(self) -> None:
        self.run("hq", "keys", "init", "--out", self.hq)

    def provision_device(self, device: str) -> Path:
        self.run("device", "provision", "--id", device, "--hq-pub", self.hq_signing_pub, "--out",
                 self.device_dir(device))
        return self.device_dir(device)

    def create(self, devices: tuple[str, ...] = (), hq_clients: tuple[str, ...] = ("ingest",)) -> "TrialFleet":
        """CA, HQ clients' and devices' certificates (devices in this fleet), HQ signing key, provisioned devices."""
        self.init_ca()
        for ident in hq_clients:
            self.issue("hq", ident)
        for device in devices:
            self.issue("device", device, fleet=self.fleet)
        self.init_hq_keys()
        for device in devices:
            self.provision_device(device)
        return self

    def provision_handheld(self, handheld: str, port: int, *options: object) -> Path:
        """`edge handheld provision` (officers and PIN options in `options`) and its certificate in its tls/."""
        folder = self.handheld_dir(handheld)
        self.run("handheld", "provision", "--id", handheld, "--hq-pub", self.hq_signing_pub, *options,
                 "--broker", f"127.0.0.1:{port}", "--out", folder)
        self.issue("handheld", handheld, out=folder / "tls")
        return folder

    def broker(self) -> LocalBroker:
        """mosquitto for this fleet (not started), on a free port; the ACL is written from the registry if absent."""
        if not self.acl.is_file():
            write_acl(Registry.load(self.registry), self.acl)
        return LocalBroker(self.root / "broker", self.pki, self.acl)

    def pair(self, handheld: str, device: str, broker: LocalBroker, client: str = "hq-pairing") -> None:
        """`edge hq pair`: registry, ACL (broker reloaded) and the signed pairing records, retained."""
        cert, key = self.cert(client)
        self.run("hq", "pair", "--handheld", handheld, "--device", device, "--registry", self.registry,
                 "--acl", self.acl, "--keys", self.keys, "--hq-key", self.hq_signing_key,
                 "--broker-pid", broker.workdir / "mosquitto.pid", "--broker", f"127.0.0.1:{broker.port}",
                 "--ca", self.certs / "ca.crt", "--cert", cert, "--key", key)

    # what the parts connect with

    def link(self, name: str, port: int, certs: Path | None = None, **extra: object) -> LinkConfig:
        """LinkConfig of client `name` (e.g. "device-a") on 127.0.0.1:`port`; `extra` sets any other field."""
        folder = certs or self.certs
        settings: dict[str, object] = {"host": "127.0.0.1", "port": port, "ca": self.certs / "ca.crt",
                                       "cert": folder / f"{name}.crt", "key": folder / f"{name}.key", **extra}
        return LinkConfig.model_validate(settings)

    def device_config(self, device: str, source: str, port: int, threads: int = 1, place: str = "trial") -> Path:
        """The device's edge.toml: its provisioned identity plus camera, link and state paths."""
        cert, key = self.cert(f"device-{device}")
        provisioned = (self.device_dir(device) / DEVICE_TOML).read_text()
        text = provisioned + "\n".join([
            f"state_dir = {json.dumps(str(self.state_dir(device)))}",
            f"fleet = {json.dumps(self.fleet)}",
            f"place = {json.dumps(place)}",
            "[camera]", f"source = {json.dumps(source)}",
            "[runtime]", f"threads = {threads}",
            "[watchlist]", f"follow = [{json.dumps(self.fleet)}]",  # build_watchlist's id
            "[link]", 'host = "127.0.0.1"', f"port = {port}", f"ca = {json.dumps(str(self.certs / 'ca.crt'))}",
            f"cert = {json.dumps(str(cert))}", f"key = {json.dumps(str(key))}",
            "reconnect_max_s = 2", "keepalive_s = 10",
        ]) + "\n"
        path = self.device_dir(device) / "edge.toml"
        path.write_text(text)
        return path

    def build_watchlist(self, devices: list[str], photos: Path, people: dict[str, str], version: int,
                        out: Path, embedder: str | None = None) -> Path:
        """Enroll `people` (photo file -> name) from `photos` into a bundle for `devices`, expiring in a day
        (with `embedder`, else the default one)."""
        expires = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = ["subject_id,label,category,case_reference,legal_basis,approver,expires,photos"]
        for n, (photo, name) in enumerate(people.items(), 1):
            rows.append(f"DEMO-{n:03d},{name},demo,DEMO-CASE-{n:03d},"
                        f"demonstration only: not a real case,demo HQ,{expires},{photo}")
        entries = self.hq / "entries.csv"
        entries.write_text("\n".join(rows) + "\n")
        self.run("watchlist", "build", "--photos", photos, "--entries", entries, "--hq-key", self.hq_signing_key,
                 "--recipients", *(self.device_dir(d) for d in devices), "--list-version", version,
                 "--expires", expires, "--watchlist-id", self.fleet, "--scope", f"fleet {self.fleet}", "--out", out,
                 *(("--embedder", embedder) if embedder else ()))
        return out

    def publish(self, bundle: Path, port: int, client: str = "hq-publisher") -> None:
        """`edge watchlist publish`, retained for this fleet."""
        cert, key = self.cert(client)
        self.run("watchlist", "publish", bundle, "--fleet", self.fleet, "--broker", f"127.0.0.1:{port}",
                 "--ca", self.certs / "ca.crt", "--cert", cert, "--key", key)

    def ingest_command(self, port: int, client: str = "hq-ingest") -> list[str]:
        """The `edge hq ingest` arguments that store this fleet's events in hq/events.sqlite."""
        cert, key = self.cert(client)
        return ["hq", "ingest", "--broker", f"127.0.0.1:{port}", "--ca", str(self.certs / "ca.crt"), "--cert",
                str(cert), "--key", str(key), "--db", str(self.hq_db), "--device-keys", str(self.keys),
                "--hq-pub", str(self.hq_signing_pub)]
