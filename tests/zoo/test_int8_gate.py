"""The zoo's INT8 gate on real onnxruntime sessions: agreement counts only the images where FP32's
top-1 is decisive, too few of them is inconclusive (error gate only), and a collapsed or
class-swapping INT8 fails either way. The "INT8" files here are FP32 MatMuls whose weights
stand in for what quantization did to them: the step compares two ONNX files and needs no more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeslim.runtime.compare import decisive_rows
from edgeslim.zoo import steps
from edgeslim.zoo.config import ZooSettings

N, D, C = 16, 8, 10


def matmul_onnx(path: Path, w: np.ndarray) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", D])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", C])
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(w.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def gate(tmp_path: Path, w_fp32: np.ndarray, w_int8: np.ndarray, x: np.ndarray) -> dict:
    s = ZooSettings().model_dump()
    ctx = {"s": s, "x": x.astype(np.float32), "fp32": matmul_onnx(tmp_path / "fp32.onnx", w_fp32),
           "int8": matmul_onnx(tmp_path / "int8.onnx", w_int8)}
    return steps.int8_agreement(ctx)


@pytest.fixture
def decisive() -> tuple[np.ndarray, np.ndarray]:
    """Each image lights one class far above the others (a trained model's confident logits)."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (D, C))
    w[np.arange(D), np.arange(D)] += 5.0
    x = np.eye(D)[np.arange(N) % D] + rng.normal(0, 0.05, (N, D))
    return w, x


def test_decisive_rows_scale_free_and_single_output() -> None:
    ref = np.array([[10.0, 0.0, 0.0, 0.0], [1.0, 0.99, 0.0, 0.0]])
    assert decisive_rows(ref, 0.5).tolist() == [True, False]
    assert decisive_rows(ref * 1e-6, 0.5).tolist() == [True, False]  # units of the row's spread
    assert decisive_rows(np.ones((3, 1)), 0.5).tolist() == [False] * 3
    assert decisive_rows(np.zeros((2, 4)), 0.5).tolist() == [False, False]


def test_small_rounding_on_decisive_images_passes(tmp_path: Path, decisive) -> None:
    w, x = decisive
    out = gate(tmp_path, w, np.round(w * 64) / 64, x)  # 6-bit-like rounding of the weights
    assert "_gate" not in out
    assert out["int8_agreement"] == 1.0 and out["int8_decisive"] == N and out["int8_verdict"] == "agreement"


def test_class_swap_on_decisive_images_fails(tmp_path: Path, decisive) -> None:
    w, x = decisive
    swapped = w[:, [1, 0, *range(2, C)]]  # classes 0 and 1 exchanged: small error budget, wrong answers
    out = gate(tmp_path, w, swapped, x)
    assert out["int8_agreement"] == pytest.approx(1 - 4 / N)
    out = gate(tmp_path, w, w[:, ::-1], x)
    assert "agreement" in out["_gate"] and out["int8_agreement"] < 0.9


def test_near_ties_are_inconclusive_not_failed(tmp_path: Path) -> None:
    """Random-weight zoo models: one input-independent logit pattern, near-tied top-2 on every
    image; the INT8 rounding flips them all. Not an INT8 defect: the row says inconclusive."""
    rng = np.random.default_rng(1)
    w = np.tile(np.linspace(0, 1, C), (D, 1)) + rng.normal(0, 1e-3, (D, C))
    w[:, -2] = w[:, -1] - 1e-3
    x = np.abs(rng.normal(1, 0.1, (N, D)))
    q = w.copy()
    q[:, -2] += 2e-3  # flips the top-1 of every image
    out = gate(tmp_path, w, q, x)
    assert out["int8_agreement_all"] == 0.0
    assert out["int8_agreement"] is None and out["int8_decisive"] < 8
    assert out["int8_verdict"].startswith("agreement inconclusive")
    assert "_gate" not in out


def test_collapsed_int8_fails_even_when_inconclusive(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    w = np.tile(np.linspace(0, 1, C), (D, 1))
    w[:, -2] = w[:, -1] - 1e-3
    x = np.abs(rng.normal(1, 0.1, (N, D)))
    out = gate(tmp_path, w, np.zeros_like(w), x)  # an INT8 whose activations saturated to zero
    assert out["int8_agreement"] is None
    assert "INT8 error 1.000" in out["_gate"]


def _attention_onnx(path: Path) -> Path:
    """A one-block self-attention net (LayerNorm, MatMul, Softmax, GELU, residual Adds), exported."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln, self.qkv, self.proj = nn.LayerNorm(D), nn.Linear(D, 3 * D), nn.Linear(D, D)
            self.mlp, self.head = nn.Sequential(nn.Linear(D, 2 * D), nn.GELU(), nn.Linear(2 * D, D)), nn.Linear(D, C)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: N, tokens, D
            q, k, v = self.qkv(self.ln(x)).chunk(3, -1)
            x = x + self.proj(torch.softmax(q @ k.transpose(1, 2) / D**0.5, -1) @ v)
            return self.head((x + self.mlp(x)).mean(1))

    torch.manual_seed(0)
    torch.onnx.export(Block().eval(), (torch.randn(2, 4, D),), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "N"}})
    return path


def _int8_nodes(path: Path) -> dict[str, str]:
    """Nodes that run on INT8 in a QDQ graph (name -> op type): every input from a DequantizeLinear,
    every output into a QuantizeLinear (what onnxruntime fuses into a QLinear kernel)."""
    import onnx

    g = onnx.load(str(path)).graph
    made_by = {o: n.op_type for n in g.node for o in n.output}
    used_by: dict[str, list[str]] = {}
    for n in g.node:
        for i in n.input:
            used_by.setdefault(i, []).append(n.op_type)
    qdq = ("QuantizeLinear", "DequantizeLinear")
    return {n.name: n.op_type for n in g.node if n.op_type not in qdq and n.input and n.output
            and all(made_by.get(i) == "DequantizeLinear" for i in n.input if i in made_by)
            and any(made_by.get(i) == "DequantizeLinear" for i in n.input)
            and all(used_by.get(o) and set(used_by[o]) == {"QuantizeLinear"} for o in n.output)}


def test_auto_int8_quantizes_only_the_weight_layers_of_an_attention_net(tmp_path):
    import onnx

    from edgeslim.compress.quantize import PtqSettings, quantize_static_qdq

    att = _attention_onnx(tmp_path / "att.onnx")
    mode, why, layers = steps.int8_plan(att, "auto")
    assert mode == "static_matmul" and "Softmax" in why
    assert steps.int8_plan(matmul_onnx(tmp_path / "mm.onnx", np.ones((D, C))), "auto") == ("static", "", None)
    assert steps.int8_plan(att, "static") == ("static", "", None)  # an explicit setting is kept
    assert steps.int8_plan(att, "static_matmul") == ("static_matmul", "", layers)
    g = onnx.load(str(att)).graph
    act_x_act = [n.name for n in g.node if n.op_type == "MatMul" and n.name not in layers]
    assert layers and act_x_act  # q @ k^T and attn @ v have no weight: not among the layers
    calib = np.random.default_rng(0).standard_normal((8, 4, D)).astype(np.float32)
    every = _int8_nodes(quantize_static_qdq(att, tmp_path / "all.onnx", calib, PtqSettings()))
    only = _int8_nodes(quantize_static_qdq(att, tmp_path / "w.onnx", calib, PtqSettings(), only=layers))
    assert only and set(only) <= set(layers), only  # the weight layers run on INT8, nothing else
    assert set(every) - set(layers), every  # where "every op" also quantizes the rest
