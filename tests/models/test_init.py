"""``edgeslim init`` writes a commented starter recipe that validates, never overwriting a file."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from twobranch_src import write_mynet  # noqa: E402


def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_init_writes_a_commented_recipe_that_validates_and_refuses_to_overwrite(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mynet = write_mynet(tmp_path)
    from edgeslim.models.registry import create_model

    torch.save(create_model(f"{mynet}:TwoBranchNet", num_classes=2).state_dict(), "w.pt")
    _image_folder(tmp_path / "photos")
    args = ("init", "--model", "mynet.py:TwoBranchNet", "--checkpoint", "w.pt", "--data", "photos",
            "--target", "jetson-orin-nano", "--out", "recipe.yaml")
    code, out, err = cli(*args)
    assert code == 0, err
    text = Path("recipe.yaml").read_text()
    assert text.startswith("# edgeslim recipe written by `edgeslim init`")
    assert "imports your file" in text and "weights_only=True" in text and "mean: null" in text
    recipe = yaml.safe_load(text)
    assert recipe["model"] == {"source": "mynet.py:TwoBranchNet", "checkpoint": "w.pt", "kwargs": {}}
    assert recipe["data"]["source"] == "imagefolder" and recipe["data"]["root"] == "photos"
    # A checkpoint goes straight to prune; the deploy target sets how INT8 is built.
    assert [s["stage"] for s in recipe["stages"]] == ["prune", "quantize", "export", "deploy"]
    assert recipe["stages"][-1]["target"] == "jetson-orin-nano"
    code, out, err = cli("validate", "recipe.yaml")
    assert code == 0 and "ok: recipe.yaml (4 stages" in out, err

    Path("recipe.yaml").write_text("# my edits\n" + text)
    code, _, err = cli(*args)
    assert code == 2 and "already exists; pass --force" in err
    assert Path("recipe.yaml").read_text().startswith("# my edits")  # untouched
    code, _, err = cli(*args, "--force")
    assert code == 0 and Path("recipe.yaml").read_text() == text


def test_init_for_a_frozen_graph_and_bad_answers(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2))
    torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), "net.onnx", dynamo=False, input_names=["input"],
                      dynamic_axes={"input": {0: "b"}})
    code, _, err = cli("init", "--model", "net.onnx", "--data", "digits", "--out", "r.yaml")
    assert code == 0, err
    recipe = yaml.safe_load(Path("r.yaml").read_text())
    assert [s["stage"] for s in recipe["stages"]] == ["quantize", "export", "deploy"]  # no prune on a frozen graph
    assert recipe["data"]["image_size"] == 32  # read from the graph's fixed input
    code, _, _ = cli("validate", "r.yaml")
    assert code == 0
    for bad, expected in [(("--data", "nowhere"), "is not a folder of images"),
                          (("--target", "jetson-nano-x"), "unknown deploy target"),
                          (("--out", "r.txt"), "must end in .yaml")]:
        argv = {"--model": "net.onnx", "--data": "digits", "--out": "r2.yaml", **dict([bad])}
        code, _, err = cli("init", *[x for kv in argv.items() for x in kv])
        assert code == 2 and expected in err and err.count("\n") == 1, err
