"""pretrain and finetune: train the current model with the shared engine."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeslim.recipe import DataSpec
from edgeslim.stages.context import StageContext, StageOutput
from edgeslim.stages.registry import StageConfig, register_stage
from edgeslim.train.config import TrainConfig


class PretrainConfig(StageConfig):
    stage: Literal["pretrain"] = "pretrain"
    data: DataSpec | None = Field(None, description="the source task's data (default: the recipe's data)")
    train: TrainConfig = Field(default_factory=TrainConfig)


class FinetuneConfig(StageConfig):
    stage: Literal["finetune"] = "finetune"
    train: TrainConfig = Field(default_factory=TrainConfig)
    reinit_head: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: a new head when the classes differ from the model's")


def _start_model(ctx: StageContext, num_classes: int):
    """The current model, or the recipe's starting model when no stage has made one yet."""
    if ctx.model is not None:
        return ctx.model
    from edgeslim.models.factory import model_from_spec

    data = ctx.data()
    return model_from_spec(ctx.recipe.model, data.input_shape[0], num_classes)


@register_stage("pretrain", PretrainConfig)
def run_pretrain(cfg: PretrainConfig, ctx: StageContext) -> StageOutput:
    """Train the starting model on a source task (makes the demo's pretrained checkpoint)."""
    from edgeslim.models.factory import model_from_spec
    from edgeslim.train.engine import fit

    data = ctx.data(cfg.data)
    model = model_from_spec(ctx.recipe.model, data.input_shape[0], data.num_classes)
    res = fit(model, data, cfg.train, workdir=ctx.workdir, reporter=ctx.reporter, device=ctx.device, seed=ctx.seed)
    return StageOutput(model=res.model.cpu(), class_names=data.class_names, data=cfg.data,
                       metrics={"best_val_top1": res.best.get("val_top1"), "epochs_run": len(res.history)})


@register_stage("finetune", FinetuneConfig)
def run_finetune(cfg: FinetuneConfig, ctx: StageContext) -> StageOutput:
    """Fine-tune the current model on the recipe's data (transfer learning)."""
    from edgeslim.models.edits import record_edit
    from edgeslim.train.engine import fit

    data = ctx.data()
    model = _start_model(ctx, data.num_classes)
    new_task = ctx.class_names is not None and list(ctx.class_names) != list(data.class_names)
    if cfg.reinit_head == "always" or (cfg.reinit_head == "auto" and new_task):
        model = record_edit(model, {"op": "replace_head", "num_classes": data.num_classes,
                                    "init": ctx.recipe.model.head_init})
    res = fit(model, data, cfg.train, workdir=ctx.workdir, reporter=ctx.reporter, device=ctx.device, seed=ctx.seed)
    return StageOutput(model=res.model.cpu(), class_names=data.class_names,
                       metrics={"best_val_top1": res.best.get("val_top1"), "epochs_run": len(res.history)})
