"""The README's first command, scripts/setup, on a machine without mosquitto: mosquitto comes first, from the
system's package manager, before any pip step; without apt-get it stops saying what to install.

mosquitto is hidden by running in a private mount namespace with a bare PATH and an empty /usr/sbin (skipped
where namespaces are not allowed). apt-get is a recording stand-in: the test must not install packages."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("bash", "id", "dirname", "env", "python3", "cat")


def first_command() -> str:
    """The first line of the README's first shell block, without its comment."""
    block = re.search(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block is not None
    return block.group(1).splitlines()[0].split("#")[0].strip()


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A copy of the repository's set-up script and a PATH of only the basic tools (no mosquitto, no apt-get)."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "--propagation", "private", "true"], capture_output=True).returncode != 0:
        pytest.skip("no private mount namespaces here (unshare -m)")
    (tmp_path / "repo" / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "setup", tmp_path / "repo" / "scripts" / "setup")
    (tmp_path / "bin").mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (tmp_path / "bin" / tool).symlink_to(found)
    return tmp_path


def run(bare: Path, command: str) -> subprocess.CompletedProcess[str]:
    mount = shutil.which("mount")
    script = f"{mount} -t tmpfs none /usr/sbin && {mount} -t tmpfs none /sbin && cd {bare / 'repo'} && {command}"
    return subprocess.run([str(shutil.which("unshare")), "-m", "--propagation", "private", "/bin/sh", "-c", script],
                          text=True,
                          capture_output=True, env={"PATH": str(bare / "bin"), "HOME": str(bare)}, timeout=60)


def test_readme_starts_with_the_setup_script() -> None:
    assert first_command() == "scripts/setup"


def test_without_apt_get_it_says_what_to_install_before_any_pip_step(bare: Path) -> None:
    result = run(bare, first_command())
    assert result.returncode == 2, result.stdout + result.stderr
    assert "mosquitto is missing" in result.stderr and "install mosquitto 2.x" in result.stderr
    assert not (bare / "repo" / ".venv").exists(), "nothing installed before the broker is there"


def test_with_apt_get_mosquitto_is_installed_first(bare: Path) -> None:
    log = bare / "apt.log"
    apt = bare / "bin" / "apt-get"
    apt.write_text(f'#!/bin/bash\necho "$@" >> {log}\n[ "$1" = update ] || exit 100\n')  # fails the install
    apt.chmod(0o755)
    result = run(bare, first_command())
    assert result.returncode == 100, result.stdout + result.stderr
    assert log.read_text().splitlines() == ["update -qq", "install -y -qq --no-install-recommends mosquitto"]
    assert not (bare / "repo" / ".venv").exists(), "a failed install stops the set-up"


def test_an_unusable_venv_is_named_not_a_pip_traceback(tmp_path: Path) -> None:
    """A .venv left by an earlier attempt (here: made without pip) stops the set-up saying what to do with it."""
    (tmp_path / "repo" / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "setup", tmp_path / "repo" / "scripts" / "setup")
    (tmp_path / "bin").mkdir()
    for tool in TOOLS:
        (tmp_path / "bin" / tool).symlink_to(shutil.which(tool) or tool)
    (tmp_path / "bin" / "mosquitto").write_text("#!/bin/sh\nexit 0\n")  # present: nothing to install
    (tmp_path / "bin" / "mosquitto").chmod(0o755)
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(tmp_path / "repo" / ".venv")], check=True)
    result = subprocess.run([str(tmp_path / "repo" / "scripts" / "setup"), "--no-demo"], text=True, capture_output=True,
                            cwd=tmp_path, env={"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert ".venv exists but cannot be used" in result.stderr and "mv .venv .venv.old" in result.stderr
    assert "No module named pip" not in result.stderr
