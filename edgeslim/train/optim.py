"""Optimizers with parameter groups, and learning-rate schedules with linear warm-up.

Schedules are one multiplier function of the optimizer step (plus a plateau state), so every
schedule composes with warm-up the same way and resumes exactly from a saved step count.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from edgeslim.errors import InputError
from edgeslim.train.config import OptimizerSpec, ScheduleSpec

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def head_param_names(model: nn.Module) -> set[str]:
    """Names of the classification head's parameters (empty when the model has no head)."""
    from edgeslim.models.surgery import find_head

    try:
        name, head = find_head(model)
    except InputError:
        return set()
    return {f"{name}.{n}" if name else n for n, _ in head.named_parameters()}


def no_decay_names(model: nn.Module) -> set[str]:
    """Norm weights, biases and other 1-d parameters (gains, scales): no weight decay by default."""
    names = set()
    for mname, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if isinstance(mod, _NORMS) or pname == "bias" or p.ndim <= 1:
                names.add(f"{mname}.{pname}" if mname else pname)
    return names


def param_groups(model: nn.Module, spec: OptimizerSpec) -> list[dict[str, Any]]:
    """Head vs backbone (discriminative lr) x decay vs no-decay; empty groups dropped."""
    head = head_param_names(model)
    skip = set() if spec.decay_norm_bias else no_decay_names(model)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        groups.setdefault((name in head, name not in skip), []).append(p)
    out = []
    for (is_head, decay), params in sorted(groups.items()):
        lr = spec.lr if is_head else spec.lr * spec.backbone_lr_mult
        out.append(
            {
                "params": params,
                "lr": lr,
                "base_lr": lr,
                "group": "head" if is_head else "backbone",
                "weight_decay": spec.weight_decay if decay else 0.0,
            }
        )
    return out


def make_optimizer(model: nn.Module, spec: OptimizerSpec | Any) -> torch.optim.Optimizer:
    """Build the optimizer named in ``spec`` over ``model``'s parameter groups.

    ``spec`` may also be a whole TrainConfig (its ``optimizer`` is used).
    """
    spec = getattr(spec, "optimizer", spec)
    n, m = spec.name, spec.momentum
    if n == "lbfgs":
        # L-BFGS keeps one flat parameter vector: no per-group lr or decay.
        if spec.backbone_lr_mult != 1.0 or spec.weight_decay:
            raise InputError(
                "optimizer lbfgs supports neither backbone_lr_mult nor weight_decay "
                f"(given {spec.backbone_lr_mult}, {spec.weight_decay}); set them to 1.0 and 0"
            )
        opt = torch.optim.LBFGS(
            list(model.parameters()),
            lr=spec.lr,
            max_iter=spec.max_iter,
            history_size=spec.history_size,
            line_search_fn=None if spec.line_search == "none" else spec.line_search,
        )
        for g in opt.param_groups:
            g["base_lr"], g["group"] = spec.lr, "all"
        return opt
    groups = param_groups(model, spec)
    if n in ("sgd", "momentum", "nesterov"):
        mom = m if m is not None else (0.0 if n == "sgd" else 0.9)
        if n == "nesterov" and mom == 0:
            raise InputError(
                "optimizer nesterov needs momentum > 0; given 0; set optimizer.momentum: 0.9"
            )
        return torch.optim.SGD(groups, lr=spec.lr, momentum=mom, nesterov=n == "nesterov")
    if n == "adam":
        return torch.optim.Adam(groups, lr=spec.lr, betas=spec.betas, eps=spec.eps)
    if n == "adamw":
        return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, eps=spec.eps)
    if n == "rmsprop":
        return torch.optim.RMSprop(groups, lr=spec.lr, momentum=m or 0.0, eps=spec.eps)
    if n == "adagrad":
        return torch.optim.Adagrad(groups, lr=spec.lr, eps=spec.eps)
    if n == "adadelta":
        return torch.optim.Adadelta(groups, lr=spec.lr, rho=spec.rho, eps=spec.eps)
    raise InputError(f"unknown optimizer '{n}'")  # unreachable: the config validates names


class Schedule:
    """Sets every group's lr to ``base_lr x multiplier(step)`` before each optimizer step."""

    def __init__(
        self,
        opt: torch.optim.Optimizer,
        spec: ScheduleSpec,
        steps_per_epoch: int,
        total_steps: int,
        maximize: bool = True,
    ):
        self.opt, self.spec, self.maximize = opt, spec, maximize
        self.spe, self.total = max(steps_per_epoch, 1), max(total_steps, 1)
        self.plateau_scale, self.best, self.bad = 1.0, None, 0

    def multiplier(self, step: int) -> float:
        s, w = self.spec, self.spec.warmup_steps
        warm = min(1.0, (step + 1) / w) if w else 1.0
        epoch = step / self.spe
        span = max(self.total - w, 1)
        t = min(max(step - w, 0) / span, 1.0)
        if s.name == "step":
            m = s.gamma ** math.floor(epoch / s.step_size)
        elif s.name == "multistep":
            m = s.gamma ** sum(1 for e in s.milestones if epoch >= e)
        elif s.name == "exponential":
            m = s.gamma ** math.floor(epoch)
        elif s.name == "cosine":
            m = s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        elif s.name == "cyclic":
            pos = (step / (s.cycle_epochs * self.spe)) % 1.0
            m = s.base_lr_ratio + (1 - s.base_lr_ratio) * (1 - abs(2 * pos - 1))
        elif s.name == "onecycle":
            m = _onecycle(max(step - w, 0), span, s)
        elif s.name == "plateau":
            m = self.plateau_scale
        else:
            m = 1.0
        return warm * m

    def apply(self, step: int) -> float:
        mult = self.multiplier(step)
        for g in self.opt.param_groups:
            g["lr"] = g["base_lr"] * mult
        return self.opt.param_groups[0]["lr"]

    def epoch_end(self, metric: float | None) -> None:
        """Plateau bookkeeping: decay by ``gamma`` after ``patience`` epochs without improvement."""
        if self.spec.name != "plateau" or metric is None:
            return
        better = self.best is None or (metric > self.best if self.maximize else metric < self.best)
        if better:
            self.best, self.bad = metric, 0
            return
        self.bad += 1
        if self.bad > self.spec.patience:
            self.plateau_scale *= self.spec.gamma
            self.bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_scale": self.plateau_scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_scale, self.best, self.bad = (
            state["plateau_scale"],
            state["best"],
            state["bad"],
        )


def _onecycle(k: int, span: int, s: ScheduleSpec) -> float:
    """Cosine up from lr/div_factor to lr, then down to lr/div/final_div (torch's OneCycleLR)."""
    start, peak = 1.0 / s.div_factor, 1.0
    end = start / s.final_div_factor
    up = max(s.pct_start * span - 1, 1.0)
    if k <= up:
        a, b, u = start, peak, k / up
    else:
        a, b, u = peak, end, min((k - up) / max(span - 1 - up, 1.0), 1.0)
    return b + (a - b) * 0.5 * (1 + math.cos(math.pi * u))
