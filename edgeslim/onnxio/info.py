"""One module for what an ONNX file is: inputs, outputs, opset, parameters, MACs, precision.

Every caller that needs an ONNX fact reads it here (no session is opened: ``onnx`` only, weights
stored outside the file are never loaded). Graph inputs exclude initializers, which older
exporters (IR < 4) also list as inputs.

>>> info = onnx_info("model.onnx")                                    # doctest: +SKIP
>>> info.input.name, info.input_shape(image_size=224), info.precision  # doctest: +SKIP
('input', (3, 224, 224), 'int8')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.errors import InputError

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                     "QLinearAdd", "QLinearMul", "QGemm"})
DYNAMIC_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                         "DynamicQuantizeMatMul"})
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
           11: "float64", 16: "bfloat16"}


@dataclass
class TensorInfo:
    """A graph input or output: name, dims (int, or the symbol / None when dynamic), dtype."""

    name: str
    shape: list[int | str | None]
    dtype: str

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.shape) and not (isinstance(self.shape[0], int) and self.shape[0] > 0)


@dataclass
class OnnxInfo:
    path: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    opset: int
    params: int
    precision: str  # fp32 | fp16 | bf16 | int8 (QDQ/QLinear) | int8_dynamic, from the graph
    metadata: dict[str, Any] = field(default_factory=dict)
    ir_version: int = 0
    producer: str = ""

    @property
    def input(self) -> TensorInfo:
        return self.inputs[0]

    @property
    def declared_precision(self) -> str:
        """The precision edgeslim recorded in the metadata, else the one the graph shows."""
        return str(self.metadata.get("edgeslim.precision") or self.precision)

    @property
    def fixed_batch(self) -> int | None:
        d = self.input.shape[0] if self.input.shape else None
        return d if isinstance(d, int) and d > 0 else None

    def input_shape(self, image_size: int | None = None) -> tuple[int, ...]:
        """The input shape without batch; a dynamic spatial dim takes ``image_size``.

        Raises InputError naming the fix when a dim is dynamic and no size is given.
        """
        out = []
        for i, d in enumerate(self.input.shape[1:]):
            if isinstance(d, int) and d > 0:
                out.append(d)
            elif i >= 1 and image_size:
                out.append(int(image_size))
            else:
                raise InputError(
                    f"'{self.path}' has a dynamic input dimension {i + 1} ({d!r}); pass --image-size N "
                    "(or export with a fixed image size)"
                )
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_model(path: str | Path, external_data: bool = False) -> Any:
    """``onnx.load`` with a one-line InputError for a missing or unreadable file."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise InputError(f"ONNX file '{p}' does not exist")
    try:
        return onnx.load(str(p), load_external_data=external_data)
    except Exception as exc:  # protobuf DecodeError and friends: not an ONNX file
        raise InputError(f"'{p}' is not a readable ONNX model ({type(exc).__name__}); re-export it") from exc


def _model(model_or_path: Any) -> Any:
    return load_model(model_or_path) if isinstance(model_or_path, (str, Path)) else model_or_path


def _dims(v: Any) -> list[int | str | None]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in v.type.tensor_type.shape.dim]


def _tensor(v: Any) -> TensorInfo:
    return TensorInfo(v.name, _dims(v), _DTYPES.get(v.type.tensor_type.elem_type, "other"))


def graph_inputs(model_or_path: Any) -> list[Any]:
    """The graph's real inputs (ValueInfoProto): initializers listed as inputs are excluded."""
    m = _model(model_or_path)
    inits = {t.name for t in m.graph.initializer}
    return [i for i in m.graph.input if i.name not in inits]


def input_name(model_or_path: Any) -> str:
    ins = graph_inputs(model_or_path)
    if not ins:
        raise InputError("the ONNX graph has no inputs (every input is an initializer)")
    return ins[0].name


def opset(model_or_path: Any) -> int:
    m = _model(model_or_path)
    return next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 0)


def read_metadata(model_or_path: Any) -> dict[str, Any]:
    """Metadata props, JSON values decoded (edgeslim stores non-strings as JSON)."""
    out: dict[str, Any] = {}
    for p in _model(model_or_path).metadata_props:
        try:
            out[p.key] = json.loads(p.value)
        except ValueError:
            out[p.key] = p.value
    return out


def count_params(model_or_path: Any) -> int:
    """Weights stored in the file: every initializer except quantization scales and zero points,
    so a QDQ model counts its int8 weights like the float model counts floats."""
    m = _model(model_or_path)
    qparams = {name for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
               for name in n.input[1:]}
    return int(sum(int(np.prod(t.dims)) for t in m.graph.initializer if t.name not in qparams))


def detect_precision(model_or_path: Any) -> str:
    """fp32, fp16, bf16, int8 (static QDQ or QLinear ops) or int8_dynamic, from the graph."""
    import onnx

    m = _model(model_or_path)
    ops = {n.op_type for n in m.graph.node}
    if ops & DYNAMIC_OPS:
        return "int8_dynamic"
    if ops & QDQ_OPS:
        return "int8"
    types = {t.data_type for t in m.graph.initializer}
    if onnx.TensorProto.FLOAT16 in types:
        return "fp16"
    if onnx.TensorProto.BFLOAT16 in types:
        return "bf16"
    return "fp32"


def precision_family(precision: str) -> str:
    """The precision a deploy profile lists for a graph precision: ``int8_dynamic`` is an int8
    model (profiles and bundles name int8; ``deploy/compat.py`` checks the dynamic ops)."""
    return "int8" if precision == "int8_dynamic" else precision


def count_macs(model_or_path: Any, input_shape: tuple[int, ...]) -> int | None:
    """MACs per image of Conv/Gemm/MatMul (float or quantized), from ONNX shape inference.

    ``input_shape`` is the full input shape, batch first. None for a graph shape inference
    cannot follow: MACs are informative, never fatal.
    """
    import onnx

    try:
        m = onnx.ModelProto()
        m.CopyFrom(_model(model_or_path))
        inits = {t.name: list(t.dims) for t in m.graph.initializer}
        for d, v in zip(graph_inputs(m)[0].type.tensor_type.shape.dim, input_shape, strict=False):
            d.dim_value = int(v)
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:  # an unusual graph (or no inputs): no MAC count rather than a failure
        return None
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*m.graph.value_info, *m.graph.output, *m.graph.input)}
    shapes.update(inits)
    total = sum(_node_macs(n, shapes) for n in m.graph.node)
    return total // (input_shape[0] or 1)


def _node_macs(n: Any, shapes: dict[str, list[int]]) -> int:
    op, ins = n.op_type, list(n.input)
    out = shapes.get(n.output[0]) if n.output else None
    if not out or not all(out):
        return 0
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w = shapes.get(ins[3] if op == "QLinearConv" else ins[1])
        return int(np.prod(out)) * int(np.prod(w[1:])) if w and all(w) else 0
    if op in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
        a = shapes.get(ins[0])
        trans_a = any(at.name == "transA" and at.i for at in n.attribute)
        return int(np.prod(out)) * int(a[-2] if trans_a else a[-1]) if a and all(a) else 0
    return 0


def onnx_info(path: str | Path) -> OnnxInfo:
    """Everything above in one read of the file."""
    m = load_model(path)
    ins = graph_inputs(m)
    if not ins:
        raise InputError(f"'{path}' has no graph inputs; it cannot be run")
    return OnnxInfo(
        path=str(path),
        inputs=[_tensor(i) for i in ins],
        outputs=[_tensor(o) for o in m.graph.output],
        opset=opset(m),
        params=count_params(m),
        precision=detect_precision(m),
        metadata=read_metadata(m),
        ir_version=int(m.ir_version),
        producer=m.producer_name,
    )
