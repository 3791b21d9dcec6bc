"""The bundle ships the runtime precision: auto chose: first in the manifest's order with its
precision, only where its order was compared; the runner falls back to onnxruntime, saying so."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from edgeslim.deploy.bundle.runtimes import apply_choice, runtime_section

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
X86 = ("openvino", "onnxruntime")
# What the quantize stage writes (compress/precision_auto.runtime_hint) for an openvino/bf16 choice.
BF16_CHOICE = {"backend": "openvino", "precision": "bf16", "device": "cpu", "measured": ["onnxruntime", "openvino"],
               "host_arch": platform.machine(), "stage": "quantize", "mode": "auto"}
NO_TORCH = (
    "import sys, runpy; sys.modules['torch'] = None; sys.modules['edgeslim'] = None; "
    "sys.argv = ['runner.py'] + sys.argv[1:]; runpy.run_path('runner.py', run_name='__main__')"
)


def test_the_choice_goes_first_only_where_its_order_was_measured():
    ort_choice = {**BF16_CHOICE, "backend": "onnxruntime", "precision": "int8"}
    assert apply_choice(X86, ort_choice, "int8", "x86_64")[0] == ("onnxruntime", "openvino")
    order, rec = apply_choice(X86, {**ort_choice, "measured": ["onnxruntime"]}, "int8", "x86_64")
    assert order == X86 and not rec["applied"] and "openvino not measured" in rec["why"]
    order, rec = apply_choice(X86, {**ort_choice, "host_arch": "x86_64"}, "int8", "aarch64")
    assert order == X86 and "measured on x86_64, the target is aarch64" in rec["why"]
    order, rec = apply_choice(("tensorrt", "onnxruntime"), BF16_CHOICE, "fp32", "aarch64")
    assert order == ("tensorrt", "onnxruntime") and "does not run openvino" in rec["why"]
    order, rec = apply_choice(X86, BF16_CHOICE, "int8", None)  # a bf16 choice is for the float file
    assert order == X86 and "the model holds int8" in rec["why"]
    assert apply_choice(X86, None, "fp32") == (X86, None)


def test_runtime_section_runs_the_chosen_precision_first_and_the_file_as_it_is_after():
    sec = runtime_section(X86, "fp32", "fp32", None, "cpu", chosen=BF16_CHOICE, target_arch=platform.machine())
    assert sec["order"] == ["openvino", "onnxruntime"] and sec["chosen"]["applied"]
    assert sec["backends"]["openvino"]["precision"] == "bf16"
    assert sec["backends"]["openvino"]["inference_precision"] == "bf16"
    assert sec["backends"]["onnxruntime"]["precision"] == "fp32"
    ort_first = runtime_section(X86, "int8", "int8", chosen={**BF16_CHOICE, "backend": "onnxruntime",
                                                             "precision": "int8"})
    assert ort_first["order"] == ["onnxruntime", "openvino"]
    assert {c["precision"] for c in ort_first["backends"].values()} == {"int8"}


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory) -> Path:
    """A trained, exported run whose ONNX carries an openvino/bf16 choice.

    The choice is stamped the way the quantize stage stamps it (``finalize_onnx`` with the
    ``edgeslim.runtime`` metadata) rather than measured: which runtime wins on a 16 px model
    depends on the CPU, and this test is about what deploy does with a recorded choice
    (tests/compress/test_precision_auto.py measures the choice itself).
    """
    from edgeslim.onnxio.export import finalize_onnx
    from edgeslim.pipeline import run_pipeline
    from edgeslim.progress import NULL
    from edgeslim.recipe import parse_recipe

    out = tmp_path_factory.mktemp("runs")
    recipe = parse_recipe({
        "run": {"name": "bf", "output_dir": str(out), "threads": 1, "latency_iters": 5},
        "model": {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
        "data": {"source": "synthetic", "image_size": 16, "synthetic_classes": 4, "synthetic_per_class": 40,
                 "val_fraction": 0.2, "test_fraction": 0.25},
        "stages": [{"stage": "finetune", "train": {"epochs": 2, "batch_size": 16}}, {"stage": "export"}],
    })
    run_dir = run_pipeline(recipe, NULL).run_dir
    onnx_path = run_dir / "01-export" / "model.onnx"
    finalize_onnx(onnx_path, onnx_path, {"edgeslim.runtime": BF16_CHOICE}, simplify=False)
    return run_dir


def _runner(bundle: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], cwd=bundle, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_bundle_puts_the_chosen_openvino_bf16_first_and_the_runner_falls_back(bf16_run, tmp_path):
    from edgeslim.deploy.bundle.build import build_bundle

    man = build_bundle(bf16_run, tmp_path / "x86", "x86-cpu")
    rt = man["runtime"]
    assert rt["order"] == ["openvino", "onnxruntime"] and rt["chosen"]["applied"]
    assert rt["backends"]["openvino"]["precision"] == "bf16"
    assert rt["backends"]["onnxruntime"]["precision"] == "fp32"  # the fallback runs the file as it is
    assert json.loads((tmp_path / "x86" / "manifest.json").read_text())["runtime"] == rt
    r = _runner(tmp_path / "x86", "eval", "--images", "images", env={"EDGESLIM_RUNNER_DISABLE": "openvino"})
    assert r.returncode == 0, r.stderr
    note = r.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("note: openvino is disabled")
    assert "running model.onnx in onnxruntime" in note[0]
    res = json.loads(r.stdout)
    assert res["backend"] == "onnxruntime" and res["n"] > 0


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (pip install 'edgeslim[openvino]')")
def test_the_runner_runs_the_chosen_bf16_where_the_cpu_has_it(bf16_run, tmp_path):
    from edgeslim.deploy.bundle.build import build_bundle
    from edgeslim.runtime.portable import bf16_support, cpu_features

    build_bundle(bf16_run, tmp_path / "x86", "x86-cpu", include_images=False)
    r = _runner(tmp_path / "x86", "bench", "--iters", "3", "--warmup", "0", "--min-time", "0")
    native, why = bf16_support(cpu_features())
    if native:
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout)
        assert res["backend"] == "openvino" and res["runtime_precision"] == "bf16"
    else:  # the bundle was built where BF16 is native; this CPU lacks it: the next runtime runs
        assert r.returncode == 0 and why in r.stderr and "running model.onnx in onnxruntime" in r.stderr


def test_a_target_without_the_chosen_runtime_keeps_its_own_order(bf16_run, tmp_path):
    from edgeslim.deploy.bundle.build import build_bundle

    man = build_bundle(bf16_run, tmp_path / "pi", "raspberry-pi-5", include_images=False)
    rt = man["runtime"]
    assert rt["order"] == ["onnxruntime"] and not rt["chosen"]["applied"]
    assert "does not run openvino" in rt["chosen"]["why"]
