"""The one training engine: every training stage calls :func:`fit`; only the loss changes.

pretrain, finetune, distillation and every recovery fine-tune share this loop: optimizer and
parameter groups, schedule with warm-up, freezing, mixed precision, clipping, accumulation,
per-epoch validation, early stopping, checkpoints, metric logs, resume, divergence stop, DDP.
"""

from __future__ import annotations

import contextlib
import itertools
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
from edgeslim.fsutil import atomic_torch_save, sha256_json
from edgeslim.progress import NULL, Reporter
from edgeslim.train import dist
from edgeslim.train.config import TrainConfig
from edgeslim.train.logs import MetricsLog, epoch_summary
from edgeslim.train.optim import Schedule, make_optimizer
from edgeslim.train.transfer import set_frozen, set_train_mode, training_overrides

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
def evaluate_split(
    model: nn.Module,
    data: DataBundle,
    split: str = "val",
    device: torch.device | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """loss, top1, top5, macro_f1, per-class accuracy and confusion matrix of a torch model."""
    from edgeslim.measure import topk_metrics

    was = model.training
    model.eval()
    x, y = data.dataset(split).tensors()
    dev = device or torch.device("cpu")
    logits = torch.cat(
        [model(x[i : i + batch_size].to(dev)).float().cpu() for i in range(0, len(x), batch_size)]
    )
    model.train(was)
    out = topk_metrics(logits.numpy(), y.numpy(), data.num_classes)
    out["loss"] = float(nn.functional.cross_entropy(logits, y))
    return out


def eval_top1(
    model: nn.Module, data: DataBundle, split: str = "val", device: torch.device | None = None
) -> float:
    return float(evaluate_split(model, data, split, device)["top1"])


def _better(a: float, b: float | None, maximize: bool, min_delta: float = 0.0) -> bool:
    if b is None:
        return True
    return a > b + min_delta if maximize else a < b - min_delta


def _amp_context(kind: str, device: torch.device) -> contextlib.AbstractContextManager:
    if kind == "off":
        return contextlib.nullcontext()
    if kind == "fp16" and device.type != "cuda":
        raise InputError(
            "train.amp: fp16 needs a CUDA device (run.device: cuda); on CPU use amp: bf16 or off"
        )
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
        return sha256_json(
            {
                "cfg": self.cfg.model_dump(mode="json"),
                "seed": self.seed,
                "params": sorted((k, list(v.shape)) for k, v in self.model.state_dict().items()),
            }
        )

    # ---- data ---------------------------------------------------------------------------
    def loader(self) -> torch.utils.data.DataLoader:
        bs = len(self.data.train) if self.cfg.optimizer.full_batch else self.cfg.batch_size
        if dist.world_size() > 1:
            return dist.sharded_loader(self.data, bs, self.seed, self.epoch)
        # A fresh generator per epoch makes epoch k's order independent of earlier epochs:
        # a resumed run sees exactly the batches the uninterrupted run would have seen.
        return self.data.loader(
            "train", bs, shuffle=True, augment=True, seed=self.seed + self.epoch
        )

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
        # islice, not a break: a capped epoch must not fetch (and augment) one batch too many.
        for i, (x, y) in enumerate(itertools.islice(loader, n_batches)):
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
        out = {
            "train_loss": total / max(seen, 1),
            "train_images_per_s": seen / max(dt, 1e-9),
            "epoch_train_s": dt,
        }
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
        if cfg.prox_l1:
            self._prox_l1()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1

    @torch.no_grad()
    def _prox_l1(self) -> None:
        """Proximal step of L1 (soft-thresholding) on the weight-decayed (not norm/bias) params."""
        for g in self.opt.param_groups:
            if g.get("weight_decay", 0.0) == 0.0 and g.get("group") != "all":
                continue
            thr = g["lr"] * self.cfg.prox_l1
            for p in g["params"]:
                if p.grad is not None:
                    p.copy_(p.sign() * (p.abs() - thr).clamp_min(0))

    def _lbfgs_step(
        self, net: nn.Module, x: torch.Tensor, target: torch.Tensor, i: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
            f"training diverged: loss is {float(loss.detach())} at epoch {self.epoch + 1}, "
            f"batch {i + 1} "
            f"(optimizer step {self.step}), lr {lr:.3g}; lower train.optimizer.lr, set "
            f"train.grad_clip_norm (e.g. 1.0) or add schedule.warmup_steps; "
            f"last good weights: {where}"
        )

    def _save_last_good(self) -> str:
        folder = self.resume_dir or (self.workdir / "checkpoints" if self.workdir else None)
        if folder is None or self.last_good is None or not dist.is_main():
            return "not saved (fit was given no workdir)"
        return str(atomic_torch_save(folder / "last_good.pt", self.last_good))

    # ---- epoch end: validation, best, early stop, files --------------------------------
    def end_epoch(
        self, train_stats: dict[str, float], frozen: list[str]
    ) -> tuple[dict[str, Any], bool]:
        """Validate, log, checkpoint; returns the epoch record and whether to stop early."""
        dist.sync_buffers(self.model)
        val = evaluate_split(self.model, self.data, "val", self.device)
        rec: dict[str, Any] = {
            "epoch": self.epoch + 1,
            **train_stats,
            "lr": self.opt.param_groups[-1]["lr"],
            "frozen_groups": len(frozen),
        }
        rec.update({f"val_{k}": v for k, v in val.items() if k != "n"})
        value = rec[self.cfg.monitor]
        self.sched.epoch_end(value)
        es = self.cfg.early_stopping
        if _better(value, self.best_value, self.maximize, es.min_delta if es else 0.0):
            self.best_value, self.best_epoch, self.bad_epochs = value, self.epoch + 1, 0
            self.best_state = _cpu_state(self.model)
        else:
            self.bad_epochs += 1
        rec["best_epoch"] = self.best_epoch
        self.history.append(rec)
        self.last_good = _cpu_state(self.model)
        self.epoch += 1
        return rec, bool(es and self.bad_epochs >= es.patience)

    def save_checkpoints(self) -> None:
        if not dist.is_main():
            return
        if self.workdir is not None:
            atomic_torch_save(self.workdir / "checkpoints" / "last.pt", self.last_good)
            if self.best_state is not None:
                atomic_torch_save(self.workdir / "checkpoints" / "best.pt", self.best_state)
        if self.resume_dir is not None:
            atomic_torch_save(self.resume_dir / RESUME_FILE, self.resume_state())

    def resume_state(self) -> dict[str, Any]:
        return {
            "cfg_hash": self.cfg_hash(),
            "epoch": self.epoch,
            "step": self.step,
            "model": self.last_good,
            "optimizer": self.opt.state_dict(),
            "schedule": self.sched.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "history": self.history,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "rng": torch.get_rng_state(),
        }

    def try_resume(self, reporter: Reporter) -> int | None:
        """Load the epoch-boundary state of an interrupted fit with the same settings.

        State that cannot be used (corrupt, truncated, missing keys, wrong shapes) is reported,
        deleted and training starts over from the model as given: it never blocks the stage.
        """
        path = self.resume_dir / RESUME_FILE if self.resume_dir else None
        if path is None or not path.is_file():
            return None
        from edgeslim.errors import CheckpointError
        from edgeslim.models.checkpoint import safe_torch_load

        start = (_cpu_state(self.model), self.opt.state_dict(), self.sched.state_dict())
        try:
            st = safe_torch_load(path)
            if st.get("cfg_hash") != self.cfg_hash():
                reporter.log(
                    f"[yellow]{path}: saved with other settings; training from the start[/yellow]"
                )
                return None
            self._load_state(st)
        except (CheckpointError, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            self.model.load_state_dict(start[0])  # undo a partial load
            self.opt.load_state_dict(start[1])
            self.sched.load_state_dict(start[2])
            reporter.log(f"[yellow]warning: resume state {path} cannot be used "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else '-'}); "
                         "discarded, training the stage from the start[/yellow]")
            path.unlink(missing_ok=True)
            return None
        reporter.log(f"resuming training after epoch {self.epoch} from {path}")
        return self.epoch

    def _load_state(self, st: dict[str, Any]) -> None:
        # Everything is read before anything is applied, so a missing key changes nothing.
        fields = (st["epoch"], st["step"], list(st["history"]), st["best_value"], st["best_epoch"],
                  st["best_state"], st["bad_epochs"], st["model"], st["rng"])
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["schedule"])
        if self.scaler and st["scaler"]:
            self.scaler.load_state_dict(st["scaler"])
        torch.set_rng_state(st["rng"])
        (self.epoch, self.step, self.history, self.best_value, self.best_epoch, self.best_state,
         self.bad_epochs, self.last_good, _) = fields


def _setup(loop: _Loop) -> None:
    cfg = loop.cfg
    if cfg.amp == "fp16" and loop.device.type != "cuda":
        _amp_context("fp16", loop.device)  # raises the one-line error before any work
    loop.opt = make_optimizer(loop.model, cfg.optimizer)
    spe = loop.steps_per_epoch()
    loop.sched = Schedule(loop.opt, cfg.schedule, spe, spe * cfg.epochs, loop.maximize)
    if cfg.amp == "fp16":
        loop.scaler = torch.amp.GradScaler("cuda")
    loop.last_good = _cpu_state(loop.model)


def fit(
    model: nn.Module,
    data: DataBundle,
    cfg: TrainConfig,
    *,
    loss_fn: LossFn | None = None,
    workdir: Path | None = None,
    reporter: Reporter = NULL,
    device: torch.device | None = None,
    seed: int = 0,
    resume_dir: Path | None = None,
    callbacks: Sequence[EpochCallback] = (),
) -> FitResult:
    """Train ``model`` on ``data.train``, validating on ``data.val`` after every epoch.

    Args:
        model: the network (trained in place and returned in the result).
        data: the bundle; its ``batch_transform`` (mixup/cutmix) applies when set.
        cfg: the ``train:`` settings.
        loss_fn: ``loss(logits, targets, inputs)``; default cross-entropy with label smoothing.
        workdir: where metrics.jsonl/.csv, tensorboard/ and checkpoints/{best,last}.pt go.
        reporter: progress bar and messages.
        device: torch device (default CPU).
        seed: seeds shuffling, augmentation and dropout.
        resume_dir: a folder that survives a killed process; the epoch-boundary state is kept
            there and a later call with the same settings continues from it.
        callbacks: called with each epoch's record (may raise to stop, e.g. trial pruning).

    Raises:
        StageError: the loss became NaN/inf (message names step, lr and a fix).
    """
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    model.to(device)
    grads = [p.requires_grad for p in model.parameters()]
    loop = _Loop(
        model,
        data,
        cfg,
        loss_fn or cross_entropy(cfg.label_smoothing),
        device,
        seed,
        workdir,
        resume_dir,
    )
    _setup(loop)
    res = FitResult(model, resumed_at_epoch=loop.try_resume(reporter))
    log = MetricsLog(workdir if dist.is_main() else None, cfg.tensorboard)
    undo_overrides = training_overrides(model, cfg.dropout, cfg.bn_momentum)
    det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(cfg.deterministic or det, warn_only=True)
    try:
        log.write(loop.history)
        res.stopped_early = _run_epochs(loop, log, reporter, [*callbacks, *EPOCH_HOOKS])
    finally:
        undo_overrides()
        torch.use_deterministic_algorithms(det, warn_only=True)
        log.close()
    for p, flag in zip(model.parameters(), grads, strict=True):
        p.requires_grad_(flag)
    _finish(loop, res)
    return res


def _finish(loop: _Loop, res: FitResult) -> None:
    """Best weights back, best/test figures into ``res``, resume state removed."""
    cfg, model = loop.cfg, loop.model
    if cfg.restore_best and loop.best_state is not None:
        model.load_state_dict(loop.best_state)
    res.history = loop.history
    last = next((h for h in loop.history if h["epoch"] == loop.best_epoch), {})
    keys = ("val_top1", "val_top5", "val_macro_f1", "val_loss")
    res.best = {
        "epoch": loop.best_epoch,
        "monitor": cfg.monitor,
        "value": loop.best_value,
        **{k: last.get(k) for k in keys},
    }
    if cfg.eval_test and len(loop.data.test):
        res.test = evaluate_split(model, loop.data, "test", loop.device)
    if loop.resume_dir is not None and dist.is_main():
        (loop.resume_dir / RESUME_FILE).unlink(missing_ok=True)


def _run_epochs(
    loop: _Loop, log: MetricsLog, reporter: Reporter, hooks: list[EpochCallback]
) -> bool:
    cfg = loop.cfg
    with reporter.task("epoch", cfg.epochs) as advance:
        advance(loop.epoch)
        while loop.epoch < cfg.epochs:
            frozen = set_frozen(loop.model, cfg.freeze, loop.epoch)
            set_train_mode(loop.model, frozen, cfg.freeze.bn_frozen)
            net = dist.wrap(loop.model, loop.device)
            stats = loop.train_epoch(net)
            rec, stop = loop.end_epoch(stats, frozen)
            loop.save_checkpoints()
            log.write(loop.history)
            advance(1, info=epoch_summary(rec, cfg.monitor))
            for cb in hooks:
                cb(rec)
            if stop:
                reporter.log(
                    f"early stop after epoch {loop.epoch}: {cfg.monitor} did not improve for "
                    f"{cfg.early_stopping.patience} epochs (best epoch {loop.best_epoch})"
                )
                return True
    return False
