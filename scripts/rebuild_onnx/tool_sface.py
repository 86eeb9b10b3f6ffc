"""Runs in the SFace conversion venv: the int8bq ONNX folded to float32 by `sface`.

Usage: python -m rebuild_onnx.tool_sface INT8BQ.onnx OUT.onnx
Prints one JSON line with what it did, for the calling script to report.
"""

import json
import sys
from pathlib import Path

import onnx

from rebuild_onnx.sface import OPS, finish_sface


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    source, out = Path(argv[0]), Path(argv[1])
    model = onnx.load(str(source))
    before = len(model.graph.node)
    counts = finish_sface(model)
    onnx.checker.check_model(model, full_check=True)
    ops = sorted({n.op_type for n in model.graph.node})
    if not set(ops) <= OPS:
        print(f"unexpected operators after folding: {sorted(set(ops) - OPS)}", file=sys.stderr)
        return 1
    out.write_bytes(model.SerializeToString())
    print(json.dumps({"nodes_before": before, "nodes_after": len(model.graph.node), **counts,
                      "initializers": len(model.graph.initializer), "ops": ops, "onnx": onnx.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
