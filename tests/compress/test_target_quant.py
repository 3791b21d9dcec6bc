"""Target-aware quantization: a TensorRT target gets symmetric INT8 QDQ (zero point 0, per-channel
weights, an opset it parses), and the ONNX checker names the node a device would reject."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from onnx import numpy_helper

from edgeslim.compress.configs import QuantizeConfig
from edgeslim.compress.quantize_stage import check_for_target, target_profile
from edgeslim.deploy.compat import check_onnx_for_profile
from edgeslim.deploy.profiles import get_profile
from edgeslim.errors import InputError

JETSON, CPU = get_profile("jetson-orin-nano"), get_profile("x86-cpu")


def _zero_points(path: Path) -> list[tuple[int, list[int]]]:
    m = onnx.load(str(path))
    inits = {t.name: t for t in m.graph.initializer}
    return [(inits[n.input[2]].data_type, numpy_helper.to_array(inits[n.input[2]]).ravel().tolist())
            for n in m.graph.node if n.op_type == "QuantizeLinear"]


def _run(write_recipe, cli, tmp_path, quant: dict) -> dict:
    stages = [
        {"stage": "finetune", "train": {"epochs": 2, "batch_size": 16, "optimizer": {"lr": 0.003}}},
        # on_budget: warn - these tests are about the format the target gets, not the accuracy.
        {"stage": "quantize", "precision": "int8", "calibration": {"samples": 16}, "latency_iters": 5,
         "on_budget": "warn", **quant},
    ]
    code, _, err = cli("run", write_recipe(stages), "--quiet")
    assert code == 0, err
    return json.loads((tmp_path / "runs" / "t" / "run.json").read_text())


def test_tensorrt_target_gets_symmetric_int8_and_default_cpu_int8_is_refused_for_it(write_recipe, cli, tmp_path):
    onnx_path = tmp_path / "runs" / "t" / "01-quantize" / "model.onnx"
    run = _run(write_recipe, cli, tmp_path, {"target": "jetson-orin-nano"})
    m = run["stages"][1]["metrics"]
    assert m["target_profile"] == "jetson-orin-nano"
    assert m["int8_format"]["activations"] == "int8 symmetric (zero point 0)"
    zps = _zero_points(onnx_path)
    assert zps and all(t == onnx.TensorProto.INT8 and not any(v) for t, v in zps)
    assert check_onnx_for_profile(onnx_path, JETSON) == []
    weights = [n for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "DequantizeLinear"]
    assert any(a.name == "axis" for n in weights for a in n.attribute)  # per-channel weight scales

    # Without a target: onnxruntime's fast CPU format (uint8 activations), which TensorRT refuses.
    run = _run(write_recipe, cli, tmp_path, {})
    assert any(t == onnx.TensorProto.UINT8 for t, _ in _zero_points(onnx_path))
    problems = check_onnx_for_profile(onnx_path, JETSON)
    assert problems and problems[0].startswith("QuantizeLinear '")
    assert "(uint8)" in problems[0] and "quantize with target: jetson-orin-nano" in problems[0]
    assert check_onnx_for_profile(onnx_path, CPU) == []


def test_recipe_deploy_target_drives_the_quantize_format():
    from edgeslim.recipe import parse_recipe

    recipe = parse_recipe({"model": {"source": "tinycnn"}, "data": {"source": "synthetic"},
                           "stages": [{"stage": "quantize"}, {"stage": "deploy", "target": "jetson-orin-nano"}]})
    assert target_profile(recipe.stages[0], recipe) is JETSON
    assert check_for_target(recipe.stages[0], JETSON) is True  # symmetric activations
    explicit = QuantizeConfig(target="x86-cpu")
    assert target_profile(explicit, recipe) is CPU and check_for_target(explicit, CPU) is False


@pytest.mark.parametrize("settings,expected", [
    ({"symmetric_activations": False}, "builds only symmetric INT8 QDQ"),
    ({"opset": 21}, "quantize.opset 21 is newer than target 'jetson-orin-nano' (TensorRT) parses (<= 20)"),
    ({"precision": "int8_dynamic"}, "quantize precision int8_dynamic cannot run on target 'jetson-orin-nano'"),
])
def test_settings_the_target_cannot_take_are_refused_not_changed(settings, expected):
    cfg = QuantizeConfig(target="jetson-orin-nano", **settings)
    with pytest.raises(InputError) as ei:
        check_for_target(cfg, JETSON)
    assert expected in str(ei.value) and "\n" not in str(ei.value)


def test_unknown_target_name_is_a_recipe_error(write_recipe, cli):
    code, _, err = cli("validate", write_recipe([{"stage": "quantize", "target": "jetson-orin-nan"}]))
    assert code == 2 and "did you mean 'jetson-orin-nano'" in err


def test_checker_names_dynamic_quantization_and_opsets_the_device_cannot_parse(tmp_path):
    from edgeslim.compress.quantize import quantize_dynamic_int8
    from edgeslim.onnxio.export import export_onnx

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    fp32 = export_onnx(model, (3, 4, 4), tmp_path / "f.onnx", opset=17).path
    assert check_onnx_for_profile(fp32, JETSON) == []
    dyn = quantize_dynamic_int8(fp32, tmp_path / "dyn.onnx")
    problems = check_onnx_for_profile(dyn, JETSON)
    assert any(p.startswith("DynamicQuantizeLinear '") and "dynamic quantization" in p for p in problems)
    assert check_onnx_for_profile(dyn, CPU) == []
    m = onnx.load(str(fp32))
    m.opset_import[0].version = 21
    onnx.save(m, str(tmp_path / "o21.onnx"))
    (opset_problem,) = check_onnx_for_profile(tmp_path / "o21.onnx", JETSON)
    assert "opset 21" in opset_problem and "parses 13..20" in opset_problem and "opset 20" in opset_problem
