"""precision: auto across backend x precision: the choice on injected measurements, BF16 only on
native-BF16 CPUs (fake /proc/cpuinfo), every candidate in run.json, targets' runtimes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from edgeslim.compress import precision_auto as PA
from edgeslim.compress.configs import QuantizeConfig
from edgeslim.compress.quantize_stage import _wanted, candidate_backends, check_for_target
from edgeslim.deploy.profiles import get_profile
from edgeslim.errors import InputError
from edgeslim.runtime.providers import Candidate, precision_candidates

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
ZEN4 = "model name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16\n"
SKYLAKE = "model name\t: Intel Xeon Gold 6148\nflags\t\t: fpu avx2 avx512f avx512bw\n"
BOTH = {"onnxruntime": None, "openvino": None}
# Paths are never opened: the injected measurement stands in for opening and timing them.
FILES = {"fp32": Path("float.onnx"), "int8": Path("int8.onnx"), "int8_dynamic": Path("int8_dynamic.onnx")}


class Val:
    """The one thing select() reads from the data: the size of the validation split."""

    val = [0] * 200  # one image = 0.5 points, under the 1-point budget


def fake_measure(figures: dict[str, tuple[float, float]], reference: float = 0.90):
    """A measure function with fixed (val top-1, median ms) per candidate key; records its calls."""
    calls: list[list[str]] = []

    def measure(cands: list[Candidate], files: dict, data: Any, threads: Any, iters: int, **_: Any) -> dict:
        calls.append([c.key for c in cands])
        rows = []
        for c in cands:
            acc, ms = figures[c.key]
            rows.append({"candidate": c.key, "backend": c.backend, "precision": c.precision, "device": c.device,
                         "artifact": PA.artifact_of(c, files).name, "val_top1": acc, "latency_ms": ms,
                         "latency_ci95_ms": [ms * 0.98, ms * 1.02]})
        return {"rows": rows, "reference": {"val_top1": reference}, "self_compare": {"ratio": 1.0, "flat": True}}

    measure.calls = calls  # type: ignore[attr-defined]
    return measure


FIGURES = {  # (val top-1, median ms): openvino/int8 is fastest but loses 3 points
    "onnxruntime/fp32": (0.90, 10.0), "onnxruntime/int8": (0.895, 4.0), "onnxruntime/int8_dynamic": (0.90, 9.0),
    "openvino/fp32": (0.90, 8.0), "openvino/bf16": (0.895, 3.0), "openvino/int8": (0.87, 2.0),
}


def _cands(cpuinfo: str, available: dict | None = None) -> list[Candidate]:
    return precision_candidates(wanted=("fp32", "bf16", "int8", "int8_dynamic"),
                                backends=("openvino", "onnxruntime"), cpuinfo=cpuinfo, available=available or BOTH)


def test_auto_keeps_the_fastest_candidate_within_the_budget():
    measure = fake_measure(FIGURES)
    res = PA.select(_cands(ZEN4), FILES, Val(), 1.0, threads=2, iters=10, measure=measure)
    rows = {r["candidate"]: r for r in res["candidates"]}
    assert set(rows) == set(FIGURES)  # not-applicable pairs (openvino int8_dynamic...) are no candidates
    assert res["chosen_candidate"] == "openvino/bf16" and res["chosen"] == "bf16"
    assert res["chosen_backend"] == "openvino" and res["mode"] == "auto"
    assert not rows["openvino/int8"]["within_budget"] and "over the accuracy budget" in rows["openvino/int8"]["why"]
    assert [k for k, r in rows.items() if r["kept"]] == ["openvino/bf16"]
    assert "slower than openvino/bf16" in rows["onnxruntime/int8"]["why"]
    assert res["reason"].startswith("openvino/bf16 is the fastest within the 1 point budget")
    # bf16 runs the float file: that is what would ship
    assert rows["openvino/bf16"]["artifact"] == "float.onnx" and PA.artifact_key("bf16") == "fp32"
    hint = PA.runtime_hint(res)
    assert hint["backend"] == "openvino" and hint["precision"] == "bf16"
    assert hint["measured"] == ["onnxruntime", "openvino"]
    table = PA.choice_markdown(res)  # what report.md / the stage's precision_choice.md show
    assert sum(line.startswith(f"| {k} |") for k in FIGURES for line in table) == len(FIGURES)
    assert sum("**yes**" in line for line in table) == 1 and "| openvino/bf16 |" in next(
        line for line in table if "**yes**" in line)


def test_restricted_to_onnxruntime_the_same_measurements_pick_its_fastest():
    ort_only = [c for c in _cands(ZEN4) if c.backend == "onnxruntime"]
    res = PA.select(ort_only, FILES, Val(), 1.0, threads=2, iters=10, measure=fake_measure(FIGURES))
    assert res["chosen_candidate"] == "onnxruntime/int8"


def test_forced_precision_takes_its_fastest_backend_and_says_when_auto_would_be_faster():
    res = PA.select(_cands(ZEN4), FILES, Val(), 1.0, threads=2, iters=10, forced="int8",
                    measure=fake_measure(FIGURES))
    # openvino/int8 is over budget: the forced precision's fastest backend within it is onnxruntime
    assert res["chosen_candidate"] == "onnxruntime/int8" and res["mode"] == "forced"
    assert "slower than openvino/bf16" in res["warning"]
    with pytest.raises(InputError, match="quantize precision fp16: no candidate can be measured here"):
        PA.select(_cands(ZEN4), FILES, Val(), 1.0, threads=2, iters=10, forced="fp16",
                  measure=fake_measure(FIGURES))


def test_nothing_within_budget_keeps_the_fastest_fp32_for_the_guard_to_judge():
    figures = {k: (0.80 if not k.endswith("fp32") else v[0], v[1]) for k, v in FIGURES.items()}
    figures["openvino/fp32"] = (0.85, 8.0)  # even OpenVINO's fp32 lost 5 points here
    res = PA.select(_cands(ZEN4), FILES, Val(), 1.0, threads=2, iters=10, measure=fake_measure(figures))
    assert res["chosen_candidate"] == "onnxruntime/fp32"
    assert res["candidates"][0]["candidate"] == "openvino/fp32"  # rows keep the target's order


def test_bf16_is_a_candidate_only_with_native_bf16_and_the_skip_reason_is_recorded():
    measure = fake_measure(FIGURES)
    res = PA.select(_cands(SKYLAKE), FILES, Val(), 1.0, threads=2, iters=10, measure=measure)
    rows = {r["candidate"]: r for r in res["candidates"]}
    assert "openvino/bf16" not in measure.calls[0]  # never opened or timed
    bf16 = rows["openvino/bf16"]
    assert "avx512_bf16" in bf16["skipped"] and bf16["skipped"].startswith("bf16: no native BF16")
    assert not bf16["kept"] and bf16["why"].startswith("skipped: bf16")
    assert res["chosen_candidate"] == "onnxruntime/int8"  # the fastest within budget of what ran
    zen = PA.select(_cands(ZEN4), FILES, Val(), 1.0, threads=2, iters=10, measure=fake_measure(FIGURES))
    assert "openvino/bf16" in {r["candidate"] for r in zen["candidates"] if "skipped" not in r}


def test_an_absent_openvino_is_recorded_and_onnxruntime_still_chooses():
    gone = {"onnxruntime": None, "openvino": "openvino is not installed (pip install 'edgeslim[openvino]')"}
    res = PA.select(_cands(ZEN4, gone), FILES, Val(), 1.0, threads=2, iters=10, measure=fake_measure(FIGURES))
    ov = [r for r in res["candidates"] if r["backend"] == "openvino"]
    assert ov and all("openvino is not installed" in r["skipped"] for r in ov)
    assert res["chosen_candidate"] == "onnxruntime/int8"
    assert PA.runtime_hint(res)["measured"] == ["onnxruntime"]  # deploy then keeps the target's order


def test_a_candidate_its_runtime_cannot_open_is_recorded_and_the_rest_are_measured(tmp_path, tiny_data):
    """Real sessions on a 16 px net; the int8 file is missing on purpose (a runtime failing to
    open a candidate must cost that candidate, not the stage)."""
    import torch

    from edgeslim.onnxio.export import export_onnx

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    files = {"fp32": export_onnx(net, (3, 16, 16), tmp_path / "float.onnx").path, "int8": tmp_path / "int8.onnx"}
    cands = [Candidate("onnxruntime", "fp32"), Candidate("onnxruntime", "int8")]
    res = PA.select(cands, files, tiny_data, 1.0, threads=1, iters=4)
    rows = {r["candidate"]: r for r in res["candidates"]}
    assert rows["onnxruntime/int8"]["skipped"].startswith("onnxruntime could not run it: ")
    assert "int8.onnx" in rows["onnxruntime/int8"]["skipped"] and not rows["onnxruntime/int8"]["kept"]
    assert res["chosen_candidate"] == "onnxruntime/fp32" and rows["onnxruntime/fp32"]["latency_calls"] >= 4
    assert res["self_compare"]["candidate"] == "onnxruntime/fp32" and res["timing"]["interleaved"]


def test_gpu_candidates_are_skipped_with_the_reason_where_no_gpu_provider_runs():
    no_gpu = precision_candidates(device="cuda", wanted=("fp32", "fp16", "int8"), backends=("onnxruntime",),
                                  available=BOTH, device_missing=lambda b, d: f"no {d} provider in this build")
    assert [c.skipped for c in no_gpu] == ["no cuda provider in this build"] * 3
    gpu = precision_candidates(device="cuda", wanted=("fp16",), backends=("onnxruntime", "openvino"),
                               available=BOTH, device_missing=lambda b, d: None)
    assert gpu[0].skipped is None and gpu[0].key == "onnxruntime/fp16@cuda"
    assert not gpu[1].applicable  # OpenVINO is a CPU runtime here: no candidate on the GPU


def test_jetson_targets_get_no_openvino_candidates_and_x86_gets_both():
    jetson = get_profile("jetson-orin-nano")
    cfg = QuantizeConfig(target="jetson-orin-nano", precision="auto")
    backends, devices = candidate_backends(cfg, jetson)
    assert "openvino" not in backends and backends == ("tensorrt", "onnxruntime") and devices["tensorrt"] == "cuda"
    assert "bf16" not in _wanted(cfg, jetson, backends)
    cands = precision_candidates(wanted=tuple(_wanted(cfg, jetson, backends)), backends=backends, devices=devices,
                                 cpuinfo=ZEN4, available=BOTH | {"tensorrt": None})
    assert cands and not any(c.backend == "openvino" for c in cands)
    for bad, words in (({"backends": ["openvino"]}, "quantize.backends lists openvino but target 'jetson-orin-nano'"),
                       ({"precision": "bf16"}, "quantize precision bf16 runs in openvino only")):
        with pytest.raises(InputError) as ei:
            check_for_target(QuantizeConfig(target="jetson-orin-nano", **bad), jetson)
        assert words in str(ei.value) and "\n" not in str(ei.value)
    x86 = get_profile("x86-cpu")
    cfg = QuantizeConfig(target="x86-cpu", precision="auto")
    backends, _ = candidate_backends(cfg, x86)
    assert backends == ("openvino", "onnxruntime") and "bf16" in _wanted(cfg, x86, backends)
    assert candidate_backends(QuantizeConfig(precision="auto"), None)[0] == ("onnxruntime",)  # no target


def test_unknown_backend_name_is_a_recipe_error(write_recipe, cli):
    code, _, err = cli("validate", write_recipe([{"stage": "quantize", "backends": ["openvin"]}]))
    assert code == 2 and "did you mean 'openvino'" in err and len(err.strip().splitlines()) == 1


def test_the_quantize_stage_records_every_candidate_in_run_json(write_recipe, cli, tmp_path, digits_data_spec):
    from edgeslim.onnxio.info import read_metadata
    from edgeslim.runtime.providers import cpu_precision_support

    stages = [{"stage": "finetune", "train": {"epochs": 2, "batch_size": 32, "tensorboard": False}},
              {"stage": "quantize", "precision": "auto", "target": "x86-cpu", "calibration": {"samples": 32},
               "latency_iters": 6}]
    code, _, err = cli("run", write_recipe(stages, data=digits_data_spec), "--quiet")
    assert code == 0, err
    run = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    m = run["stages"][1]["metrics"]
    choice = m["precision_choice"]
    rows = {r["candidate"]: r for r in choice["candidates"]}
    expected = {f"{b}/{p}" for b in ("openvino", "onnxruntime") for p in ("fp32", "int8")}
    assert expected | {"onnxruntime/int8_dynamic", "openvino/bf16"} == set(rows)
    measured = [r for r in rows.values() if "skipped" not in r]
    for r in measured:  # accuracy and latency of each, measured in its own runtime
        assert 0 <= r["val_top1"] <= 1 and r["latency_ms"] > 0 and r["runtime"]["name"] == r["backend"]
        lo, hi = r["latency_ci95_ms"]
        assert lo <= r["latency_ms"] <= hi and len(r["latency_iqr_ms"]) == 2 and isinstance(r["kept"], bool)
    assert [k for k, r in rows.items() if r.get("kept")] == [choice["chosen_candidate"]]
    bf16 = rows["openvino/bf16"]
    if not HAS_OPENVINO:
        assert "openvino is not installed" in bf16["skipped"]
    elif cpu_precision_support()["bf16_native"]:
        assert bf16["runtime"]["options"]["inference_precision_used"] == "bf16"
    else:
        assert bf16["skipped"].startswith("bf16: no native BF16")
    assert choice["self_compare"]["candidate"] == measured[0]["candidate"] and choice["timing"]["interleaved"]
    assert m["backend"] == choice["chosen_backend"] and m["precision"] == choice["chosen"]
    # the shipped ONNX says which runtime the choice was made for; the stage measured it there
    meta = read_metadata(tmp_path / "runs" / "t" / "01-quantize" / "model.onnx")
    assert meta["edgeslim.runtime"] == m["runtime"] and m["runtime"]["backend"] == m["backend"]
    assert m["evaluated_on"] == m["latency_backend"] == m["backend"]
    assert run["stages"][0]["metrics"]["latency_backend"] == "torch"
    table = (tmp_path / "runs" / "t" / "01-quantize" / m["precision_choice_file"]).read_text()
    assert all(f"| {k} |" in table for k in rows)
