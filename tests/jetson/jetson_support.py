"""Helpers shared by the Jetson tests: paths, running the CLI and scripts, and a venv tarball like one
built on a JetPack 6 board."""

import io
import subprocess
import sys
import tarfile
from pathlib import Path

from edge import __version__

REPO = Path(__file__).resolve().parents[2]
DEVICE_ID = "cam-0042"
L4T_36_4_0 = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 2024\n"


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; output captured as text."""
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, **kwargs)  # type: ignore[call-overload]


def edge_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "edge", *args])


def make_venv_tar(path: Path, *, version: str = __version__, system_site: bool = True,
                  python: str = "3.10.12", extra: dict[str, tuple[bytes, int]] | None = None) -> Path:
    """A tarball shaped like `tar -C /opt/edge -czf FILE venv` of a venv made on a JetPack 6 board."""
    files: dict[str, tuple[bytes, int]] = {
        "venv/pyvenv.cfg": (f"home = /usr/bin\ninclude-system-site-packages = {str(system_site).lower()}\n"
                            f"version = {python}\n".encode(), 0o644),
        "venv/bin/edge": (b"#!/opt/edge/venv/bin/python3\nfrom edge.cli import main\nmain()\n", 0o755),
        f"venv/lib/python3.10/site-packages/edge-{version}.dist-info/METADATA":
            (f"Metadata-Version: 2.1\nName: edge\nVersion: {version}\n".encode(), 0o644),
        "venv/lib/python3.10/site-packages/edge/__init__.py": (b'__version__ = "x"\n', 0o644),
        **(extra or {}),
    }
    with tarfile.open(path, "w:gz") as tar:
        for directory in sorted({str(Path(n).parent) for n in files} | {"venv", "venv/bin"}):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, 1000, 1000
            tar.addfile(info)
        link = tarfile.TarInfo("venv/bin/python3")
        link.type, link.linkname = tarfile.SYMTYPE, "/usr/bin/python3.10"
        tar.addfile(link)
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 1000, 1000
            tar.addfile(info, io.BytesIO(data))
    return path




JETPACK_DPKG_STATUS = "".join(
    f"Package: {name}\nStatus: install ok installed\nArchitecture: arm64\nVersion: {version}\n\n"
    for name, version in (("nvidia-jetpack", "6.1+b123"), ("libnvinfer10", "10.3.0.30-1+cuda12.5"),
                          ("python3-libnvinfer", "10.3.0.30-1+cuda12.5"), ("cuda-cudart-12-6", "12.6.68-1")))


def make_jetson_utils_tar(path: Path, *, drop: str | None = None, extra: str | None = None) -> Path:
    """A tarball like `make install DESTDIR=D && tar -C D -czf FILE usr` of jetson-utils on a JetPack 6 board
    (python/bindings/CMakeLists.txt: bindings in /usr/lib/python3.10/dist-packages, library in /usr/local/lib)."""
    files = ["usr/lib/python3.10/dist-packages/jetson_utils/__init__.py",
             "usr/lib/python3.10/dist-packages/jetson_utils_python.so",
             "usr/lib/python3.10/dist-packages/jetson/utils/__init__.py",
             "usr/local/lib/libjetson-utils.so", "usr/local/include/jetson-utils/videoSource.h"]
    files = [f for f in files if f != drop] + ([extra] if extra else [])
    with tarfile.open(path, "w:gz") as tar:
        for directory in sorted({str(p) for f in files for p in Path(f).parents if str(p) != "."}):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o775
            tar.addfile(info)
        for name in files:
            data = f"# {name}\n".encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o664, 1000, 1000
            tar.addfile(info, io.BytesIO(data))
    return path
