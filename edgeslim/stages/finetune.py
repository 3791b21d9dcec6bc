"""pretrain and finetune: train the current model with the shared engine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from edgeslim.recipe import DataSpec
from edgeslim.stages.context import StageContext, StageOutput
from edgeslim.stages.registry import StageConfig, register_stage
from edgeslim.train.config import TrainConfig

if TYPE_CHECKING:
    from torch import nn

    from edgeslim.data.bundle import DataBundle
    from edgeslim.train.engine import FitResult


class PretrainConfig(StageConfig):
    stage: Literal["pretrain"] = "pretrain"
    data: DataSpec | None = Field(
        None, description="the source task's data (default: the recipe's data)"
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    adaptive_gain: bool = Field(
        False, description="BPAG: learnable per-unit gain in every activation"
    )
    adaptive_gain_init: float = Field(1.0, gt=0)

    def needs(self) -> tuple[str, ...]:
        return ("module",)

    def makes(self) -> tuple[str, ...]:
        return ("module", "torch", "model_file")


class FinetuneConfig(StageConfig):
    stage: Literal["finetune"] = "finetune"
    train: TrainConfig = Field(default_factory=TrainConfig)
    reinit_head: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: a new head when the classes differ from the model's"
    )
    head_init: Literal["default", "xavier", "kaiming"] | None = Field(
        None, description="init of a new head (default: model.head_init)"
    )
    adaptive_gain: bool = Field(
        False, description="BPAG: learnable per-unit gain in every activation"
    )
    adaptive_gain_init: float = Field(1.0, gt=0)

    def needs(self) -> tuple[str, ...]:
        return ("module",)

    def makes(self) -> tuple[str, ...]:
        return ("module", "torch", "model_file")


def _start_model(ctx: StageContext, stage: str) -> nn.Module:
    """The current model, or the recipe's starting model when no stage has made one yet; a
    frozen source (ONNX, TorchScript, .pt2) is refused with the one-line reason."""
    return ctx.editable_model(stage)


def resume_dir(ctx: StageContext, cfg: StageConfig) -> Path:
    """A folder outside the stage's temp workdir (which a kill -9 discards), keyed by inputs.

    Same settings and same upstream stages give the same folder, so a rerun after a crash
    continues training at the last finished epoch.
    """
    from edgeslim.fsutil import sha256_json

    key = sha256_json(
        {
            "stage_key": ctx.key,  # includes the data fingerprint: new data, new training
            "cfg": cfg.model_dump(mode="json"),
            "prev": [h.key for h in ctx.history],
            "model": ctx.recipe.model.model_dump(mode="json"),
            "data": ctx.recipe.data.model_dump(mode="json"),
            "seed": ctx.seed,
        }
    )
    return ctx.run_dir / ".resume" / f"{ctx.index:02d}-{cfg.label or cfg.stage}-{key[:12]}"


def _train(
    cfg: PretrainConfig | FinetuneConfig, ctx: StageContext, model: nn.Module, data: DataBundle
) -> tuple[nn.Module, dict[str, Any]]:
    import contextlib
    import shutil

    from edgeslim.fsutil import atomic_write_json
    from edgeslim.train import dist
    from edgeslim.train.engine import fit

    if cfg.adaptive_gain:
        from edgeslim.train.adaptive_gain import add_adaptive_gain

        model = add_adaptive_gain(model, data.input_shape, cfg.adaptive_gain_init)
    rdir = resume_dir(ctx, cfg)
    res = fit(
        model,
        data,
        cfg.train,
        workdir=ctx.workdir,
        reporter=ctx.reporter,
        device=dist.local_device(ctx.device),
        seed=ctx.seed,
        resume_dir=rdir,
    )
    if dist.is_main():
        shutil.rmtree(rdir, ignore_errors=True)
        with contextlib.suppress(OSError):  # keep .resume/ only while something is resumable
            rdir.parent.rmdir()
    atomic_write_json(
        ctx.workdir / "fit.json", {"best": res.best, "test": res.test, "history": res.history}
    )
    return res.model.cpu(), _metrics(res, cfg.adaptive_gain)


def _metrics(res: FitResult, gains: bool) -> dict[str, Any]:
    m: dict[str, Any] = {
        "best_val_top1": res.best.get("val_top1"),
        "best_epoch": res.best.get("epoch"),
        "epochs_run": len(res.history),
        "stopped_early": res.stopped_early,
        "resumed_at_epoch": res.resumed_at_epoch,
    }
    if res.history:
        m["train_images_per_s"] = round(
            sum(h["train_images_per_s"] for h in res.history) / len(res.history), 1
        )
    for k in ("top1", "top5", "macro_f1", "loss"):
        if k in res.test:
            m[f"torch_test_{k}"] = res.test[k]
    if gains:
        from edgeslim.train.adaptive_gain import gain_stats

        m.update(gain_stats(res.model))
    return m


@register_stage("pretrain", PretrainConfig)
def run_pretrain(cfg: PretrainConfig, ctx: StageContext) -> StageOutput:
    """Train the starting model on a source task (makes the demo's pretrained checkpoint)."""
    from edgeslim.errors import InputError
    from edgeslim.models.factory import model_from_spec
    from edgeslim.models.source_registry import frozen_refusal

    reason = frozen_refusal(ctx.recipe.model.source, "pretrain")
    if reason:
        raise InputError(reason)
    data = ctx.data(cfg.data)
    model = model_from_spec(ctx.recipe.model, data.input_shape[0], data.num_classes)
    model, metrics = _train(cfg, ctx, model, data)
    if cfg.data is not None and data.extra.get("skipped"):  # the recipe's own data is in run.json
        metrics["data_skipped"] = data.extra["skipped"]
    return StageOutput(model=model, class_names=data.class_names, data=cfg.data, metrics=metrics)


@register_stage("finetune", FinetuneConfig)
def run_finetune(cfg: FinetuneConfig, ctx: StageContext) -> StageOutput:
    """Fine-tune the current model on the recipe's data (transfer learning)."""
    from edgeslim.models.edits import record_edit

    data = ctx.data()
    model = _start_model(ctx, "finetune")
    new_task = ctx.class_names is not None and list(ctx.class_names) != list(data.class_names)
    if cfg.reinit_head == "always" or (cfg.reinit_head == "auto" and new_task):
        model = record_edit(
            model,
            {
                "op": "replace_head",
                "num_classes": data.num_classes,
                "init": cfg.head_init or ctx.recipe.model.head_init,
            },
        )
    model, metrics = _train(cfg, ctx, model, data)
    return StageOutput(model=model, class_names=data.class_names, metrics=metrics)
