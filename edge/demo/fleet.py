"""A throwaway fleet on one machine: CA, broker, HQ keys, one device, one handheld — made with the real commands."""

import contextlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from edge.cli import main
from edge.errors import EdgeError
from edge.hq.acl import Registry, write_acl
from edge.hq.broker import LocalBroker


@dataclass
class Fleet:
    """Paths and set-up of a one-device fleet under `root`. Each step is the `edge` command a user would run."""

    root: Path
    device_id: str = "demo-cam"
    handheld_id: str = "demo-handheld"
    fleet: str = "demo"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def registry(self) -> Path:
        return self.root / "registry.json"

    @property
    def acl(self) -> Path:
        return self.root / "acl"

    @property
    def hq(self) -> Path:
        return self.root / "hq"

    @property
    def device_keys(self) -> Path:
        """Folder of provisioned devices, as HQ ingest reads it (`device-<id>/device_signing.pub`)."""
        return self.root / "devices"

    @property
    def device_dir(self) -> Path:
        return self.device_keys / f"device-{self.device_id}"

    @property
    def state_dir(self) -> Path:
        return self.root / "state" / self.device_id

    @property
    def hq_db(self) -> Path:
        return self.hq / "events.sqlite"

    def cert(self, role: str, ident: str) -> tuple[Path, Path]:
        return self.certs / f"{role}-{ident}.crt", self.certs / f"{role}-{ident}.key"

    def run(self, *argv: str) -> str:
        """Run an `edge` command in this process; its output is returned (and kept in setup.log)."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(list(argv))
        text = out.getvalue()
        with open(self.root / "setup.log", "a") as log:
            log.write(f"$ edge {' '.join(argv)}\n{text}\n")
        if code != 0:
            raise EdgeError(f"`edge {' '.join(argv)}` failed ({code}): {text.strip()[-500:]}")
        return text

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.run("hq", "pki", "init", "--out", str(self.pki))
        reg = ["--registry", str(self.registry), "--acl", str(self.acl)]
        for role, ident in (("hq", "ingest"), ("hq", "publisher")):
            self.run("hq", "pki", "issue", "--role", role, "--id", ident, "--ca", str(self.pki), "--out",
                     str(self.certs), *reg)
        self.run("hq", "pki", "issue", "--role", "device", "--id", self.device_id, "--fleet", self.fleet, "--ca",
                 str(self.pki), "--out", str(self.certs), *reg)
        self.run("hq", "keys", "init", "--out", str(self.hq))
        self.run("device", "provision", "--id", self.device_id, "--hq-pub", str(self.hq / "hq_signing.pub"),
                 "--out", str(self.device_dir))

    def broker(self) -> LocalBroker:
        if not self.acl.is_file():
            write_acl(Registry.load(self.registry), self.acl)
        return LocalBroker(self.root / "broker", self.pki, self.acl)

    def device_config(self, source: str, port: int, threads: int = 1) -> Path:
        """The device's edge.toml: its provisioned identity plus camera, link and state paths."""
        cert, key = self.cert("device", self.device_id)
        provisioned = (self.device_dir / "device.toml").read_text()
        text = provisioned + "\n".join([
            f"state_dir = {json.dumps(str(self.state_dir))}",
            f"fleet = {json.dumps(self.fleet)}",
            'place = "demo: one machine"',
            "[camera]", f"source = {json.dumps(source)}",
            "[runtime]", f"threads = {threads}",
            "[link]", 'host = "127.0.0.1"', f"port = {port}", f"ca = {json.dumps(str(self.certs / 'ca.crt'))}",
            f"cert = {json.dumps(str(cert))}", f"key = {json.dumps(str(key))}",
            "reconnect_max_s = 2", "keepalive_s = 10",
        ]) + "\n"
        path = self.device_dir / "edge.toml"
        path.write_text(text)
        return path

    def build_watchlist(self, photos: Path, people: dict[str, str], version: int, out: Path) -> Path:
        """Enrol `people` (photo file -> name) from `photos` into a bundle for this device."""
        expires = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows = ["subject_id,label,category,case_reference,legal_basis,approver,expires,photos"]
        for n, (photo, name) in enumerate(people.items(), 1):
            rows.append(f"DEMO-{n:03d},{name},demo,DEMO-CASE-{n:03d},"
                        f"demonstration only: not a real case,demo HQ,{expires},{photo}")
        entries = self.hq / "entries.csv"
        entries.write_text("\n".join(rows) + "\n")
        self.run("watchlist", "build", "--photos", str(photos), "--entries", str(entries), "--hq-key",
                 str(self.hq / "hq_signing.key"), "--recipients", str(self.device_dir), "--version", str(version),
                 "--expires", expires, "--watchlist-id", "demo", "--scope", f"fleet {self.fleet}", "--out", str(out))
        return out

    def publish(self, bundle: Path, port: int) -> None:
        cert, key = self.cert("hq", "publisher")
        self.run("watchlist", "publish", str(bundle), "--fleet", self.fleet, "--broker", f"127.0.0.1:{port}",
                 "--ca", str(self.certs / "ca.crt"), "--cert", str(cert), "--key", str(key))

    def ingest_command(self, port: int) -> list[str]:
        cert, key = self.cert("hq", "ingest")
        return ["hq", "ingest", "--broker", f"127.0.0.1:{port}", "--ca", str(self.certs / "ca.crt"), "--cert",
                str(cert), "--key", str(key), "--db", str(self.hq_db), "--device-keys", str(self.device_keys)]
