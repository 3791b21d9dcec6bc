"""Training settings shared by pretrain, finetune, distill and every recovery step.

Every field has a default that trains sensibly, so ``train: {epochs: 3}`` is a valid block.
The recipe keys are documented in README.md (finetune section).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgeslim.config import Config

OPTIMIZERS = (
    "sgd",
    "momentum",
    "nesterov",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "adadelta",
    "lbfgs",
)
SCHEDULES = (
    "constant",
    "step",
    "multistep",
    "exponential",
    "cosine",
    "cyclic",
    "onecycle",
    "plateau",
)
MONITORS = ("val_loss", "val_top1", "val_top5", "val_macro_f1")


class OptimizerSpec(Config):
    """``train.optimizer``: the update rule and its parameter groups."""

    name: Literal[
        "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "lbfgs"
    ] = "adamw"
    lr: float = Field(
        1e-3, gt=0, description="learning rate of the head (and of the backbone x backbone_lr_mult)"
    )
    momentum: float | None = Field(
        None, ge=0, lt=1, description="sgd: 0, momentum/nesterov: 0.9, rmsprop: 0"
    )
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = Field((0.9, 0.999), description="adam/adamw")
    eps: float = Field(1e-8, gt=0)
    rho: float = Field(0.9, gt=0, lt=1, description="adadelta running-average decay")
    backbone_lr_mult: float = Field(
        1.0, gt=0, description="discriminative lr: backbone lr = lr x this"
    )
    decay_norm_bias: bool = Field(
        False, description="apply weight decay to norm weights and biases too"
    )
    history_size: int = Field(10, ge=1, description="lbfgs memory")
    max_iter: int = Field(5, ge=1, description="lbfgs inner iterations per batch")
    line_search: Literal["strong_wolfe", "none"] = "strong_wolfe"
    full_batch: bool = Field(
        False, description="lbfgs: one step on the whole training set per epoch"
    )


class ScheduleSpec(Config):
    """``train.schedule``: learning-rate multiplier over training, after optional linear warm-up."""

    name: Literal[
        "constant", "step", "multistep", "exponential", "cosine", "cyclic", "onecycle", "plateau"
    ] = "constant"
    warmup_steps: int = Field(0, ge=0, description="linear warm-up over this many optimizer steps")
    gamma: float = Field(
        0.1, gt=0, le=1, description="step/multistep/exponential/plateau decay factor"
    )
    step_size: int = Field(1, ge=1, description="step: epochs between decays")
    milestones: list[int] = Field(default_factory=lambda: [2, 4], description="multistep: epochs")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor as a fraction of lr")
    cycle_epochs: float = Field(2.0, gt=0, description="cyclic: length of one triangle, epochs")
    base_lr_ratio: float = Field(
        0.1, gt=0, le=1, description="cyclic: lower bound as a fraction of lr"
    )
    pct_start: float = Field(0.3, gt=0, lt=1, description="onecycle: fraction of steps rising")
    div_factor: float = Field(25.0, ge=1, description="onecycle: start lr = lr / div_factor")
    final_div_factor: float = Field(1e4, ge=1, description="onecycle: end lr = start lr / this")
    patience: int = Field(1, ge=0, description="plateau: epochs without improvement before decay")


class FreezeSpec(Config):
    """``train.freeze``: transfer-learning schedule of the backbone."""

    epochs: int = Field(0, ge=0, description="train only the head for this many epochs")
    unfreeze: Literal["all", "gradual"] = Field(
        "all",
        description="all: whole backbone at once; gradual: one layer group per epoch, top first",
    )
    bn_frozen: bool = Field(
        False, description="keep BatchNorm running statistics frozen for all epochs"
    )


class EarlyStopSpec(Config):
    """``train.early_stopping``: stop when the monitored metric stops improving."""

    patience: int = Field(3, ge=1, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")


class TrainConfig(Config):
    """``train:`` block of a training stage."""

    epochs: int = Field(5, ge=0)
    batch_size: int = Field(32, ge=1)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    freeze: FreezeSpec = Field(default_factory=FreezeSpec)
    max_steps_per_epoch: int | None = Field(
        None, ge=1, description="cap steps per epoch (quick runs)"
    )
    restore_best: bool = Field(True, description="keep the weights of the best validation epoch")
    monitor: Literal["val_loss", "val_top1", "val_top5", "val_macro_f1"] = Field(
        "val_top1", description="metric choosing the best epoch, early stopping and plateau decay"
    )
    early_stopping: EarlyStopSpec | None = None
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    prox_l1: float = Field(
        0.0, ge=0, description="proximal gradient L1: soft-threshold decayed weights by lr x this"
    )
    bn_momentum: float | None = Field(
        None, gt=0, lt=1, description="BatchNorm running-stat momentum while training"
    )
    dropout: float | None = Field(None, ge=0, lt=1, description="set the dropout before the head")
    grad_clip_norm: float | None = Field(None, gt=0, description="clip the global gradient L2 norm")
    grad_clip_value: float | None = Field(None, gt=0, description="clip each gradient element")
    grad_accum_steps: int = Field(1, ge=1, description="batches per optimizer step")
    amp: Literal["off", "bf16", "fp16"] = Field(
        "off", description="autocast dtype (fp16 needs CUDA)"
    )
    deterministic: bool = Field(False, description="torch deterministic algorithms (slower)")
    eval_test: bool = Field(True, description="report test metrics of the final weights")
    tensorboard: bool = Field(True, description="write a TensorBoard log dir in the stage folder")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.optimizer.name == "lbfgs" and self.grad_accum_steps > 1:
            raise ValueError(
                "grad_accum_steps > 1 does not apply to lbfgs (it re-evaluates its closure); "
                "use a larger batch_size or optimizer.full_batch: true"
            )
        return self
