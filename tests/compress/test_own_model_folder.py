"""The issue's must-show, end to end, as a new user does it: their own two-branch network in
``mynet.py``, a checkpoint they trained with their own loop on a folder of PNG/JPEG photos, a recipe
that starts at ``prune`` -> <= 50% MACs -> INT8 for a Jetson -> export (parity) -> ``edgeslim deploy``;
every command reopens the run from another directory. The same model saved as TorchScript, .pt2
and ONNX goes through quantize -> export -> deploy, and ``validate`` refuses to prune it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from photos import USER_MEAN, USER_STD, train_users_checkpoint, write_digit_photos  # noqa: E402
from twobranch_src import save_frozen_copies, write_mynet  # noqa: E402

QUICK_BENCH = ("--min-iters", "5", "--min-time", "0", "--warmup", "1", "--threads", "1")
# The recipe's data: the photos folder, with the normalisation the user trained with. 30% of
# ~900 photos (10 classes) are the test split: ~270 images, one image = 0.37 points.
DATA = {"source": "imagefolder", "root": "photos", "image_size": 32, "channels": 3,
        "mean": USER_MEAN, "std": USER_STD, "test_fraction": 0.3}
MODEL = {"source": "mynet.py:TwoBranchNet", "checkpoint": "twobranch.pt", "kwargs": {"width": 16}}
JETSON = "jetson-orin-nano"


def _write(folder: Path, name: str, model: dict, stages: list[dict]) -> Path:
    recipe = {"run": {"name": name, "output_dir": "runs", "seed": 0, "threads": 2, "latency_iters": 5},
              "model": model, "data": DATA, "stages": stages}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _run(project: Path, name: str, model: dict, stages: list[dict]) -> dict:
    """``edgeslim run`` in the project folder (relative paths, as a user writes them); run.json."""
    import os

    from edgeslim.cli import main

    here = Path.cwd()
    os.chdir(project)
    try:
        assert main(["run", str(_write(project, name, model, stages)), "--quiet"]) == 0
    finally:
        os.chdir(here)
    return json.loads((project / "runs" / name / "run.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The user's folder: mynet.py, train_photos/ (what they trained on), photos/ (what they
    compress with; disjoint images), twobranch.pt (their plain state dict)."""
    from edgeslim.models.registry import create_model

    root = tmp_path_factory.mktemp("project")
    mynet = write_mynet(root)
    write_digit_photos(root / "train_photos", part=0)
    write_digit_photos(root / "photos", part=1)
    torch.manual_seed(0)  # module fixtures run before the suite's per-test seeding
    net = create_model(f"{mynet}:TwoBranchNet", num_classes=10, width=16)
    # Their own loop (AdamW, one-cycle), their own normalisation ((x/255 - 0.5) / 0.5): ~0.99 train
    # accuracy. One thread, whatever earlier tests set: the float reduction order is then the same
    # in every session on a given CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_users_checkpoint(net, root / "train_photos", root / "twobranch.pt", epochs=8) > 0.9
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="module")
def original(project) -> float:
    """The user's checkpoint as it is, on edgeslim's test split: a recipe that starts at evaluate."""
    run = _run(project, "original", MODEL, [{"stage": "evaluate"}])
    assert run["warnings"] == [] and run["normalization"]["from"] == "recipe data.mean/std"
    return run["stages"][0]["metrics"]["test_top1"]


def _zero_points(path: Path) -> list[np.ndarray]:
    m = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in m.graph.node if n.op_type == "Constant"}
    return [inits.get(n.input[2], consts.get(n.input[2])) for n in m.graph.node if n.op_type == "QuantizeLinear"]


@pytest.mark.slow
def test_users_photos_and_checkpoint_from_prune_to_a_jetson_bundle(project, original, cli, tmp_path, monkeypatch):
    # Measured: 0.97 on ~270 test photos; a floor 7 points below, only to catch a broken fixture.
    assert original >= 0.9
    stages = [
        # Recovery distils from the unpruned model: measured -0.4..+0.4 points after pruning to 35%
        # of the MACs (checkpoints trained on 1 or 2 threads); without KD, 3 epochs lost 0.7-2.2.
        {"stage": "prune", "target": {"macs": 0.5}, "round_to": 4,
         "recovery": {"train": {"epochs": 6, "batch_size": 32, "optimizer": {"lr": 0.002}}, "kd": {"teacher": "auto"}}},
        {"stage": "quantize", "precision": "int8", "target": JETSON, "calibration": {"samples": 64},
         "latency_iters": 5, "accuracy_budget": 2.0},  # the must-show's 2 points (136 val images; measured 0)
        {"stage": "export"},
    ]
    monkeypatch.chdir(project)
    recipe = _write(project, "own", MODEL, stages)
    code, out, err = cli("validate", recipe)
    assert code == 0 and "3 stages: prune, quantize, export" in out, err
    code, _, err = cli("run", recipe, "--quiet")
    assert code == 0, err
    run_dir = project / "runs" / "own"
    run = json.loads((run_dir / "run.json").read_text())
    prune, quant, export = (s["metrics"] for s in run["stages"])
    assert prune["macs_fraction"] <= 0.5 and prune["accuracy_guard"]["within_budget"]
    assert quant["accuracy_guard"]["within_budget"] and export["precision"] == "int8"
    assert export["evaluated_on"] == "onnxruntime" and export["parity"] == "passed"
    # The INT8 ONNX in onnxruntime keeps the original's accuracy within 2 points (measured 0.974 ->
    # 0.970, 1 of 268 images; the margin is 5 images, above the run-to-run spread seen above).
    assert export["test_accuracy"] >= original - 0.02
    assert run["warnings"] == [] and run["normalization"]["mean"] == USER_MEAN

    # From another directory: deploy for the Jetson, export again, bench the pruned model.pt.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = cli("deploy", run_dir, "--target", JETSON, "--out", "bundle", "--no-tar")
    assert code == 0, err
    bundle = elsewhere / "bundle"
    zps = _zero_points(bundle / "model.onnx")
    assert zps and all(z is not None and z.dtype == np.int8 and not z.any() for z in zps)
    man = json.loads((bundle / "manifest.json").read_text())
    assert man["preprocessing"]["mean"] == USER_MEAN and man["preprocessing"]["std"] == USER_STD
    # The bundle's runner preprocesses exactly as the pipeline did: same accuracy on the same
    # images (the test split, written as PNG), in the runtime the device has (onnxruntime here).
    res = subprocess.run([sys.executable, "-I", "runner.py", "eval", "--images", "images"], cwd=bundle,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["accuracy"] == export["test_accuracy"]

    code, out, err = cli("export", run_dir, "--out", "again.onnx")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["parity"], err
    code, out, err = cli("bench", run_dir / "00-prune" / "model.pt", *QUICK_BENCH, "--quiet")
    assert code == 0 and float(out.strip().split()[0]) > 0, err


@pytest.fixture(scope="module")
def frozen_copies(project) -> dict[str, Path]:
    """The user's trained model saved as TorchScript, ExportedProgram (dynamic batch) and ONNX."""
    from edgeslim.models.factory import model_from_spec
    from edgeslim.recipe import ModelSpec

    spec = ModelSpec(source=f"{project / 'mynet.py'}:TwoBranchNet", checkpoint=str(project / "twobranch.pt"),
                     kwargs={"width": 16})
    model = model_from_spec(spec, 3, 10).eval()
    x = torch.randn(2, 3, 32, 32)
    return save_frozen_copies(model, x, project)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ts", "pt2", "onnx"])
def test_frozen_copies_quantize_export_deploy_for_jetson_and_validate_refuses_prune(
        project, original, frozen_copies, cli, monkeypatch, kind):
    from edgeslim.deploy.compat import check_onnx_for_profile
    from edgeslim.deploy.profiles import get_profile

    monkeypatch.chdir(project)
    source = {"source": frozen_copies[kind].name}
    refused = _write(project, f"prune-{kind}", source, [{"stage": "prune"}, {"stage": "export"}])
    code, _, err = cli("validate", refused)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"stages[0]: stage 'prune' needs an editable nn.Module but model.source '{source['source']}'" in err
    assert "stages that can run on it: quantize, export, evaluate, deploy, bench" in err
    assert cli("run", refused, "--quiet")[0] == 2 and not (project / "runs" / f"prune-{kind}").exists()

    stages = [{"stage": "quantize", "precision": "int8", "target": JETSON, "calibration": {"samples": 64},
               "latency_iters": 5, "accuracy_budget": 2.0}, {"stage": "export"}, {"stage": "deploy", "target": JETSON}]
    code, _, err = cli("run", _write(project, f"f{kind}", source, stages), "--quiet")
    assert code == 0, err
    run = json.loads((project / "runs" / f"f{kind}" / "run.json").read_text())
    quant, export, _ = (s["metrics"] for s in run["stages"])
    assert quant["accuracy_guard"]["within_budget"] and export["precision"] == "int8"
    assert export["test_accuracy"] >= original - 0.02  # same stated margin as above
    bundle = project / "runs" / f"f{kind}" / "02-deploy" / "bundle"
    assert check_onnx_for_profile(bundle / "model.onnx", get_profile(JETSON)) == []
    zps = _zero_points(bundle / "model.onnx")
    assert zps and all(z is not None and not z.any() for z in zps)
