"""`edge hq broker --dir` runs the deploy broker config for a trial; `edge hq pair` writes the ACL that
running broker reads (its acl_file), so a pairing takes effect without --acl."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main
from edge.demo.trial import TrialFleet
from edge.hq.broker import acl_file_of, find_mosquitto, free_port
from edge.link.mqtt import MqttClient
from edge.protocol import topics

_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> TrialFleet:
    try:
        find_mosquitto()
    except Exception as exc:
        pytest.skip(f"mosquitto broker not installed: {exc}")
    fleet = TrialFleet(tmp_path_factory.mktemp("fleet")).create(devices=("cam-01",), hq_clients=("pairing",))
    fleet.issue("handheld", "h1", out=fleet.handheld_dir("h1") / "tls")
    pins = fleet.root / "pins.txt"
    pins.write_text("4711=246810\n")
    fleet.run("handheld", "provision", "--id", "h1", "--hq-pub", fleet.hq_signing_pub, "--officer", "4711=Sgt. Able",
              "--pins-from", pins, "--broker", "127.0.0.1:8883", "--out", fleet.handheld_dir("h1"))
    return fleet


def _inbox_ack(trial: TrialFleet, port: int) -> bool:
    """Whether the broker lets device cam-01 put an alert in handheld h1's inbox (its ACL's pairing grant)."""
    client = MqttClient(trial.link("device-cam-01", port))
    client.start()
    try:
        client.wait_connected(_TIMEOUT_S)
        return client.publish_wait(topics.handheld_inbox("h1", "cam-01"), b"x", False, _TIMEOUT_S).ok
    finally:
        client.stop()


def test_broker_command_and_pair_write_the_acl_the_broker_reads(trial: TrialFleet,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    broker_acl = trial.root / "mosquitto-etc" / "acl"  # not beside the registry, as on an HQ host
    broker_acl.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "hq", "broker", "--dir", str(trial.root), "--port",
                             str(port), "--acl", str(broker_acl)], stdout=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline() if proc.stdout else ""
        assert f"on 127.0.0.1:{port} with " in banner and "deploy/mosquitto/mosquitto.conf" in banner, banner
        pid_file = trial.root / "broker" / "mosquitto.pid"
        pid = int(pid_file.read_text())
        assert acl_file_of(pid) == broker_acl
        assert broker_acl.is_file(), "the ACL is written from registry.json when missing"
        assert not _inbox_ack(trial, port), "not paired yet: the broker must refuse"

        pair = ["hq", "pair", "--handheld", "h1", "--device", "cam-01", "--registry", str(trial.registry),
                "--keys", str(trial.keys), "--hq-key", str(trial.hq_signing_key), "--broker-pid", str(pid_file)]
        before = trial.registry.read_text(), trial.acl.read_text()
        assert main([*pair, "--acl", str(trial.acl)]) == 2  # an ACL the broker does not read: refused
        assert f"reads its ACL from {broker_acl}" in capsys.readouterr().err
        assert (trial.registry.read_text(), trial.acl.read_text()) == before, "nothing changed"

        assert main(pair) == 0
        out = capsys.readouterr().out
        assert f"ACL written to {broker_acl}" in out and f"broker (pid {pid}) reloaded its ACL" in out
        assert json.loads(trial.registry.read_text())["handhelds"]["h1"]["devices"] == ["cam-01"]
        assert _inbox_ack(trial, port), "paired: the broker it reloaded must now allow it"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(_TIMEOUT_S) == 0
    assert not Path(f"/proc/{pid}").exists(), "the broker it started is stopped with it"


def test_pair_without_a_broker_says_where_the_acl_went(trial: TrialFleet, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hq", "pair", "--handheld", "h1", "--device", "cam-01", "--registry", str(trial.registry),
                 "--keys", str(trial.keys), "--hq-key", str(trial.hq_signing_key), "--unpair"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"ACL written to {trial.acl}" in out and "/etc/mosquitto/edge/acl" in out and "--broker-pid" in out


def test_broker_command_names_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hq", "broker", "--dir", str(tmp_path)]) == 2
    assert f"edge hq pki init --out {tmp_path / 'pki'}" in capsys.readouterr().err


def test_pair_refuses_a_stale_pid_file_naming_another_process(trial: TrialFleet, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A broker killed without removing its pid file: the pid may be another program's now, which SIGHUP ends."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        pid_file = tmp_path / "mosquitto.pid"
        pid_file.write_text(f"{other.pid}\n")
        before = trial.registry.read_text(), trial.acl.read_text()
        assert main(["hq", "pair", "--handheld", "h1", "--device", "cam-01", "--registry", str(trial.registry),
                     "--keys", str(trial.keys), "--hq-key", str(trial.hq_signing_key),
                     "--broker-pid", str(pid_file)]) == 2
        assert "not mosquitto" in capsys.readouterr().err
        assert other.poll() is None, "the unrelated process must not be signalled"
        assert (trial.registry.read_text(), trial.acl.read_text()) == before, "nothing changed"
    finally:
        other.kill()
        other.wait()


def test_a_second_broker_on_the_same_folder_or_port_is_refused(trial: TrialFleet, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """It once printed a banner with its own pid, failed on the taken port, and took the running one's pid file."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "hq", "broker", "--dir", str(trial.root), "--port",
                             str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert "on 127.0.0.1:" in (proc.stdout.readline() if proc.stdout else "")
        pid_file = trial.root / "broker" / "mosquitto.pid"
        pid = pid_file.read_text()
        assert main(["hq", "broker", "--dir", str(trial.root), "--port", str(free_port())]) == 2
        assert "already runs" in capsys.readouterr().err
        other = tmp_path / "other"
        (other / "pki").mkdir(parents=True)
        for name in ("ca.crt", "broker.crt", "broker.key"):
            (other / "pki" / name).write_bytes((trial.root / "pki" / name).read_bytes())
        (other / "acl").write_text(trial.acl.read_text())
        assert main(["hq", "broker", "--dir", str(other), "--port", str(port)]) == 2
        assert f"127.0.0.1:{port} is taken" in capsys.readouterr().err
        assert pid_file.read_text() == pid and proc.poll() is None, "the running broker is left as it was"
        # a client added while it runs: the reload named is this broker's, not the system's mosquitto service
        assert main(["hq", "pki", "issue", "--role", "device", "--id", "cam-09", "--ca-dir", str(trial.root / "pki"),
                     "--out", str(tmp_path / "cam-09"), "--registry", str(trial.registry)]) == 0
        assert f"reload the broker (kill -HUP $(cat {pid_file}))" in capsys.readouterr().out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(_TIMEOUT_S) == 0
