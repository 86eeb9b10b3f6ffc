"""What a Jetson root file system must hold for edge's GPU path, checked before it is flashed. Standard library
only: scripts/flash runs it on the flashing host.

apply_binaries.sh puts the L4T drivers into Linux_for_Tegra/rootfs, not CUDA or TensorRT: those come with
the `nvidia-jetpack` packages (JetPack's apt repository). jetson-utils is never packaged: it is built from
source on a board and installed with `make install` (python/bindings/CMakeLists.txt puts the bindings in
/usr/lib/python3.10/dist-packages, the library in /usr/local/lib).
"""

import fnmatch
import tarfile
from pathlib import Path

# (what, dpkg package name pattern): the pieces edge's TensorRT path loads, all brought by nvidia-jetpack.
JETPACK_PACKAGES: tuple[tuple[str, str], ...] = (
    ("TensorRT", "libnvinfer10"),
    ("TensorRT's Python bindings", "python3-libnvinfer"),
    ("the CUDA runtime", "cuda-cudart-12-*"),
)
JETSON_UTILS_FILES: tuple[str, ...] = (
    "usr/lib/python3.10/dist-packages/jetson_utils/__init__.py",
    "usr/lib/python3.10/dist-packages/jetson_utils_python.so",
    "usr/local/lib/libjetson-utils.so",
)


def installed_packages(status: str) -> set[str]:
    """Packages dpkg's status file (var/lib/dpkg/status) records as installed."""
    found = set()
    for stanza in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[:1] != " ")
        if fields.get("Status") == "install ok installed" and "Package" in fields:
            found.add(fields["Package"])
    return found


def missing_jetpack(rootfs: Path) -> list[str]:
    """The JetPack pieces the root file system lacks, as 'what (package)'."""
    status = rootfs / "var" / "lib" / "dpkg" / "status"
    installed = installed_packages(status.read_text(errors="replace")) if status.is_file() else set()
    return [f"{what} ({pattern})" for what, pattern in JETPACK_PACKAGES
            if not fnmatch.filter(installed, pattern)]


def missing_jetson_utils(rootfs: Path) -> list[str]:
    """jetson-utils files the root file system lacks."""
    return [name for name in JETSON_UTILS_FILES if not (rootfs / name).exists()]


def check_jetson_utils_tar(path: Path) -> list[str]:
    """Problems with a jetson-utils tarball (`make install DESTDIR=D` on a board, then `tar -C D -czf FILE usr`):
    paths outside usr/, links or devices, or files jetson-utils installs that are missing."""
    if not path.is_file():
        return [f"{path} does not exist"]
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = {m.name.removeprefix("./") for m in members}
    problems = [f"{m.name} is outside usr/" for m in members
                if not (m.name.removeprefix("./") + "/").startswith("usr/") and m.name not in (".", "./")]
    problems += [f"{m.name} is not a plain file or folder" for m in members if not (m.isfile() or m.isdir()
                                                                                    or m.issym())]
    problems += [f"{name} is missing" for name in JETSON_UTILS_FILES if name not in names]
    return problems
