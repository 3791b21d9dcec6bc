"""A user's own network (``mynet.py:TwoBranchNet``) and checkpoint through a recipe that starts at
``prune``, and the same network as TorchScript / ExportedProgram / ONNX through quantize and export;
the runs reopen with export, bench and info from another working directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from twobranch_src import save_frozen_copies, write_mynet  # noqa: E402

# Four digit classes of scikit-learn's bundled digits at 16 px: the user's net learns them to ~0.99
# in a few epochs, so accuracy comparisons below have a wide margin (no download).
DATA = {"source": "digits", "image_size": 16, "channels": 3, "classes": ["0", "1", "2", "3"]}
QUICK_BENCH = ("--min-iters", "5", "--min-time", "0", "--warmup", "1", "--threads", "1")


def _recipe(tmp_path: Path, name: str, model: dict, stages: list[dict]) -> Path:
    recipe = {"run": {"name": name, "output_dir": str(tmp_path / "runs"), "seed": 0, "threads": 1,
                      "latency_iters": 5},
              "model": model, "data": DATA, "stages": stages}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """The user's file and a checkpoint of it trained on the shapes task (a plain state dict)."""
    from edgeslim.cli import main

    tmp = tmp_path_factory.mktemp("own")
    mynet = write_mynet(tmp)
    source = {"source": f"{mynet}:TwoBranchNet", "kwargs": {"width": 16}}
    train = [{"stage": "finetune", "train": {"epochs": 4, "batch_size": 32, "optimizer": {"lr": 0.005}}}]
    assert main(["run", str(_recipe(tmp, "train", source, train)), "--quiet"]) == 0
    from edgeslim.models.serialize import read_model_file

    state = read_model_file(tmp / "runs" / "train" / "00-finetune" / "model.pt")["state_dict"]
    torch.save(state, tmp / "twobranch.pt")
    return mynet, tmp / "twobranch.pt"


@pytest.mark.slow
def test_users_checkpoint_starts_at_prune_and_the_run_reopens_elsewhere(trained, tmp_path, cli, monkeypatch):
    mynet, ckpt = trained
    stages = [
        {"stage": "prune", "target": {"macs": 0.5}, "round_to": 4,
         "recovery": {"train": {"epochs": 2, "batch_size": 32, "optimizer": {"lr": 0.002}}}},
        {"stage": "quantize", "precision": "int8", "target": "jetson-orin-nano", "calibration": {"samples": 32},
         "latency_iters": 5},
        {"stage": "export"},
    ]
    model = {"source": f"{mynet}:TwoBranchNet", "checkpoint": str(ckpt), "kwargs": {"width": 16}}
    code, _, err = cli("run", _recipe(tmp_path, "own", model, stages), "--quiet")
    assert code == 0, err
    run_dir = tmp_path / "runs" / "own"
    run = json.loads((run_dir / "run.json").read_text())
    prune = run["stages"][0]["metrics"]
    assert prune["macs_fraction"] <= 0.5 and prune["accuracy_guard"]["within_budget"]
    # ~0.99 measured: a 9-point margin over 0.9 on ~145 test images, far beyond kernel-order effects.
    assert run["stages"][2]["metrics"]["test_accuracy"] >= 0.9
    q = onnx.load(str(run_dir / "02-export" / "model.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)

    # Every command reopens the run from another directory: the spec records the file's absolute path.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = cli("export", run_dir, "--out", "again.onnx")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["parity"]
    code, out, err = cli("bench", run_dir / "00-prune" / "model.pt", *QUICK_BENCH, "--quiet")
    assert code == 0, err
    assert float(out.strip().split()[0]) > 0
    code, out, err = cli("info", run_dir / "00-prune" / "model.pt")
    assert code == 0 and "TwoBranchNet (edgeslim)" in out and "input:  1x3x16x16" in out
    code, _, err = cli("deploy", run_dir, "--target", "jetson-orin-nano", "--out", "bundle", "--no-tar")
    assert code == 0, err
    shipped = next(Path("bundle").rglob("*.onnx"))
    from edgeslim.deploy.compat import check_onnx_for_profile
    from edgeslim.deploy.profiles import get_profile

    assert check_onnx_for_profile(shipped, get_profile("jetson-orin-nano")) == []


@pytest.fixture(scope="module")
def frozen_copies(trained) -> dict[str, Path]:
    """The trained user model saved by the user as TorchScript, ExportedProgram (dynamic batch) and ONNX."""
    from edgeslim.models.factory import model_from_spec
    from edgeslim.recipe import ModelSpec

    mynet, ckpt = trained
    model = model_from_spec(ModelSpec(source=f"{mynet}:TwoBranchNet", checkpoint=str(ckpt), kwargs={"width": 16}),
                            3, 4).eval()
    x = torch.randn(2, 3, 16, 16)
    return save_frozen_copies(model, x, ckpt.parent)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ts", "pt2", "onnx"])
def test_frozen_copies_quantize_and_export_for_jetson_and_refuse_prune(frozen_copies, tmp_path, cli, kind):
    from edgeslim.deploy.compat import check_onnx_for_profile
    from edgeslim.deploy.profiles import get_profile

    source = {"source": str(frozen_copies[kind])}
    stages = [{"stage": "quantize", "precision": "int8", "target": "jetson-orin-nano",
               "calibration": {"samples": 32}, "latency_iters": 5}, {"stage": "export"}]
    code, _, err = cli("run", _recipe(tmp_path, f"f{kind}", source, stages), "--quiet")
    assert code == 0, err
    run = json.loads((tmp_path / "runs" / f"f{kind}" / "run.json").read_text())
    # The trained model keeps its accuracy through INT8 (the quantize guard's default budget holds).
    assert run["stages"][0]["metrics"]["accuracy_guard"]["within_budget"]
    assert run["stages"][1]["metrics"]["test_accuracy"] >= 0.9  # ~0.99 measured, see DATA
    onnx_path = tmp_path / "runs" / f"f{kind}" / "01-export" / "model.onnx"
    assert check_onnx_for_profile(onnx_path, get_profile("jetson-orin-nano")) == []

    code, _, err = cli("run", _recipe(tmp_path, f"p{kind}", source, [{"stage": "prune"}]), "--quiet")
    assert code == 2
    assert "stage 'prune' needs an editable nn.Module" in err and "quantize, export, evaluate, deploy, bench" in err
