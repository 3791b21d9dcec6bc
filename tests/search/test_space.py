"""The search: block as edgeslim search reads it: short names -> stage keys, one-line errors."""

from __future__ import annotations

import copy

import pytest

from edgeslim.errors import RecipeError
from edgeslim.recipe import parse_recipe
from edgeslim.search.space import apply_values, parse_search

BASE = {
    "run": {"name": "s", "output_dir": "runs"},
    "model": {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
    "data": {"source": "synthetic", "image_size": 32, "synthetic_classes": 4, "synthetic_per_class": 10},
    "stages": [
        {"stage": "finetune", "train": {"epochs": 1}},
        {"stage": "prune", "target": {"macs": 0.5}, "recovery": {"kd": {"teacher": "finetune"}}},
        {"stage": "quantize", "precision": "int8"},
        {"stage": "export"},
        {"stage": "bench"},
    ],
}


def _plan(search, stages=None):
    raw = copy.deepcopy(BASE)
    if stages is not None:
        raw["stages"] = stages
    if search is not None:
        raw["search"] = search
    return raw, parse_search(raw, parse_recipe(raw), "r.yaml")


def _problems(search, stages=None) -> list[str]:
    with pytest.raises(RecipeError) as e:
        _plan(search, stages)
    assert all("\n" not in p for p in e.value.problems)
    return e.value.problems


def test_short_names_find_their_stage_and_write_valid_recipes():
    raw, plan = _plan({"params": {
        "target_ratio": {"low": 0.2, "high": 0.6}, "importance": {"choices": ["l1", "taylor"]},
        "round_to": {"choices": [4, 8]}, "precision": {"choices": ["int8", "fp32"]},
        "backend": {"choices": ["onnxruntime"]}, "kd_alpha": {"low": 0.3, "high": 0.9}}})
    where = {t.name: (t.index, t.path) for t in plan.targets}
    assert where == {"target_ratio": (1, "target.ratio"), "importance": (1, "importance"), "round_to": (1, "round_to"),
                     "precision": (2, "precision"), "backend": (2, "backends"), "kd_alpha": (1, "recovery.kd.alpha")}
    assert plan.first_index == 1 and plan.artifact_index == 3  # finetune shared; export's ONNX is measured
    out = apply_values(raw, plan, {"target_ratio": 0.4, "backend": "onnxruntime", "kd_alpha": 0.5})
    assert "search" not in out
    assert out["stages"][1]["target"] == {"ratio": 0.4}  # replaces macs: exactly one target kind is allowed
    assert out["stages"][2]["backends"] == ["onnxruntime"] and out["stages"][1]["recovery"]["kd"]["alpha"] == 0.5
    assert raw["stages"][1]["target"] == {"macs": 0.5}  # the raw recipe is untouched
    parse_recipe(out, "picked")


def test_stage_prefix_or_stage_key_for_several_stages_of_a_kind():
    stages = [{"stage": "finetune", "train": {"epochs": 1}},
              {"stage": "prune", "label": "early", "target": {"ratio": 0.2}},
              {"stage": "prune", "label": "late", "target": {"ratio": 0.2}},
              {"stage": "export"}]
    _, plan = _plan({"params": {"early.target_ratio": {"low": 0.1, "high": 0.3},
                                "r2": {"low": 0.1, "high": 0.3, "stage": "late", "path": "target.ratio"}}}, stages)
    assert {t.name: t.index for t in plan.targets} == {"early.target_ratio": 1, "r2": 2}
    assert plan.first_index == 1
    lines = _problems({"params": {"target_ratio": {"low": 0.1, "high": 0.3}}}, stages)
    assert "several stages fit (early, late)" in lines[0] and "LABEL.target_ratio" in lines[0]


@pytest.mark.parametrize("search,says", [
    (None, "search: missing"),
    ({"params": {}}, "search.params: no searchable setting"),
    ({"trials": 3}, "search.params: no searchable setting"),
    ({"params": {"importanse": {"choices": ["l1"]}}}, "unknown short name 'importanse' (did you mean 'importance'?)"),
    ({"params": {"importance": {"choices": ["l1", "l3"]}}},
     "search.params.importance (stage key importance, value 'l3')"),
    ({"params": {"target_macs": {"low": 0.2, "high": 1.5}}}, "value 1.5"),
    ({"sampler": "anneal", "params": {"importance": {"choices": ["l1"]}}}, "search.sampler"),
    ({"metric": "best_val_top1", "params": {"importance": {"choices": ["l1"]}}},
     "search.metric: an `edgeslim tune` key"),
    ({"params": {"x": {"low": 1, "high": 2, "path": "iters"}}}, "path 'iters' needs stage:"),
    ({"params": {"x": {"low": 5, "high": 9, "path": "iters", "stage": "bench"}}}, "after 03-export"),
    ({"params": {"width": {"low": 0.3, "high": 0.6}}}, "the recipe has no distill stage"),
    ({"params": {"x": {"choices": ["l1"], "stage": "prun", "path": "importance"}}}, "no stage 'prun' (did you mean"),
    ({"params": {"lr": {"low": 0.1, "high": 0.2}}}, "unknown short name 'lr'"),
])
def test_bad_search_blocks_are_one_line_each(search, says):
    lines = _problems(search)
    assert any(says in line for line in lines), lines
    assert all(line.startswith("r.yaml: ") for line in lines)


def test_kd_weight_needs_kd_in_the_stage():
    stages = [{"stage": "finetune", "train": {"epochs": 1}}, {"stage": "prune"}, {"stage": "export"}]
    lines = _problems({"params": {"kd_alpha": {"low": 0.3, "high": 0.9}}}, stages)
    assert "has no recovery.kd to weight" in lines[0]


def test_a_recipe_without_an_onnx_stage_is_refused():
    stages = [{"stage": "finetune", "train": {"epochs": 1}}, {"stage": "prune"}]
    lines = _problems({"params": {"importance": {"choices": ["l1"]}}}, stages)
    assert "no stage writes an ONNX" in lines[0]


def test_shipped_search_demo_validates_and_parses():
    from pathlib import Path

    from edgeslim.recipe import load_recipe
    from edgeslim.safe_yaml import load_yaml_file

    path = Path(__file__).resolve().parents[2] / "recipes" / "search-demo.yaml"
    plan = parse_search(load_yaml_file(path), load_recipe(path), str(path))
    assert [t.name for t in plan.targets] == ["target_macs", "importance", "round_to", "precision"]
    assert plan.first_index == 2 and plan.artifact_index == 4  # pretrain+finetune shared; export measured


def test_baseline_is_the_recipes_own_values_inside_the_space():
    stages = copy.deepcopy(BASE["stages"])
    stages[1].update({"importance": "l2", "round_to": 8})
    stages[2]["backends"] = ["onnxruntime"]
    raw, plan = _plan({"params": {
        "target_macs": {"low": 0.2, "high": 0.6}, "importance": {"choices": ["l1", "l2"]},
        "round_to": {"choices": [4, 16]}, "precision": {"choices": ["int8", "fp32"]},
        "backend": {"choices": ["onnxruntime", "openvino"]}, "steps": {"low": 1, "high": 3},
        "kd_alpha": {"low": 0.3, "high": 0.9}}}, stages)
    from edgeslim.search.space import recipe_values

    # round_to 8 is not a choice, steps and kd alpha are unset: left to the sampler
    assert recipe_values(raw, plan) == {"target_macs": 0.5, "importance": "l2", "precision": "int8",
                                        "backend": "onnxruntime"}
    raw["stages"][1]["target"] = {"macs": 0.9}  # outside the searched range
    assert "target_macs" not in recipe_values(raw, plan)


def test_bounds_are_each_range_end_with_the_recipes_other_values():
    from edgeslim.search.space import bound_values

    search = {"trials": 12, "params": {"target_macs": {"low": 0.2, "high": 0.6},
                                       "importance": {"choices": ["l1", "l2"]}, "steps": {"low": 1, "high": 3}}}
    raw, plan = _plan(search)
    # the recipe gives target macs 0.5; importance and steps are unset there (sampled)
    assert bound_values(raw, plan) == [{"target_macs": 0.2}, {"target_macs": 0.6},
                                       {"target_macs": 0.5, "steps": 1}]  # 3 = a quarter of 12
    raw, plan = _plan({**search, "trials": 4})
    assert bound_values(raw, plan) == [{"target_macs": 0.2}]
    # an end the recipe already sits on is its baseline trial, not queued again
    stages = copy.deepcopy(BASE["stages"])
    stages[1]["target"] = {"macs": 0.2}
    raw, plan = _plan({**search, "trials": 40}, stages)
    assert bound_values(raw, plan) == [{"target_macs": 0.6}, {"target_macs": 0.2, "steps": 1},
                                       {"target_macs": 0.2, "steps": 3}]


def test_a_new_study_queues_the_baseline_then_the_bounds_and_the_grid_queues_nothing():
    import optuna

    from edgeslim.progress import NULL
    from edgeslim.search.study import DIRECTIONS, enqueue_first_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = {"trials": 8, "params": {"target_macs": {"low": 0.2, "high": 0.6},
                                      "precision": {"choices": ["int8", "fp32"]}}}
    raw, plan = _plan(search)
    study = optuna.create_study(directions=DIRECTIONS)
    enqueue_first_trials(study, plan, raw, NULL)
    queued = [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)]
    # the recipe's point, then the two ends of the range (8 // 4 = 2 bound trials at most)
    assert queued == [{"target_macs": 0.5, "precision": "int8"}, {"target_macs": 0.2, "precision": "int8"},
                      {"target_macs": 0.6, "precision": "int8"}]
    enqueue_first_trials(study, plan, raw, NULL)  # a study that has trials is resumed: nothing more
    assert len(study.get_trials(deepcopy=False)) == 3
    raw, plan = _plan({**search, "sampler": "grid"})
    grid = optuna.create_study(directions=DIRECTIONS)
    enqueue_first_trials(grid, plan, raw, NULL)
    assert not grid.get_trials(deepcopy=False)
