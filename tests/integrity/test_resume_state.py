"""Resume state that cannot be used never blocks a stage: a corrupt or inconsistent
``.resume/<stage>/state.pt`` is discarded with a warning, and ``--fresh`` ignores it."""

from __future__ import annotations

import json

import pytest
import torch

from edgeslim.pipeline import run_pipeline
from edgeslim.progress import NULL, Reporter
from edgeslim.recipe import load_recipe
from edgeslim.train import engine
from edgeslim.train.config import TrainConfig
from edgeslim.train.engine import RESUME_FILE, fit

STAGES = [{"stage": "finetune", "train": {"epochs": 3, "batch_size": 16, "tensorboard": False}}]


class _Stop(Exception):
    pass


def _cfg() -> TrainConfig:
    return TrainConfig.model_validate({"epochs": 3, "batch_size": 16, "max_steps_per_epoch": 2,
                                       "tensorboard": False, "eval_test": False,
                                       "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}})


def _model():
    from edgeslim.models.registry import create_model

    torch.manual_seed(3)
    return create_model("tinycnn", 4, 3, width=4, depth=2)


class _Log(Reporter):
    def __init__(self):
        super().__init__(quiet=True)
        self.lines: list[str] = []

    def log(self, msg: str) -> None:
        self.lines.append(msg)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing-key", "wrong-shape"])
def test_unusable_resume_state_is_discarded_and_training_starts_over(tiny_data, tmp_path, damage):
    full = fit(_model(), tiny_data, _cfg())
    rdir = tmp_path / "resume"

    def stop(rec):
        if rec["epoch"] == 1:
            raise _Stop

    with pytest.raises(_Stop):
        fit(_model(), tiny_data, _cfg(), resume_dir=rdir, callbacks=[stop])
    state = rdir / RESUME_FILE
    if damage == "garbage":
        state.write_bytes(b"\x00garbage")
    elif damage == "truncated":
        state.write_bytes(state.read_bytes()[:300])
    else:
        st = torch.load(state, weights_only=True)
        if damage == "missing-key":
            del st["optimizer"]
        else:
            st["model"] = {k: v[..., :1] if v.ndim else v for k, v in st["model"].items()}
        torch.save(st, state)
    log = _Log()
    res = fit(_model(), tiny_data, _cfg(), resume_dir=rdir, reporter=log)
    assert res.resumed_at_epoch is None
    assert any("cannot be used" in m and str(state) in m for m in log.lines), log.lines
    # Started over from the model as given: the same run as one never interrupted.
    assert [round(h["train_loss"], 6) for h in res.history] == [round(h["train_loss"], 6) for h in full.history]


def _interrupt_after_first_epoch(recipe) -> None:
    def hook(rec):
        if rec["epoch"] == 1:
            raise KeyboardInterrupt

    engine.EPOCH_HOOKS.append(hook)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_pipeline(recipe, NULL)
    finally:
        engine.EPOCH_HOOKS.remove(hook)


def test_corrupt_resume_state_in_a_run_does_not_block_the_stage(write_recipe, cli, tmp_path):
    path = write_recipe(STAGES)
    _interrupt_after_first_epoch(load_recipe(path))
    states = list((tmp_path / "runs" / "t" / ".resume").glob(f"*/{RESUME_FILE}"))
    assert len(states) == 1
    states[0].write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = cli("run", path, "--resume", "-q")
    assert code == 0, err
    rec = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    assert rec["stages"][0]["metrics"]["resumed_at_epoch"] is None
    assert rec["stages"][0]["metrics"]["epochs_run"] == 3


def test_fresh_ignores_and_removes_resume_state(write_recipe, tmp_path):
    path = write_recipe(STAGES)
    recipe = load_recipe(path)
    _interrupt_after_first_epoch(recipe)
    resume = tmp_path / "runs" / "t" / ".resume"
    assert list(resume.glob(f"*/{RESUME_FILE}"))
    res = run_pipeline(recipe, NULL, fresh=True)
    assert res.stages[0].metrics["resumed_at_epoch"] is None
    assert not resume.exists()
