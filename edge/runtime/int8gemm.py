"""uint8 x int8 -> int32 matrix product by ONNX Runtime's MatMulInteger: the pass over a large gallery.

Matching is bound by the bytes the pass reads: an 8-bit gallery reads a quarter of float32's, and ONNX Runtime's
integer kernels (MLAS) run it at memory speed, where numpy has no fast integer product. The gallery is the
left operand, row-major as stored, and the frame's few probes the right one: that shape keeps one kernel fast
from one probe to sixteen. One thread, as the device shares its cores with capture and inference.
"""

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

GALLERY_ZERO = 128  # gallery rows are int8 stored shifted to uint8; callers remove the shift's share


class Int8Product:
    """`gallery rows (M, D) uint8` times `probes (D, N) int8`, as int32 (M, N).

    No zero point is handed to the kernel (with one, ONNX Runtime leaves its fastest paths): the shift adds
    GALLERY_ZERO x the probe's element sum to every score of that probe, which the caller subtracts.
    """

    def __init__(self, dim: int, threads: int = 1) -> None:
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["rows", "probes"], ["y"])], "int8_gallery_product",
            [helper.make_tensor_value_info("rows", TensorProto.UINT8, ["M", dim]),
             helper.make_tensor_value_info("probes", TensorProto.INT8, [dim, "N"])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, ["M", "N"])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    def __call__(self, rows: np.ndarray, probes: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"rows": rows, "probes": probes})[0]
