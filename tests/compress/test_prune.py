"""Structured pruning: reload from spec + state, targets, round_to, custom-op errors, recovery."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from edgeslim.compress import prune as P
from edgeslim.errors import InputError
from edgeslim.models.registry import create_model
from edgeslim.models.serialize import load_model, save_model

from .helpers import with_spec


@pytest.mark.parametrize(
    "name,kw", [("tinyresnet", {"widths": (16, 32)}), ("tinymobilenet", {"width": 16})]
)
def test_pruned_model_reloads_from_spec_and_state(tmp_path, name, kw):
    model = with_spec(create_model(name, 4, **kw), name, **kw).eval()
    x = torch.randn(2, 3, 16, 16)
    before = P.snapshot(model)
    base = P.measure(model, x[:1], "macs")
    P.prune_once(model, x[:1], "l1", 0.5, round_to=8)
    model = P.record_edit_after(model, before)
    assert P.measure(model, x[:1], "macs") < 0.5 * base
    rows = P.channel_table(before, model)
    pruned = [r for r in rows if r["after"] < r["before"]]
    assert pruned and all(r["after"] % 8 == 0 for r in pruned)
    assert next(r for r in rows if r["layer"] == "fc")["after"] == 4  # the head keeps its classes
    save_model(model, tmp_path / "m.pt")
    json.dumps(model._edgeslim_spec)  # the edit is plain JSON, not a pickle
    again = load_model(tmp_path / "m.pt")
    torch.testing.assert_close(again(x), model(x))


def test_search_meets_macs_target():
    model = with_spec(create_model("tinycnn", 4, width=16, depth=2), "tinycnn").eval()
    x = torch.zeros(1, 3, 16, 16)
    base = P.measure(model, x, "macs")
    r = P.search_ratio(model, x, "l2", int(base * 0.4), "macs", round_to=4)
    P.prune_once(model, x, "l2", r, round_to=4)
    assert P.measure(model, x, "macs") <= base * 0.4


class Shuffle(nn.Module):
    """A custom op with its own per-channel parameter that torch-pruning has no rule for."""

    def __init__(self, c: int):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.roll(x, 1, dims=1) * self.gain


def _custom_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        Shuffle(16),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )


def test_custom_op_gets_a_clear_error_naming_the_layer():
    with pytest.raises(InputError, match=r"layer '2' is a custom op \(Shuffle\).*ignored_layers"):
        P.build_pruner(_custom_net(), torch.zeros(1, 3, 8, 8), "l1", 0.5)


def test_unknown_ignored_layer_is_an_input_error():
    with pytest.raises(InputError, match="unknown layer 'fcc'.*did you mean 'fc'"):
        P.build_pruner(
            create_model("tinycnn", 4, width=8), torch.zeros(1, 3, 8, 8), "l1", 0.5, ignored=["fcc"]
        )


def test_unknown_importance_is_an_input_error():
    with pytest.raises(InputError, match="unknown pruning importance 'l3'"):
        P.make_importance("l3")


def test_prune_stage_recovers_accuracy_and_reloads(write_recipe, cli, tmp_path, digits_data_spec):
    stages = [
        {"stage": "finetune", "train": {"epochs": 4, "batch_size": 16, "optimizer": {"lr": 0.01}}},
        {
            "stage": "prune",
            "importance": "l1",
            "target": {"macs": 0.3},
            "steps": 1,
            "round_to": 4,
            "recovery": {
                "train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 0.003}},
                "kd": {"teacher": "finetune"},
            },
        },
    ]
    model = {"source": "tinycnn", "kwargs": {"width": 16, "depth": 2}}
    code, _, err = cli("run", write_recipe(stages, model=model, data=digits_data_spec), "--quiet")
    assert code == 0, err
    run = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    m = run["stages"][1]["metrics"]
    assert m["macs_fraction"] <= 0.3
    step = m["recovery"][0]
    # 10 digit classes, 359 val images: pruning to 30% of the MACs drops the net to 0.10-0.28,
    # recovery brings it back to 0.95-0.98 (seeds 0-1, ATEN_CPU_CAPABILITY default/avx512), and
    # the accuracy guard sees a drop of -0.3..+0.6 points against its 5-point budget.
    assert step["val_top1_recovered"] >= step["val_top1_pruned"] + 0.3
    assert step["val_top1_recovered"] >= 0.8
    assert any(r["after"] < r["before"] for r in m["channels"])
    reloaded = load_model(tmp_path / "runs" / "t" / "01-prune" / "model.pt")
    assert P.measure(reloaded, torch.zeros(1, 3, 16, 16), "macs") == m["macs_after"]


def test_sparse_pretraining_shrinks_channel_norms(tiny_data):
    from edgeslim.compress.pruning_loop import group_lasso

    model = create_model("tinycnn", 4, width=8, depth=2)
    before = float(group_lasso(model, {"fc"}).detach())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(20):
        opt.zero_grad()
        group_lasso(model, {"fc"}).backward()
        opt.step()
    assert float(group_lasso(model, {"fc"}).detach()) < 0.5 * before


def test_prune_stage_on_custom_op_model_exits_2_naming_the_layer(write_recipe, cli):
    from edgeslim.models.registry import list_models, register_model

    if "compress_test_custom_net" not in list_models():
        register_model("compress_test_custom_net")(lambda num_classes=4, in_chans=3: _custom_net())
    stages = [{"stage": "finetune", "train": {"epochs": 0}}, {"stage": "prune"}]
    code, _, err = cli(
        "run",
        write_recipe(stages, model={"source": "compress_test_custom_net", "kwargs": {}}),
        "--quiet",
    )
    assert code == 2, err
    assert "layer '2' is a custom op (Shuffle)" in err


@pytest.mark.parametrize("importance", ["taylor", "bn_scale", "random"])
def test_iterative_global_ratio_with_sparse_pretraining(write_recipe, cli, tmp_path, importance):
    stages = [
        {"stage": "finetune", "train": {"epochs": 1, "batch_size": 16}},
        {
            "stage": "prune",
            "importance": importance,
            "scope": "global",
            "target": {"ratio": 0.5},
            "steps": 2,
            "round_to": 4,
            "sparse": {"reg": 1e-3, "train": {"epochs": 1, "batch_size": 16}},
            "recovery": {"train": {"epochs": 1, "batch_size": 16}},
            # This test checks the iterative mechanics on a net that is near chance after one
            # epoch; a 5-point guard on 32 val images would hinge on 2 images, so it only warns.
            # test_prune_stage_recovers_accuracy_and_reloads checks accuracy on a trained net.
            "on_budget": "warn",
        },
    ]
    model = {"source": "tinyresnet", "kwargs": {"widths": [16, 32]}}
    code, _, err = cli("run", write_recipe(stages, model=model), "--quiet")
    assert code == 0, err
    run = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    m = run["stages"][1]["metrics"]
    assert [r["step"] for r in m["recovery"]] == [1, 2] and "within_budget" in m["accuracy_guard"]
    assert m["recovery"][1]["macs_fraction"] < m["recovery"][0]["macs_fraction"] < 1.0
    assert (tmp_path / "runs" / "t" / "01-prune" / "recovery-2").is_dir()
