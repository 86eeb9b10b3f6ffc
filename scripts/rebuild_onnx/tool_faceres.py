"""Runs in the FaceRes conversion venv: tf2onnx's own command line on a TF.js graph model.

Usage: python -m rebuild_onnx.tool_faceres MODEL.json OUT.onnx OPSET
tf2onnx 1.17 still calls `np.product`, which NumPy 2 removed; it is aliased to `np.prod` first. Everything
else is exactly `python -m tf2onnx.convert --tfjs MODEL.json --output OUT.onnx --opset OPSET`.
"""

import runpy
import sys

import numpy as np


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    if not hasattr(np, "product"):
        np.product = np.prod  # type: ignore[attr-defined]
    model_json, out, opset = argv
    sys.argv = ["tf2onnx.convert", "--tfjs", model_json, "--output", out, "--opset", opset]
    try:
        runpy.run_module("tf2onnx.convert", run_name="__main__", alter_sys=True)
    except SystemExit as exc:  # the converter's main() may end with sys.exit
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
