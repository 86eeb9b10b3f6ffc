"""Runs in the MobileFaceNet conversion venv: tflite2onnx, then the post-processing of `prelu`.

Usage: python -m rebuild_onnx.tool_mobilefacenet MODEL.tflite OUT.onnx
Prints one JSON line with what it did, for the calling script to report.
"""

import json
import sys
import tempfile
from pathlib import Path

import onnx
import tflite2onnx

from rebuild_onnx.prelu import finish_mobilefacenet


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    tflite, out = Path(argv[0]), Path(argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        tflite2onnx.convert(str(tflite), str(raw))  # also runs onnx.checker on its output
        model = onnx.load(str(raw))
    before = len(model.graph.node)
    folded = finish_mobilefacenet(model)
    onnx.checker.check_model(model, full_check=True)
    out.write_bytes(model.SerializeToString())
    print(json.dumps({"nodes_before": before, "nodes_after": len(model.graph.node), "prelu_folded": folded,
                      "onnx": onnx.__version__, "tflite2onnx": tflite2onnx.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
