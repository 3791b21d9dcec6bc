"""Does an ONNX file suit a deploy profile's runtime? One problem line per offending node.

``deploy`` calls :func:`check_onnx_for_profile` on the file it ships and refuses a model the
device would reject (TensorRT's ONNX parser refuses uint8 / non-zero-point QDQ, dynamic
quantization and QOperator nodes, and opsets newer than it knows); the quantize stage calls it
on what it built for a target, so the promise is checked where it is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

    from edgeslim.deploy.profiles import Profile

_DYNAMIC_OPS = ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger")
_QOPERATOR_OPS = ("QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
                  "QLinearAveragePool", "QLinearConcat", "QLinearLeakyRelu", "QLinearSigmoid", "QGemm")
_INT8, _UINT8 = 3, 2  # onnx.TensorProto.INT8 / UINT8


def check_onnx_for_profile(onnx_path: str | Path, profile: Profile) -> list[str]:
    """Problems that make ``profile``'s runtime reject the model (empty: it takes it).

    >>> from edgeslim.deploy.profiles import get_profile
    >>> check_onnx_for_profile("int8.onnx", get_profile("jetson-orin-nano"))  # doctest: +SKIP
    ["QuantizeLinear 'input_QuantizeLinear' has zero point 128 (uint8); TensorRT builds only ..."]
    """
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    acc = profile.accepts
    problems = _opset_problems(m, profile)
    consts = _constants(m)
    fix = f"quantize with target: {profile.name}"
    for node in m.graph.node:
        label = f"{node.op_type} '{node.name or node.output[0]}'"
        if not acc.dynamic_int8 and node.op_type in _DYNAMIC_OPS:
            problems.append(f"{label} is dynamic quantization, which {acc.runtime} cannot run; use precision: int8 "
                            f"(static QDQ) or fp16, {fix}")
        elif not acc.dynamic_int8 and node.op_type in _QOPERATOR_OPS:
            problems.append(f"{label} is a QOperator node; {acc.runtime} parses QDQ (QuantizeLinear/"
                            f"DequantizeLinear) only: {fix}")
        elif acc.int8_activations == "symmetric" and node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            bad = _zero_point_problem(node, consts)
            if bad:
                problems.append(f"{label} {bad}; {acc.runtime} builds only symmetric INT8 QDQ (int8, zero point 0): "
                                f"{fix}")
    return problems


def _opset_problems(m: onnx.ModelProto, profile: Profile) -> list[str]:
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or profile.min_opset <= opset <= profile.max_opset:
        return []
    fix = min(max(opset, profile.min_opset), profile.max_opset)
    return [f"the model has ONNX opset {opset}; target '{profile.name}' ({profile.accepts.runtime}) parses "
            f"{profile.min_opset}..{profile.max_opset}: export with opset {fix}"]


def _constants(m: onnx.ModelProto) -> dict[str, Any]:
    """Initializers and Constant-node outputs by name (zero points live in either)."""
    from onnx import numpy_helper

    out: dict[str, Any] = {t.name: t for t in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = a.t
    out["__np__"] = numpy_helper
    return out


def _zero_point_problem(node: onnx.NodeProto, consts: dict[str, Any]) -> str | None:
    if len(node.input) < 3 or not node.input[2]:
        # No zero point input: the ONNX default is a uint8 zero point of 0.
        return "has no zero point (the ONNX default is uint8)"
    t = consts.get(node.input[2])
    if t is None:
        return None  # computed at run time: not something this static check can judge
    values = consts["__np__"].to_array(t)
    if t.data_type == _UINT8:
        return f"has zero point {int(values.flat[0])} (uint8)"
    if t.data_type == _INT8 and values.size and int(abs(values).max()) != 0:
        return f"has zero point {int(values.flat[abs(values).argmax()])} (not 0)"
    if t.data_type not in (_INT8, _UINT8):
        return None  # fp8 / int4 / int16 QDQ: other checks (precisions) cover them
    return None


def first_problem_message(problems: list[str], what: str) -> str:
    """One line for an error: the first problem and how many more there are."""
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{what}: {problems[0]}{more}"
