"""Recipe validation: one clear line per problem, exit code 2, nothing written."""

from pathlib import Path

import pytest
import yaml

from edgeslim.errors import RecipeError
from edgeslim.recipe import load_recipe


def test_demo_recipe_validates():
    r = load_recipe(Path(__file__).parents[2] / "recipes" / "demo.yaml")
    assert r.run.name == "demo" and [s.stage for s in r.stages][:2] == ["pretrain", "finetune"]


def test_resolved_recipe_round_trips(write_recipe, tmp_path):
    r = load_recipe(write_recipe())
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(r.resolved()))
    assert load_recipe(again).resolved() == r.resolved()


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["data"].update(image_sise=32), ["data.image_sise", "did you mean 'image_size'"]),
    (lambda d: d["data"].update(image_size="big"), ["data.image_size", "given 'big'"]),
    (lambda d: d["model"].update(sauce="x"), ["model.sauce", "valid keys"]),
    (lambda d: d["stages"].append({"stage": "finetun"}), ["stages[1].stage", "did you mean 'finetune'"]),
    (lambda d: d["stages"][0]["train"].update(epochz=3), ["stages[0].train.epochz", "did you mean 'epochs'"]),
    (lambda d: d["run"].update(name="bad name!"), ["run.name", "pattern"]),
    (lambda d: d.update(stages="finetune"), ["stages: must be a list"]),
])
def test_bad_recipe_lines(write_recipe, tmp_path, mutate, expected, cli):
    path = write_recipe()
    raw = yaml.safe_load(path.read_text())
    mutate(raw)
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(RecipeError) as ei:
        load_recipe(path)
    text = "\n".join(ei.value.problems)
    for frag in expected:
        assert frag in text
    assert str(path) in text
    code, _, err = cli("run", path)
    assert code == 2 and expected[0] in err
    assert not (tmp_path / "runs").exists(), "a bad recipe must not write anything"


def test_every_problem_reported_at_once(write_recipe):
    path = write_recipe()
    raw = yaml.safe_load(path.read_text())
    raw["data"]["image_size"] = -1
    raw["stages"].append({"stage": "nope"})
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(RecipeError) as ei:
        load_recipe(path)
    assert len(ei.value.problems) == 2


def test_invalid_yaml_and_missing_file(tmp_path, cli):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {name: x\nstages: [")
    code, _, err = cli("validate", bad)
    assert code == 2 and "not valid YAML at line" in err
    code, _, err = cli("validate", tmp_path / "missing.yaml")
    assert code == 2 and "does not exist" in err


def test_validate_ok(write_recipe, cli):
    code, out, _ = cli("validate", write_recipe())
    assert code == 0 and out.startswith("ok:")


@pytest.mark.parametrize("section, value, fragment", [
    ("model", {"source": "tinyresnt"}, "did you mean 'tinyresnet'"),
    ("model", {"source": "torchvision:resnet19"}, "unknown torchvision model 'resnet19'"),
    ("data", {"source": "mnist"}, "unknown data source 'mnist'"),
])
def test_unknown_model_or_dataset_name(write_recipe, cli, tmp_path, section, value, fragment):
    code, _, err = cli("run", write_recipe(**{section: value}))
    assert code == 2 and fragment in err and f"{section}.source" in err
    assert not (tmp_path / "runs").exists()
