"""Training settings shared by pretrain, finetune, distill and every recovery step."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeslim.config import Config


class OptimizerSpec(Config):
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)


class TrainConfig(Config):
    """``train:`` block of a training stage."""

    epochs: int = Field(5, ge=0)
    batch_size: int = Field(32, ge=1)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap steps per epoch (quick runs)")
    restore_best: bool = Field(True, description="keep the weights of the best validation epoch")
