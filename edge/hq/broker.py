"""Run a local mosquitto with the project's deploy configuration (tests, benchmarks, demos).

Only the lines that name this machine's paths and port are replaced; everything that decides security
(mutual TLS, identity as username, ACL, limits, persistence) is the file that ships in deploy/mosquitto.
The listener binds 127.0.0.1 only.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from edge.errors import EdgeError

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


class BrokerError(EdgeError):
    """mosquitto is missing, would not start, or the deploy configuration changed shape."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        raise BrokerError("mosquitto not found: install it (Debian/Ubuntu: apt-get install mosquitto)")
    return found


def acl_file_of(pid: int) -> Path | None:
    """The ACL file the running mosquitto `pid` reads: `acl_file` in the config it was started with (`-c`).

    None when that cannot be known here (another host's broker, no permission, no `-c`, no `acl_file`).
    """
    proc = Path(f"/proc/{pid}")
    try:
        argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        conf = next(argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-c", "--config-file"))
        path = proc / "cwd" / conf if not conf.startswith("/") else Path(conf)
        lines = path.read_text().splitlines()
    except (OSError, StopIteration):
        return None
    found = None
    for line in lines:
        option, _, value = line.strip().partition(" ")
        if option == "acl_file" and value.strip():
            found = Path(value.strip())  # mosquitto uses the last one
    return found


def render_conf(template: str, overrides: dict[str, str]) -> str:
    """Replace each `option …` line named in `overrides`; every one must occur exactly once in `template`."""
    lines = template.splitlines()
    for option, value in overrides.items():
        hits = [i for i, line in enumerate(lines) if line.split(" ", 1)[0] == option]
        if len(hits) != 1:
            raise BrokerError(f"deploy mosquitto.conf has {len(hits)} '{option}' lines, expected exactly 1")
        lines[hits[0]] = f"{option} {value}"
    return "\n".join(lines) + "\n"


class LocalBroker:
    """mosquitto on 127.0.0.1:`port` with the deploy config, TLS files from `tls_dir`, ACL from `acl`.

    State (persistence, log, pid) lives in `workdir`, so stop() + start() is a broker restart that keeps
    sessions, queued messages and retained watchlists.
    """

    def __init__(self, workdir: Path, tls_dir: Path, acl: Path, port: int | None = None, template: Path = DEPLOY_CONF):
        self.workdir = workdir
        self.port = port or free_port()
        self.log = workdir / "mosquitto.log"
        self.conf = workdir / "mosquitto.conf"
        if not template.is_file():
            raise BrokerError(f"broker configuration {template} not found; run from a checkout of the edge repository")
        data = workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        overrides = {
            "listener": f"{self.port} 127.0.0.1",
            "cafile": str(tls_dir / "ca.crt"),
            "certfile": str(tls_dir / "broker.crt"),
            "keyfile": str(tls_dir / "broker.key"),
            "acl_file": str(acl),
            "persistence_location": f"{data}/",
            "pid_file": str(workdir / "mosquitto.pid"),
            "log_dest": f"file {self.log}",
        }
        if os.geteuid() == 0:  # as root mosquitto would drop to the `mosquitto` user, who cannot read our files
            overrides["user"] = "root"
        self.conf.write_text(render_conf(template.read_text(), overrides))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BrokerError("broker is not running")
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        self._process = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                tail = self.log.read_text()[-2000:] if self.log.exists() else ""
                raise BrokerError(f"mosquitto exited with {self._process.returncode}: {err.strip()} {tail.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout:g} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: mosquitto saves its persistence database and exits."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._close()

    def kill(self) -> None:
        """SIGKILL: a crash; whatever was not yet autosaved is gone."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._close()

    def reload(self, timeout: float = 5.0) -> None:
        """SIGHUP: re-read the ACL file (and certificates); returns once mosquitto has reloaded.

        mosquitto reloads inside its main loop, which also handles client traffic, so once its log says
        "Reloading config." every later message is checked against the new ACL.
        """
        before = self._reloads()
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self._reloads() == before:
            if time.monotonic() > deadline:
                raise BrokerError(f"mosquitto did not reload within {timeout:g} s (see {self.log})")
            time.sleep(0.01)

    def _reloads(self) -> int:
        return self.log.read_text().count("Reloading config.") if self.log.exists() else 0

    def _close(self) -> None:
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def __enter__(self) -> "LocalBroker":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
