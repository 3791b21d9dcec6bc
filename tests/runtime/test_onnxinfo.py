"""ONNX facts from one module: inputs (not initializers), outputs, opset, params, MACs, precision."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeslim.errors import InputError
from edgeslim.measure import count_macs as torch_macs
from edgeslim.measure import count_params as torch_params
from edgeslim.onnxio import info as I

SHAPE = (3, 16, 16)


def test_float_export_facts_match_the_torch_model(exported):
    info = I.onnx_info(exported.fp32)
    assert [t.name for t in info.inputs] == ["input"] and info.input.dtype == "float32"
    assert info.input.dynamic_batch and info.fixed_batch is None and info.input.shape[1:] == list(SHAPE)
    assert [o.name for o in info.outputs] == ["logits"] and info.outputs[0].shape[1] == 4
    assert info.opset == 18 and info.precision == "fp32" and info.declared_precision == "fp32"
    stored = sum(int(np.prod(t.dims)) for t in onnx.load(str(exported.fp32)).graph.initializer)
    assert info.params == stored  # a float model: every initializer is a weight
    # BatchNorm is folded into the convs on export, so the ONNX holds slightly fewer numbers
    assert 0.95 * torch_params(exported.model) <= info.params <= torch_params(exported.model)
    assert I.count_macs(exported.fp32, (1, *SHAPE)) == torch_macs(exported.model, SHAPE)
    assert I.count_macs(exported.fp32, (4, *SHAPE)) == torch_macs(exported.model, SHAPE)  # per image
    assert info.input_shape() == SHAPE


def test_qdq_int8_facts(exported):
    info = I.onnx_info(exported.int8)
    assert info.precision == "int8" and I.input_name(exported.int8) == "input"
    n_f = I.count_params(exported.fp32)
    # int8 weights count like floats; scales and zero points do not (int32 biases stay counted)
    assert abs(info.params - n_f) <= 0.02 * n_f
    assert I.count_macs(exported.int8, (1, *SHAPE)) == I.count_macs(exported.fp32, (1, *SHAPE))


def test_dynamic_int8_and_fp16_are_told_apart(exported, tmp_path):
    from edgeslim.compress.quantize import quantize_dynamic_int8, to_fp16

    dyn = quantize_dynamic_int8(exported.fp32, tmp_path / "dyn.onnx")
    half = to_fp16(exported.fp32, tmp_path / "half.onnx")
    assert I.detect_precision(dyn) == "int8_dynamic"
    assert I.detect_precision(half) == "fp16"


def _ir3_model(path):
    """A graph that lists its weight as a graph input too (what IR < 4 exporters write)."""
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.metadata_props.add(key="edgeslim.precision", value="int8")
    m.metadata_props.add(key="edgeslim.mean", value="[0.5]")
    onnx.save(m, str(path))
    return path


def test_initializers_listed_as_inputs_are_not_inputs(tmp_path):
    p = _ir3_model(tmp_path / "ir3.onnx")
    info = I.onnx_info(p)
    assert [t.name for t in info.inputs] == ["x"] and I.input_name(p) == "x"
    assert I.count_macs(p, (5, 2)) == 6  # (1x3 outputs) x 2 per row
    assert info.metadata["edgeslim.mean"] == [0.5]  # JSON values decoded
    assert info.declared_precision == "int8" and info.precision == "fp32"  # metadata wins, graph kept


def test_dynamic_image_size_needs_a_size(tmp_path):
    from edgeslim.onnxio.info import OnnxInfo, TensorInfo

    info = OnnxInfo("m.onnx", [TensorInfo("input", ["b", 3, "h", "w"], "float32")], [], 18, 0, "fp32")
    assert info.input_shape(image_size=64) == (3, 64, 64)
    with pytest.raises(InputError, match=r"dynamic input dimension 2 \('h'\); pass --image-size N"):
        info.input_shape()


def test_missing_and_corrupt_files_are_one_line_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        I.onnx_info(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\xffnot a protobuf at all" * 10)
    with pytest.raises(InputError, match="is not a readable ONNX model") as e:
        I.onnx_info(bad)
    assert "\n" not in str(e.value)
