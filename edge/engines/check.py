"""The Jetson install route check: which JetPack piece is missing, and what to do about it.

tensorrt comes from JetPack (python3-libnvinfer), jetson_utils from a source build of
dusty-nv/jetson-utils, pycuda from `pip install .[jetson]`; the CUDA driver from L4T (or, in a
container, from `--runtime nvidia`). None of them is a silent fallback: this says which is absent.
"""

import ctypes
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from edge.engines.jetpack import jetpack_for, parse_l4t_release

NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")


@dataclass(frozen=True)
class Check:
    """One piece: present or not, what was found, and the fix when it is missing."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def check_python() -> Check:
    version = ".".join(str(v) for v in sys.version_info[:3])
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, version, "" if ok else "use JetPack 6 (Python 3.10) or newer")


def check_tensorrt() -> Check:
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        return Check("tensorrt", False, f"cannot import tensorrt ({exc})",
                     "install JetPack's TensorRT Python bindings: `sudo apt install python3-libnvinfer`, and make "
                     "the venv with --system-site-packages so it sees them (never `pip install tensorrt` on a Jetson)")
    return Check("tensorrt", True, f"TensorRT {getattr(trt, '__version__', '?')}")


def check_pycuda() -> Check:
    try:
        cuda = importlib.import_module("pycuda.driver")
    except ImportError as exc:
        return Check("pycuda", False, f"cannot import pycuda.driver ({exc})",
                     "`pip install '.[jetson]'` in the venv (builds pycuda against JetPack's CUDA: "
                     "`export PATH=/usr/local/cuda/bin:$PATH` first so nvcc and cuda.h are found)")
    try:
        cuda.init()
        device = cuda.Device(0)
        major, minor = device.compute_capability()
        return Check("pycuda", True, f"{device.name()} (sm{major}{minor})")
    except Exception as exc:  # pycuda.driver.Error and friends
        return Check("pycuda", False, f"pycuda imports but CUDA does not start ({exc})",
                     "add the user to group video (`sudo usermod -aG video $USER`), or in a container "
                     "run with `--runtime nvidia`")


def check_jetson_utils() -> Check:
    try:
        module = importlib.import_module("jetson_utils")
    except ImportError as exc:
        return Check("jetson_utils", False, f"cannot import jetson_utils ({exc})",
                     "build and install dusty-nv/jetson-utils from source (docs/jetson.md); "
                     "never `pip install jetson-utils`")
    if not hasattr(module, "videoSource"):
        where = getattr(module, "__file__", "?")
        return Check("jetson_utils", False, f"{where} is not NVIDIA's jetson-utils (no videoSource)",
                     "it is PyPI's unrelated `jetson-utils` package shadowing the real one: "
                     "`pip uninstall jetson-utils`, then build dusty-nv/jetson-utils from source")
    return Check("jetson_utils", True, f"videoSource from {getattr(module, '__file__', '?')}")


def check_cuda_driver() -> Check:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return Check("nvidia runtime", False, f"no CUDA driver library ({exc})",
                     "on a Jetson, flash or update L4T (nvidia-l4t-cuda); in a container, run it with "
                     "`--runtime nvidia` (nvidia-container-toolkit)")
    return Check("nvidia runtime", True, "libcuda.so.1 loads")


def check_l4t(release_file: Path = NV_TEGRA_RELEASE) -> Check:
    if not release_file.is_file():
        return Check("jetpack", False, f"no {release_file}: not a Jetson, or a container without it mounted",
                     f"run on a Jetson with JetPack 6, or mount {release_file} into the container", required=False)
    l4t = parse_l4t_release(release_file.read_text(errors="replace"))
    if l4t is None:
        return Check("jetpack", False, f"{release_file} is not in the expected format", required=False)
    jetpack = jetpack_for(l4t)
    if jetpack is None:
        return Check("jetpack", False, f"L4T {l4t} is not a JetPack release this firmware knows",
                     "use JetPack 6.0 or newer (L4T 36.3+)", required=False)
    return Check("jetpack", True, f"JetPack {jetpack} (L4T {l4t})", required=False)


def run_checks() -> list[Check]:
    return [check_python(), check_l4t(), check_cuda_driver(), check_tensorrt(), check_pycuda(), check_jetson_utils()]
