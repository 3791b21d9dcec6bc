"""Training settings shared by pretrain, finetune, distill and every recovery step.

Every field has a default that trains sensibly, so ``train: {epochs: 3}`` is a valid block.
The recipe keys are documented in README.md (finetune section).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

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


class ModeKeys(Config):
    """A config with a mode (``kind``, ``method``, ``name``...) that some of its keys only apply in.

    Such a key given in another mode would silently do nothing (``student: {width: 0.5}``
    without ``kind: width`` kept the student as wide as its teacher), so it is refused, naming
    the key and the mode it needs. Dumps leave inactive keys out, so a resolved recipe
    (``validate --print``, ``Recipe.resolved()``) parses again.

    ``tolerate_when_set``: the mode key whose explicit value lets inactive keys through. The
    optimizer's and schedule's ``name`` are searched by ``edgeslim tune`` (shortcuts
    ``optimizer``, ``schedule``) under fixed keys such as ``momentum`` that only some names use;
    there only a key given while the mode is left at its default (``schedule: {step_size: 2}``
    without ``name: step``: a constant lr) is refused.
    """

    tolerate_when_set: ClassVar[str | None] = None

    def inactive_keys(self) -> dict[str, str]:
        """Keys that do nothing in the current mode -> the setting they need."""
        return {}

    @model_validator(mode="after")
    def _refuse_inactive(self) -> Any:
        if self.tolerate_when_set and self.tolerate_when_set in self.model_fields_set:
            return self
        for key, needs in self.inactive_keys().items():
            if key in self.model_fields_set:
                raise ValueError(f"'{key}' applies only with {needs}; add {needs} or drop {key}")
        return self

    @model_serializer(mode="wrap")
    def _drop_inactive(self, handler: SerializerFunctionWrapHandler) -> Any:
        out = handler(self)
        # A tolerant config dumps its mode key, which lets every key through again: nothing to
        # drop (and its dump, part of every training stage's cache key, stays as it was).
        if isinstance(out, dict) and self.tolerate_when_set is None:
            for key in self.inactive_keys():
                out.pop(key, None)
        return out


def _used_by(name: str, table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Keys of ``table`` (key -> the names that use it) that ``name`` does not use."""
    return {k: "name: " + "|".join(names) for k, names in table.items() if name not in names}


_OPTIMIZER_KEYS = {
    "momentum": ("sgd", "momentum", "nesterov", "rmsprop"),
    "betas": ("adam", "adamw"),
    "eps": ("adam", "adamw", "rmsprop", "adagrad", "adadelta"),
    "rho": ("adadelta",),
    **{k: ("lbfgs",) for k in ("history_size", "max_iter", "line_search", "full_batch")},
}
_SCHEDULE_KEYS = {
    "gamma": ("step", "multistep", "exponential", "plateau"),
    "step_size": ("step",),
    "milestones": ("multistep",),
    "min_lr_ratio": ("cosine",),
    **{k: ("cyclic",) for k in ("cycle_epochs", "base_lr_ratio")},
    **{k: ("onecycle",) for k in ("pct_start", "div_factor", "final_div_factor")},
    "patience": ("plateau",),
}


class OptimizerSpec(ModeKeys):
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

    tolerate_when_set: ClassVar[str | None] = "name"

    def inactive_keys(self) -> dict[str, str]:
        return _used_by(self.name, _OPTIMIZER_KEYS)


class ScheduleSpec(ModeKeys):
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

    tolerate_when_set: ClassVar[str | None] = "name"

    def inactive_keys(self) -> dict[str, str]:
        return _used_by(self.name, _SCHEDULE_KEYS)


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
