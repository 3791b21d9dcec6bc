"""The one training engine: every training stage calls :func:`fit`; only the loss changes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeslim.data.bundle import DataBundle
from edgeslim.progress import NULL, Reporter
from edgeslim.train.config import TrainConfig

# loss_fn(logits, targets, inputs) -> scalar; inputs let KD losses run a teacher on the batch.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)


def cross_entropy() -> LossFn:
    ce = nn.CrossEntropyLoss()
    return lambda logits, y, x: ce(logits, y)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


@torch.no_grad()
def eval_top1(model: nn.Module, data: DataBundle, split: str = "val", device: torch.device | None = None) -> float:
    model.eval()
    x, y = data.dataset(split).tensors()
    dev = device or torch.device("cpu")
    correct = sum(int((model(x[i:i + 256].to(dev)).argmax(1).cpu() == y[i:i + 256]).sum())
                  for i in range(0, len(x), 256))
    return correct / max(len(y), 1)


def fit(model: nn.Module, data: DataBundle, cfg: TrainConfig, *, loss_fn: LossFn | None = None,
        workdir: Path | None = None, reporter: Reporter = NULL, device: torch.device | None = None,
        seed: int = 0) -> FitResult:
    """Train ``model`` on ``data.train``, validating on ``data.val`` after every epoch."""
    device = device or torch.device("cpu")
    model.to(device)
    loss_fn = loss_fn or cross_entropy()
    opt = make_optimizer(model, cfg)
    loader = data.loader("train", cfg.batch_size, shuffle=True, augment=True, seed=seed)
    res = FitResult(model)
    best_state, best_acc = None, -1.0
    with reporter.task("train", cfg.epochs) as advance:
        for epoch in range(cfg.epochs):
            model.train()
            total, n = 0.0, 0
            for step, (x, y) in enumerate(loader):
                if cfg.max_steps_per_epoch and step >= cfg.max_steps_per_epoch:
                    break
                x, y = x.to(device), y.to(device)
                loss = loss_fn(model(x), y, x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, n = total + loss.item() * len(y), n + len(y)
            acc = eval_top1(model, data, "val", device)
            res.history.append({"epoch": epoch + 1, "train_loss": total / max(n, 1), "val_top1": acc})
            if acc > best_acc:
                best_acc, best_state = acc, copy.deepcopy(model.state_dict())
            advance(1, info=f"val {acc:.3f}")
    if cfg.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    res.best = {"val_top1": best_acc}
    return res
