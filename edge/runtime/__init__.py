"""Inference backends behind one interface: `Runtime.run(dict of named arrays) -> dict`.

ONNX Runtime (onnxrt.py) and TensorRT, end to end: the engine file and its header (engine_file.py),
optimization profiles (profiles.py), real images as model inputs for INT8 calibration and checks
(sample_inputs.py), the engine build (build.py), the engine against ONNX Runtime (verify.py) and the
engine runtime (tensorrt.py). tensorrt and pycuda are imported lazily, so all of it imports without them.
"""

from edge.runtime.base import Runtime
from edge.runtime.select import open_runtime

__all__ = ["Runtime", "open_runtime"]
