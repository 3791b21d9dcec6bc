"""Divergence stop, resume at an epoch boundary (in-process and after kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import torch
from torch import nn

from edgeslim.errors import StageError
from edgeslim.train.config import TrainConfig
from edgeslim.train.engine import RESUME_FILE, fit


def _model() -> nn.Module:
    from edgeslim.models.registry import create_model

    torch.manual_seed(3)
    return create_model("tinycnn", 4, 3, width=4, depth=2)


def _cfg(**kw) -> TrainConfig:
    base = {
        "epochs": 4,
        "batch_size": 16,
        "max_steps_per_epoch": 2,
        "tensorboard": False,
        "eval_test": False,
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "schedule": {"name": "cosine"},
    }
    return TrainConfig.model_validate({**base, **kw})


def test_nan_loss_stops_with_step_lr_hint_and_keeps_last_good(tiny_data, tmp_path):
    ce = nn.CrossEntropyLoss()
    calls = {"n": 0}

    def loss_fn(logits, y, x):
        calls["n"] += 1
        return ce(logits, y) * (float("nan") if calls["n"] > 3 else 1.0)  # diverges in epoch 2

    model = _model()
    with pytest.raises(StageError) as err:
        fit(model, tiny_data, _cfg(), loss_fn=loss_fn, resume_dir=tmp_path / "resume")
    msg = str(err.value)
    assert "loss is nan at epoch 2, batch 2 (optimizer step 3)" in msg
    assert "lr " in msg and "grad_clip_norm" in msg and "lower train.optimizer.lr" in msg
    good = tmp_path / "resume" / "last_good.pt"
    assert str(good) in msg
    from edgeslim.models.checkpoint import safe_torch_load

    state = safe_torch_load(good)
    assert all(torch.isfinite(v.float()).all() for v in state.values())
    assert "\n" not in msg


def test_resume_after_interruption_matches_uninterrupted(tiny_data, tmp_path):
    ref = _model()
    full = fit(ref, tiny_data, _cfg())

    class Stop(Exception):
        pass

    def interrupt(rec):
        if rec["epoch"] == 2:
            raise Stop

    model = _model()
    rdir = tmp_path / "resume"
    with pytest.raises(Stop):
        fit(model, tiny_data, _cfg(), resume_dir=rdir, callbacks=[interrupt])
    assert (rdir / RESUME_FILE).is_file()
    again = _model()  # a fresh process would rebuild the model from scratch
    res = fit(again, tiny_data, _cfg(), resume_dir=rdir)
    assert res.resumed_at_epoch == 2
    assert [h["epoch"] for h in res.history] == [1, 2, 3, 4]
    assert [round(h["train_loss"], 6) for h in res.history] == [
        round(h["train_loss"], 6) for h in full.history
    ]
    for (k, a), b in zip(ref.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k
    assert not (rdir / RESUME_FILE).exists(), "a finished fit removes its resume state"


def test_resume_ignores_state_of_other_settings(tiny_data, tmp_path):
    rdir = tmp_path / "r"

    def interrupt(rec):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(_model(), tiny_data, _cfg(), resume_dir=rdir, callbacks=[interrupt])
    res = fit(_model(), tiny_data, _cfg(epochs=2), resume_dir=rdir)
    assert res.resumed_at_epoch is None and len(res.history) == 2


@pytest.mark.slow
def test_pipeline_kill9_mid_training_resumes_at_epoch(write_recipe, tmp_path, python, wait_for):
    recipe = write_recipe(
        stages=[
            {
                "stage": "finetune",
                "train": {
                    "epochs": 30,
                    "batch_size": 8,
                    "tensorboard": False,
                    "optimizer": {"name": "sgd", "lr": 0.01},
                },
            }
        ],
        model={"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
        name="k9",
    )
    resume_root = tmp_path / "runs" / "k9" / ".resume"
    proc = subprocess.Popen(
        [python, "-m", "edgeslim", "run", str(recipe), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Kill as soon as the first epoch's resume state exists: that is mid-training whatever
        # the machine's speed (29 epochs remain), with no sleep that assumes how fast it runs.
        wait_for(lambda: list(resume_root.glob(f"*/{RESUME_FILE}")), "resume state after an epoch",
                 proc)
        assert proc.poll() is None, "the run finished before it could be killed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    from edgeslim.models.checkpoint import safe_torch_load

    saved_epoch = safe_torch_load(next(resume_root.glob(f"*/{RESUME_FILE}")))["epoch"]
    assert 1 <= saved_epoch < 30
    out = subprocess.run(
        [python, "-m", "edgeslim", "run", str(recipe), "--resume", "-q"],
        capture_output=True,
        text=True,
        timeout=wait_for.cap_s,
    )
    assert out.returncode == 0, out.stderr
    import json

    rec = json.loads((tmp_path / "runs" / "k9" / "run.json").read_text())
    m = rec["stages"][0]["metrics"]
    assert m["resumed_at_epoch"] >= saved_epoch and m["epochs_run"] == 30
    assert not list(resume_root.glob("*/state.pt"))
