"""The README's fleet commands, run as written (the port aside) in an empty folder: one layout from
provisioning to ingest, the provisioned edge.toml passes `edge run --check` and its [link] reaches the broker,
and HQ accepts what the device signs."""

import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.bench.synthetic import synthetic_match
from edge.cli import main
from edge.config import load_config
from edge.hq.broker import find_mosquitto, free_port
from edge.hq.store import EventStore
from edge.link.uplink import Uplink

REPO = Path(__file__).resolve().parents[1]
READY = {"broker": "on 127.0.0.1:", "ingest": "connected and subscribed"}  # what each background command says when up
_TIMEOUT_S = 15.0


def readme_fleet_commands() -> list[str]:
    """The shell block under "### HQ: keys, watchlists, fleet", one command per entry, comments removed."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("### HQ: keys, watchlists, fleet"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    joined = block.group(1).replace("\\\n", " ")
    return [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines() if line.strip()]


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in reversed(started):
        proc.send_signal(signal.SIGTERM)
        proc.wait(_TIMEOUT_S)


def test_readme_fleet_commands_work_as_written(tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                               background: list[subprocess.Popen[str]],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    try:
        find_mosquitto()
    except Exception as exc:
        pytest.skip(f"mosquitto broker not installed: {exc}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    for name in ("lin-manuel-miranda.png", "biden.jpg"):
        shutil.copy(demo_dir / name, tmp_path / "photos" / name)
    (tmp_path / "entries.csv").write_text(
        "subject_id,label,category,case_reference,legal_basis,approver,expires,photos\n"
        "P-001,Lin-Manuel Miranda,wanted,CASE-1,Court order 17/2025,Insp. Kaur,2030-01-01,lin-manuel-miranda.png\n"
        "P-002,Joe Biden,wanted,CASE-2,Warrant 6/2025,Supt. Mills,2030-01-01,biden.jpg\n")
    port = free_port()
    commands = readme_fleet_commands()
    assert commands and all(c.startswith("edge ") for c in commands)
    for command in commands:
        command = command.replace("127.0.0.1:8883", f"127.0.0.1:{port}")
        args = shlex.split(command)[1:]
        if args[-1] == "&":
            args = args[:-1] + (["--port", str(port)] if args[:2] == ["hq", "broker"] else [])
            start(args, background)
        else:
            assert main(args) == 0, f"{command}: {capsys.readouterr().err}"
    out = capsys.readouterr().out
    assert "valid: device cam-01" in out and "published wl-7.bundle" in out

    cfg = load_config(tmp_path / "fleet" / "devices" / "device-cam-01" / "edge.toml")
    assert cfg.link.port == port and cfg.device.fleet == "north"
    uplink = Uplink(cfg.link.model_copy(update={"outbox": tmp_path / "outbox.sqlite"}), cfg.device.signing_key,
                    fleet=cfg.device.fleet)
    uplink.start()
    try:
        uplink.wait_connected(_TIMEOUT_S)
        uplink.send_match(synthetic_match("cam-01", 0))
        assert uplink.wait_drained(_TIMEOUT_S)
    finally:
        uplink.stop()
    store = EventStore.open(str(tmp_path / "fleet" / "hq" / "events.sqlite"))
    try:
        assert wait_for(lambda: store.count("match") == 1), f"refused: {store.rejections()}"
        assert store.rejections() == []
    finally:
        store.close()


def start(args: list[str], background: list[subprocess.Popen[str]]) -> None:
    """Start a README command that runs in the background; return once it says it is up."""
    proc = subprocess.Popen([sys.executable, "-m", "edge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    background.append(proc)
    stream = proc.stdout if args[:2] == ["hq", "broker"] else proc.stderr
    ready = READY["broker" if args[:2] == ["hq", "broker"] else "ingest"]
    assert stream is not None
    seen = []
    while ready not in (line := stream.readline()):
        assert line, f"edge {' '.join(args)} exited: {''.join(seen)}"
        seen.append(line)


def wait_for(predicate: Callable[[], bool], timeout: float = _TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
