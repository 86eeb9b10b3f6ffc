"""Runs in the MobileFaceNet venv when LiteRT installs: the original tflite on the comparison inputs.

Usage: python -m rebuild_onnx.tool_litert MODEL.tflite INPUTS.npy OUTPUTS.npy
INPUTS is NHWC float32, already normalised; the tflite's batch is fixed, so the inputs go through in
chunks of that size (the last one padded and the padding dropped).
"""

import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    model, src, dst = argv
    x = np.load(src).astype(np.float32)
    it = Interpreter(model_path=model, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    batch = int(inp["shape"][0])
    if tuple(inp["shape"][1:]) != x.shape[1:]:
        raise SystemExit(f"tflite input is {inp['shape'].tolist()}, inputs are {list(x.shape)}")
    results = []
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch]
        pad = batch - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.zeros((pad, *x.shape[1:]), np.float32)])
        it.set_tensor(inp["index"], chunk)
        it.invoke()
        results.append(it.get_tensor(out["index"])[:batch - pad].copy())
    np.save(dst, np.concatenate(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
