"""The one training engine: every training stage calls :func:`fit`; only the loss changes.

pretrain, finetune, distillation and every recovery fine-tune share this loop: optimizer and
parameter groups, schedule with warm-up, freezing, mixed precision, clipping, accumulation,
per-epoch validation, early stopping, checkpoints, metric logs, resume, divergence stop, DDP.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeslim.data.bundle import DataBundle
from edgeslim.errors import InputError, StageError
from edgeslim.fsutil import sha256_json
from edgeslim.progress import NULL, Reporter
from edgeslim.train import dist
from edgeslim.train.config import TrainConfig
from edgeslim.train.logs import MetricsLog, save_torch
from edgeslim.train.optim import Schedule, make_optimizer
from edgeslim.train.transfer import override_dropout, set_frozen, set_train_mode

# loss_fn(logits, targets, inputs) -> scalar; inputs let KD losses run a teacher on the batch.
# With mixup/cutmix on, targets are class probabilities [N, C] instead of class indices.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# callback(epoch_record) after every epoch's validation; hyperparameter search prunes here.
EpochCallback = Callable[[dict[str, Any]], None]
EPOCH_HOOKS: list[EpochCallback] = []  # process-wide hooks (edgeslim tune installs one per trial)
RESUME_FILE = "state.pt"


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    resumed_at_epoch: int | None = None


def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return lambda logits, y, x: ce(logits, y)


@torch.no_grad()
def evaluate_split(model: nn.Module, data: DataBundle, split: str = "val",
                   device: torch.device | None = None, batch_size: int = 256) -> dict[str, Any]:
    """loss, top1, top5, macro_f1, per-class accuracy and confusion matrix of a torch model."""
    from edgeslim.measure import topk_metrics

    was = model.training
    model.eval()
    x, y = data.dataset(split).tensors()
    dev = device or torch.device("cpu")
    logits = torch.cat([model(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, len(x), batch_size)])
    model.train(was)
    out = topk_metrics(logits.numpy(), y.numpy(), data.num_classes)
    out["loss"] = float(nn.functional.cross_entropy(logits, y))
    return out


def eval_top1(model: nn.Module, data: DataBundle, split: str = "val", device: torch.device | None = None) -> float:
    return float(evaluate_split(model, data, split, device)["top1"])


def _better(a: float, b: float | None, maximize: bool, min_delta: float = 0.0) -> bool:
    if b is None:
        return True
    return a > b + min_delta if maximize else a < b - min_delta


def _amp_context(kind: str, device: torch.device) -> contextlib.AbstractContextManager:
    if kind == "off":
        return contextlib.nullcontext()
    if kind == "fp16" and device.type != "cuda":
        raise InputError("train.amp: fp16 needs a CUDA device (run.device: cuda); on CPU use amp: bf16 or off")
    dtype = torch.float16 if kind == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class _Loop:
    """Everything one fit carries between epochs (and saves to resume)."""

    model: nn.Module
    data: DataBundle
    cfg: TrainConfig
    loss_fn: LossFn
    device: torch.device
    seed: int
    workdir: Path | None
    resume_dir: Path | None
    opt: torch.optim.Optimizer = None  # type: ignore[assignment]
    sched: Schedule = None  # type: ignore[assignment]
    scaler: Any = None
    step: int = 0
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_value: float | None = None
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    last_good: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0

    @property
    def maximize(self) -> bool:
        return self.cfg.monitor != "val_loss"

    def cfg_hash(self) -> str:
        return sha256_json({"cfg": self.cfg.model_dump(mode="json"), "seed": self.seed,
                            "params": sorted((k, list(v.shape)) for k, v in self.model.state_dict().items())})

    # ---- data ---------------------------------------------------------------------------
    def loader(self) -> torch.utils.data.DataLoader:
        bs = len(self.data.train) if self.cfg.optimizer.full_batch else self.cfg.batch_size
        if dist.world_size() > 1:
            return dist.sharded_loader(self.data, bs, self.seed, self.epoch)
        # A fresh generator per epoch makes epoch k's order independent of earlier epochs:
        # a resumed run sees exactly the batches the uninterrupted run would have seen.
        return self.data.loader("train", bs, shuffle=True, augment=True, seed=self.seed + self.epoch)

    def steps_per_epoch(self) -> int:
        n = len(self.loader())
        if self.cfg.max_steps_per_epoch:
            n = min(n, self.cfg.max_steps_per_epoch)
        return max(1, math.ceil(n / self.cfg.grad_accum_steps))

    # ---- one epoch ----------------------------------------------------------------------
    def train_epoch(self, net: nn.Module) -> dict[str, float]:
        cfg, dev = self.cfg, self.device
        loader, cap = self.loader(), self.cfg.max_steps_per_epoch
        n_batches = min(len(loader), cap) if cap else len(loader)
        batch_tf = self.data.batch_transform
        total, correct, seen, hard = 0.0, 0, 0, True
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(loader):
            if i >= n_batches:
                break
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            target = y
            if batch_tf is not None:
                x, target = batch_tf(x, y)
                hard = target.ndim == 1
            if cfg.optimizer.name == "lbfgs":
                loss, logits = self._lbfgs_step(net, x, target, i)
            else:
                with _amp_context(cfg.amp, dev):
                    logits = net(x)
                    loss = self.loss_fn(logits, target, x)
                self._check_finite(loss, i)
                self._backward(loss / cfg.grad_accum_steps)
                if (i + 1) % cfg.grad_accum_steps == 0 or i + 1 == n_batches:
                    self._optimizer_step()
            total += float(loss.detach()) * len(y)
            seen += len(y)
            if hard:
                correct += int((logits.detach().argmax(1) == y).sum())
        dt = time.perf_counter() - t0
        out = {"train_loss": total / max(seen, 1), "train_images_per_s": seen / max(dt, 1e-9),
               "epoch_train_s": dt}
        if hard:
            out["train_top1"] = correct / max(seen, 1)
        return out

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def _optimizer_step(self) -> None:
        cfg, params = self.cfg, [p for p in self.model.parameters() if p.grad is not None]
        self.sched.apply(self.step)
        if self.scaler and (cfg.grad_clip_norm or cfg.grad_clip_value):
            self.scaler.unscale_(self.opt)
        if cfg.grad_clip_value:
            nn.utils.clip_grad_value_(params, cfg.grad_clip_value)
        if cfg.grad_clip_norm:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
        if self.scaler:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1

    def _lbfgs_step(self, net: nn.Module, x: torch.Tensor, target: torch.Tensor,
                    i: int) -> tuple[torch.Tensor, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            self.opt.zero_grad(set_to_none=True)
            with _amp_context(self.cfg.amp, self.device):
                out["logits"] = net(x)
                loss = self.loss_fn(out["logits"], target, x)
            self._check_finite(loss, i)
            loss.backward()
            return loss

        self.sched.apply(self.step)
        loss = self.opt.step(closure)
        self._check_finite(loss, i)
        self.step += 1
        return loss, out["logits"]

    def _check_finite(self, loss: torch.Tensor, i: int) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        where = self._save_last_good()
        lr = self.opt.param_groups[0]["lr"]
        raise StageError(
            f"training diverged: loss is {float(loss.detach())} at epoch {self.epoch + 1}, batch {i + 1} "
            f"(optimizer step {self.step}), lr {lr:.3g}; lower train.optimizer.lr, set "
            f"train.grad_clip_norm (e.g. 1.0) or add schedule.warmup_steps; last good weights: {where}")

    def _save_last_good(self) -> str:
        folder = self.resume_dir or (self.workdir / "checkpoints" if self.workdir else None)
        if folder is None or self.last_good is None or not dist.is_main():
            return "not saved (fit was given no workdir)"
        return str(save_torch(folder / "last_good.pt", self.last_good))
