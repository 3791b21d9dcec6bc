"""The training engine: every optimizer and schedule, parameter groups, controls, logs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from edgeslim.train.config import OPTIMIZERS, SCHEDULES, TrainConfig
from edgeslim.train.engine import fit


def _mlp(num_classes: int = 4) -> nn.Module:
    from edgeslim.models.registry import create_model

    return create_model("test_mlp", num_classes, 3, image_size=16, hidden=16)


def _cnn(num_classes: int = 4) -> nn.Module:
    from edgeslim.models.registry import create_model

    return create_model("tinycnn", num_classes, 3, width=4, depth=2)


def _cfg(**kw) -> TrainConfig:
    base = {
        "epochs": 2,
        "batch_size": 16,
        "max_steps_per_epoch": 3,
        "tensorboard": False,
        "eval_test": False,
    }
    return TrainConfig.model_validate({**base, **kw})


def _demo_model(num_classes: int = 4) -> nn.Module:
    """The demo's architecture (tinyresnet), narrowed so a few steps take milliseconds."""
    from edgeslim.models.registry import create_model

    return create_model("tinyresnet", num_classes, 3, widths=(4, 8))


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains(name, tiny_data):
    model = _demo_model()
    before = _flat(model).clone()
    lr = {"adadelta": 1.0, "lbfgs": 0.5, "sgd": 0.05, "momentum": 0.05, "nesterov": 0.05}.get(
        name, 0.01
    )
    res = fit(
        model,
        tiny_data,
        _cfg(
            epochs=1,
            max_steps_per_epoch=2,
            restore_best=False,
            optimizer={"name": name, "lr": lr, "max_iter": 2},
        ),
    )
    assert len(res.history) == 1
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    assert not torch.equal(before, _flat(model)), f"{name} did not change the weights"


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_with_warmup(name, tiny_data):
    cfg = _cfg(
        epochs=3,
        optimizer={"name": "sgd", "lr": 0.1},
        schedule={"name": name, "warmup_steps": 2, "milestones": [1, 2], "cycle_epochs": 1.0},
    )
    res = fit(_mlp(), tiny_data, cfg)
    lrs = [h["lr"] for h in res.history]
    assert len(lrs) == 3 and all(0 < v <= 0.1 + 1e-9 for v in lrs)
    if name in ("step", "multistep", "exponential", "cosine", "onecycle"):
        assert lrs[-1] < 0.1, f"{name} never decayed: {lrs}"


def test_schedules_match_torch():
    """Our step-wise multipliers equal torch's own schedulers on the same step grid."""
    from torch.optim import lr_scheduler as ls

    from edgeslim.train.config import ScheduleSpec
    from edgeslim.train.optim import Schedule

    def ours(spec: dict, spe: int, total: int) -> list[float]:
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        opt.param_groups[0]["base_lr"] = 1.0
        s = Schedule(opt, ScheduleSpec(**spec), spe, total)
        return [s.multiplier(i) for i in range(total)]

    def theirs(make, total: int, per_epoch: int | None = None) -> list[float]:
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        sch, out = make(opt), []
        for i in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if per_epoch is None or (i + 1) % per_epoch == 0:
                sch.step()
        return out

    assert ours({"name": "cosine"}, 1, 10) == pytest.approx(
        theirs(lambda o: ls.CosineAnnealingLR(o, 10), 10)
    )
    assert ours({"name": "onecycle"}, 1, 20) == pytest.approx(
        theirs(lambda o: ls.OneCycleLR(o, 1.0, total_steps=20), 20)
    )
    assert ours({"name": "step", "step_size": 2, "gamma": 0.5}, 4, 24) == pytest.approx(
        theirs(lambda o: ls.StepLR(o, 2, 0.5), 24, per_epoch=4)
    )
    assert ours({"name": "multistep", "milestones": [1, 3]}, 3, 15) == pytest.approx(
        theirs(lambda o: ls.MultiStepLR(o, [1, 3]), 15, per_epoch=3)
    )
    warm = ours({"name": "constant", "warmup_steps": 4}, 1, 6)
    assert warm == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_plateau_decays_when_stuck():
    from edgeslim.train.config import ScheduleSpec
    from edgeslim.train.optim import Schedule

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    opt.param_groups[0]["base_lr"] = 1.0
    s = Schedule(opt, ScheduleSpec(name="plateau", patience=1, gamma=0.5), 1, 10)
    for v in (0.5, 0.5, 0.5, 0.5, 0.5):
        s.epoch_end(v)
    assert s.multiplier(0) == 0.5 * 0.5


def test_param_groups_discriminative_lr_and_no_decay():
    from edgeslim.train.config import OptimizerSpec
    from edgeslim.train.optim import make_optimizer

    model = _cnn()
    opt = make_optimizer(
        model, OptimizerSpec(name="adamw", lr=0.01, backbone_lr_mult=0.1, weight_decay=0.05)
    )
    by_id = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert (
        by_id[id(model.fc.weight)]["lr"] == 0.01
        and by_id[id(model.fc.weight)]["weight_decay"] == 0.05
    )
    assert by_id[id(model.fc.bias)]["weight_decay"] == 0.0
    conv, bn = model.features[0][0], model.features[0][1]
    assert by_id[id(conv.weight)]["lr"] == pytest.approx(0.001)
    assert by_id[id(conv.weight)]["weight_decay"] == 0.05
    assert by_id[id(bn.weight)]["weight_decay"] == 0.0 and by_id[id(bn.bias)]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_freeze_then_unfreeze_and_frozen_bn(tiny_data):
    model = _cnn()
    stem_w = model.features[0][0].weight.detach().clone()
    bn = model.features[0][1]
    stats = bn.running_mean.clone()
    fit(model, tiny_data, _cfg(epochs=1, freeze={"epochs": 1}, restore_best=False))
    assert torch.equal(stem_w, model.features[0][0].weight), "frozen backbone moved"
    assert torch.equal(stats, bn.running_mean), "frozen block's BN statistics moved"
    assert all(p.requires_grad for p in model.parameters()), "fit must hand back a trainable model"
    res = fit(model, tiny_data, _cfg(epochs=2, freeze={"epochs": 1}, restore_best=False))
    assert [h["frozen_groups"] for h in res.history] == [4, 0]
    assert not torch.equal(stem_w, model.features[0][0].weight)
    stats = bn.running_mean.clone()
    fit(model, tiny_data, _cfg(epochs=1, freeze={"bn_frozen": True}, restore_best=False))
    assert torch.equal(stats, bn.running_mean)


def test_gradual_unfreeze_top_first():
    from edgeslim.train.config import FreezeSpec
    from edgeslim.train.transfer import layer_groups, set_frozen

    model = _cnn()
    names = [n for n, _ in layer_groups(model)]
    assert names == ["features.0", "features.1", "features.2", "features.3"]
    spec = FreezeSpec(epochs=1, unfreeze="gradual")
    assert set_frozen(model, spec, 0) == names
    assert set_frozen(model, spec, 1) == names[:3]
    assert set_frozen(model, spec, 2) == names[:2]
    assert set_frozen(model, spec, 9) == []


def test_early_stopping_restores_best(tiny_data, tmp_path):
    # min_delta larger than any possible change: epoch 1 is the best, patience 2 stops at 3.
    cfg = _cfg(epochs=10, monitor="val_loss", early_stopping={"patience": 2, "min_delta": 100.0})
    model = _mlp()
    res = fit(model, tiny_data, cfg, workdir=tmp_path)
    assert res.stopped_early and len(res.history) == 3 and res.best["epoch"] == 1
    from edgeslim.models.checkpoint import safe_torch_load

    best = safe_torch_load(tmp_path / "checkpoints" / "best.pt")
    assert all(torch.equal(best[k], v) for k, v in model.state_dict().items())
    last = safe_torch_load(tmp_path / "checkpoints" / "last.pt")
    assert not all(torch.equal(last[k], v) for k, v in model.state_dict().items())


def test_metrics_logs_and_test_eval(tiny_data, tmp_path):
    res = fit(_mlp(), tiny_data, _cfg(tensorboard=True, eval_test=True), workdir=tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    rec = json.loads(lines[-1])
    assert len(lines) == 2
    for k in (
        "val_loss",
        "val_top1",
        "val_top5",
        "val_macro_f1",
        "val_per_class_accuracy",
        "val_confusion_matrix",
        "train_loss",
        "lr",
    ):
        assert k in rec
    assert len(rec["val_confusion_matrix"]) == 4
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,")
    assert any((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert {"top1", "top5", "macro_f1", "confusion_matrix"} <= set(res.test)


def test_grad_accumulation_matches_big_batch(tiny_data):
    """2 x 8 accumulated == one batch of 16 (no BN, no dropout: exactly the same gradient)."""
    torch.manual_seed(1)
    a = _mlp()
    b = _mlp()
    b.load_state_dict(a.state_dict())
    common = {
        "epochs": 1,
        "max_steps_per_epoch": 2,
        "optimizer": {"name": "sgd", "lr": 0.1},
        "restore_best": False,
    }
    fit(a, tiny_data, _cfg(batch_size=8, grad_accum_steps=2, **common))
    fit(
        b,
        tiny_data,
        _cfg(
            batch_size=16,
            max_steps_per_epoch=1,
            **{k: v for k, v in common.items() if k != "max_steps_per_epoch"},
        ),
    )
    assert torch.allclose(_flat(a), _flat(b), atol=1e-6)


def test_clipping_bf16_label_smoothing_dropout_mixup(tiny_data):
    from edgeslim.data.augment import AugmentSpec, build_batch_transform

    data = tiny_data
    old = data.batch_transform
    data.batch_transform = build_batch_transform(AugmentSpec(mixup_alpha=0.4, cutmix_alpha=1.0), 4)
    try:
        res = fit(
            _cnn(),
            data,
            _cfg(
                grad_clip_norm=0.5,
                grad_clip_value=0.1,
                amp="bf16",
                label_smoothing=0.1,
                dropout=0.3,
            ),
        )
    finally:
        data.batch_transform = old
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    assert "train_top1" not in res.history[0], "soft mixup targets have no hard top-1"


def test_fp16_on_cpu_is_a_clear_error(tiny_data):
    from edgeslim.errors import InputError

    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        fit(_mlp(), tiny_data, _cfg(amp="fp16"))


def test_dropout_override_without_dropout_module():
    from edgeslim.train.transfer import override_dropout

    model = _mlp().train()
    undo = override_dropout(model, 0.9)
    x = torch.randn(4, 3, 16, 16)
    assert not torch.equal(model(x), model(x))
    undo()
    assert torch.equal(model(x), model(x))


def test_lbfgs_full_batch(tiny_data):
    res = fit(
        _mlp(),
        tiny_data,
        _cfg(epochs=2, optimizer={"name": "lbfgs", "lr": 0.5, "full_batch": True}),
    )
    assert res.history[1]["train_loss"] < res.history[0]["train_loss"]


@pytest.mark.cuda
@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_cuda_amp(amp, tiny_data):
    res = fit(_cnn(), tiny_data, _cfg(amp=amp), device=torch.device("cuda"))
    assert all(math.isfinite(h["train_loss"]) for h in res.history)


def test_pluggable_loss_sees_inputs_like_distillation(tiny_data, tmp_path):
    """The call the compression stages make: a KD loss that runs a teacher on the batch."""
    from edgeslim.progress import NULL
    from edgeslim.train.optim import make_optimizer

    teacher = _mlp().eval()
    seen = {"n": 0}

    def kd(logits, y, x):
        seen["n"] += 1
        with torch.no_grad():
            t = teacher(x).softmax(1)
        return nn.functional.kl_div(logits.log_softmax(1), t, reduction="batchmean")

    cfg = TrainConfig(
        epochs=1, batch_size=8, max_steps_per_epoch=2, optimizer={"name": "sgd", "lr": 0.01}
    )
    res = fit(
        _mlp(),
        tiny_data,
        cfg,
        loss_fn=kd,
        workdir=tmp_path,
        reporter=NULL,
        device=torch.device("cpu"),
        seed=0,
    )
    assert seen["n"] == 2 and res.best["val_top1"] is not None and res.model is not None
    assert isinstance(make_optimizer(_mlp(), cfg), torch.optim.SGD)  # accepts a whole TrainConfig


def test_prox_l1_makes_weights_sparse_and_bn_momentum_applies(tiny_data):
    model = _cnn()
    bn = model.features[0][1]
    cfg = _cfg(
        epochs=1,
        restore_best=False,
        prox_l1=50.0,
        bn_momentum=0.5,
        optimizer={"name": "sgd", "lr": 0.01, "weight_decay": 1e-4},
    )
    fit(model, tiny_data, cfg)
    w = model.features[1][0].weight
    assert float((w == 0).float().mean()) > 0.5, "soft-thresholding should zero most weights"
    assert float((bn.bias == 0).float().mean()) < 0.5, "norm/bias params are not thresholded"
    assert bn.momentum == 0.1, "BN momentum is restored after training"
