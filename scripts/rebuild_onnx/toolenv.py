"""The conversion tools' own virtual environments, under the work folder.

tflite2onnx, tf2onnx, TensorFlow, onnx and LiteRT are heavy and pin their own NumPy and protobuf; they are
needed only to rebuild the ONNX files, so they never enter the project's environment. Each model gets one
venv (`<work>/venvs/<model>`), reused while its requirement list is unchanged.
"""

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .fetch import ToolError, run_logged

SCRIPTS_DIR = Path(__file__).resolve().parent.parent  # holds the rebuild_onnx package


@dataclass(frozen=True)
class ToolEnv:
    """A venv and how to run this package's tool modules inside it."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def run_module(self, module: str, args: Sequence[str], log: Path) -> str:
        """`python -m rebuild_onnx.<module> args` in the venv; the package comes from this checkout."""
        env = dict(os.environ)
        env["PYTHONPATH"] = str(SCRIPTS_DIR)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["CUDA_VISIBLE_DEVICES"] = ""  # the conversion is CPU work; skip GPU probing where TF has CUDA
        return run_logged([str(self.python), "-m", f"rebuild_onnx.{module}", *args], log, env=env)

    def can_import(self, module: str) -> bool:
        proc = subprocess.run([str(self.python), "-c", f"import {module}"], capture_output=True)
        return proc.returncode == 0


def ensure_env(root: Path, requirements: Sequence[str], log: Path, python: str = sys.executable) -> ToolEnv:
    """Create (or reuse) the venv at `root` with exactly these pinned requirements installed."""
    env = ToolEnv(root)
    stamp = root / "requirements.lock.txt"
    wanted = "\n".join(requirements) + "\n"
    if env.python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return env
    if not env.python.is_file():
        run_logged([python, "-m", "venv", str(root)], log.with_suffix(".venv.log"))
    stamp.unlink(missing_ok=True)
    run_logged([str(env.python), "-m", "pip", "install", "--disable-pip-version-check", *requirements], log)
    stamp.write_text(wanted)
    return env


def try_install(env: ToolEnv, requirements: Sequence[str], log: Path) -> str | None:
    """Install optional extras; returns None on success or the reason they could not be installed."""
    try:
        run_logged([str(env.python), "-m", "pip", "install", "--disable-pip-version-check", *requirements], log)
    except ToolError as exc:
        return str(exc).splitlines()[0]
    return None
