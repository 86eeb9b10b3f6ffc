"""`edge demo`: broker, HQ, a device and a handheld on one machine, the watchlist synced over MQTT.

Every part runs as the real command in its own process (`edge hq ingest`, `edge handheld`, `edge run`), with
throwaway identities made by the real set-up commands. The officer's decisions are either made by a person on
the printed page (`--manual`) or, by default, by a scripted officer through the same page API, said so.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge.demo.media import CLIP, PEOPLE, find_media
from edge.demo.trial import TrialFleet
from edge.errors import EdgeError
from edge.hq.broker import BrokerError, find_mosquitto

OFFICER = ("demo-officer", "Officer Demo")
DEVICE, HANDHELD = "demo-cam", "demo-handheld"


@dataclass
class Service:
    name: str
    process: subprocess.Popen[str]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _edge(*argv: str) -> list[str]:
    return [sys.executable, "-m", "edge", *argv]


@contextmanager
def service(name: str, argv: list[str], logs: Path) -> Iterator[Service]:
    log = logs / f"{name}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    svc = Service(name, process, log)
    try:
        yield svc
    finally:
        svc.stop()


def _wait_for_line(svc: Service, marker: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in svc.log.read_text().splitlines():
            if marker in line:
                return line
        if svc.process.poll() is not None:
            raise EdgeError(f"{svc.name} exited ({svc.process.returncode}); see {svc.log}")
        time.sleep(0.1)
    raise EdgeError(f"{svc.name} did not start within {timeout:.0f} s; see {svc.log}")


class Page:
    """The handheld page's API, as the browser uses it (token in the X-Edge-Token header)."""

    def __init__(self, url: str) -> None:
        self.url = url
        base, _, fragment = url.partition("#")
        self.base = base.rstrip("/")
        self.token = fragment.removeprefix("token=")

    def _call(self, path: str, body: dict[str, str] | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers={
            "X-Edge-Token": self.token, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def alerts(self) -> list[dict]:
        return self._call("/api/state")["alerts"]

    def decide(self, event_id: str, decision: str) -> None:
        self._call("/api/decisions", {"event_id": event_id, "officer_id": OFFICER[0], "decision": decision})


def run_demo(media: Path | None, workdir: Path | None, manual: bool, port: int, say=print) -> dict[str, object]:
    """Bring everything up, run the clip, adjudicate, and return the summary."""
    try:
        find_mosquitto()
    except BrokerError as exc:
        raise EdgeError(f"{exc}. The demo runs the fleet's real broker configuration, which needs MQTT 5, TLS "
                        "client certificates and per-client ACLs; the pure-Python brokers on PyPI (amqtt: MQTT "
                        "3.1.1 only) offer none of these, so there is no in-process fallback") from exc
    root = workdir or Path(tempfile.mkdtemp(prefix="edge-demo-"))
    media_dir = find_media(media, Path.home() / ".cache" / "edge" / "demo")
    fleet = TrialFleet(root, fleet="demo")
    say(f"edge demo in {root} (media: {media_dir})")
    say("1/6 identities: fleet CA, broker, HQ, device and handheld certificates and keys")
    fleet.create(devices=(DEVICE,), hq_clients=("ingest", "publisher", "pairing"))
    broker = fleet.broker()
    with ExitStack() as stack:
        broker.start()
        stack.callback(broker.stop)
        say(f"2/6 broker: mosquitto with deploy/mosquitto/mosquitto.conf on 127.0.0.1:{broker.port} (TLS, ACL)")
        handheld_dir = fleet.provision_handheld(HANDHELD, broker.port, "--officer", f"{OFFICER[0]}={OFFICER[1]}")
        fleet.pair(HANDHELD, DEVICE, broker)
        logs = root / "logs"
        logs.mkdir(exist_ok=True)
        stack.enter_context(service("hq-ingest", _edge(*fleet.ingest_command(broker.port)), logs))
        handheld = stack.enter_context(service("handheld", _edge(
            "handheld", "--config", str(handheld_dir / "handheld.toml"), "--port", str(port)), logs))
        url = _wait_for_line(handheld, "open http", 30).split("open ", 1)[1].strip()
        page = Page(url)
        say(f"3/6 HQ ingest and the officer's handheld are up; handheld page: {url}")
        say(page_lifetime(manual))
        say("4/6 watchlist: enrolling " + ", ".join(PEOPLE.values()) + " with the device's own models, "
            "signed, encrypted to the device, published retained")
        bundle = fleet.build_watchlist([DEVICE], media_dir, PEOPLE, 1, fleet.hq / "demo-v1.bundle")
        fleet.publish(bundle, broker.port)
        say(f"5/6 device: `edge run` on {CLIP} (installs the watchlist from MQTT, alerts go to HQ and the handheld)")
        config = fleet.device_config(DEVICE, str(media_dir / CLIP), broker.port, place="demo: one machine")
        device = stack.enter_context(service("device", _edge("run", "--config", str(config)), logs))
        decided = _adjudicate(page, device, manual, say)
        device.process.wait(300)
        if device.process.returncode != 0:
            raise EdgeError(f"the device stopped with {device.process.returncode}; see {device.log}")
        say("6/6 collecting what HQ received")
        summary = _summary(fleet, decided)
    say(_render(summary, root))
    if not manual:
        say("  the handheld page closed with the demo: `edge demo --manual` keeps it up until Ctrl-C")
    return summary


def page_lifetime(manual: bool) -> str:
    """What becomes of the printed page: without --manual it closes with the demo, seconds after the clip ends."""
    if manual:
        return "    open the page and decide on each alert: it stays up until you press Ctrl-C here"
    return ("    a scripted officer decides on this page, which closes when the clip ends (seconds from now); "
            "to keep it up and decide yourself, run `edge demo --manual` (until Ctrl-C)")


def _adjudicate(page: Page, device: Service, manual: bool, say) -> int:
    """Scripted officer (default) confirms each alert on the page; --manual waits for a person until Ctrl-C."""
    seen: set[str] = set()
    try:
        while True:
            for alert in page.alerts():
                if alert["event_id"] in seen:
                    continue
                seen.add(alert["event_id"])
                say(f"    alert on the handheld: {alert['label']} ({alert['category']}, case {alert['case_ref']}, "
                    f"legal basis: {alert['legal_basis']}; seen at {alert['place']}; score {alert['score']:.3f}, "
                    f"threshold {alert['threshold']:.3f})" + ("" if manual else " -> scripted officer confirms"))
                if not manual:
                    page.decide(alert["event_id"], "confirm")
            if not manual and device.process.poll() is not None:
                time.sleep(1.0)  # the last alerts reach the handheld just after the device stops
                if all(a["event_id"] in seen for a in page.alerts()):
                    return len(seen)
            time.sleep(0.3)
    except KeyboardInterrupt:
        return len(seen)


def _hq(fleet: TrialFleet, *args: str) -> list[dict]:
    out = subprocess.run(_edge("hq", "events", "--db", str(fleet.hq_db), "--json", "--limit", "100000", *args),
                         capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _summary(fleet: TrialFleet, decided: int) -> dict[str, object]:
    log = fleet.state_dir(DEVICE) / "audit" / "audit.log"
    on_device = len(log.read_bytes().splitlines())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        audits = _hq(fleet, "--kind", "audit")
        kinds = [a["record"]["kind"] for a in audits]
        if len(audits) >= on_device and kinds.count("adjudication") >= decided:
            break
        time.sleep(0.5)
    matches = _hq(fleet, "--kind", "match")
    verify = subprocess.run(_edge("audit", "verify", str(log), "--pub",
                                  str(fleet.device_dir(DEVICE) / "device_signing.pub")), capture_output=True, text=True)
    return {
        "alerts_raised": kinds.count("alert"),
        "alerts_adjudicated": kinds.count("adjudication"),
        "match_events_at_hq": len(matches),
        "people_alerted": sorted({m["label"] for m in matches}),
        "audit_records_at_hq": len(audits),
        "audit_records_on_device": on_device,
        "audit_chain_verified": verify.returncode == 0,
        "audit_verify": verify.stdout.strip().splitlines()[-1] if verify.stdout.strip() else verify.stderr.strip(),
    }


def _render(s: dict[str, object], root: Path) -> str:
    return "\n".join([
        "",
        "summary",
        f"  alerts raised by the device     {s['alerts_raised']}  ({', '.join(s['people_alerted']) or 'no one'})",
        f"  adjudicated on the handheld     {s['alerts_adjudicated']}",
        f"  match events stored at HQ       {s['match_events_at_hq']}",
        f"  audit records at HQ             {s['audit_records_at_hq']} of the device's {s['audit_records_on_device']}",
        f"  device audit chain verified     {'yes' if s['audit_chain_verified'] else 'NO'}  ({s['audit_verify']})",
        f"  everything (keys, logs, HQ database, audit log) is in {root}",
    ])
