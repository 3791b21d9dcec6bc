"""The prune stage's loop: optional sparse training, N pruning steps, recovery after each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeslim.compress import prune as P
from edgeslim.errors import StageError

if TYPE_CHECKING:
    from edgeslim.compress.configs import PruneConfig
    from edgeslim.data.bundle import DataBundle
    from edgeslim.stages.context import StageContext


def group_lasso(model: nn.Module, skip: set[str]) -> torch.Tensor:
    """Sum over output channels of the L2 norm of each channel's weights (+ its BatchNorm scale)."""
    total = torch.zeros(())
    prev_conv = None
    for name, m in model.named_modules():
        if name in skip:
            continue
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            total = total + m.weight.flatten(1).norm(dim=1).sum()
            prev_conv = m
        elif (
            isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.weight is not None
            and prev_conv is not None
        ):
            total = total + m.weight.abs().sum()
    return total


def taylor_grads(data: DataBundle, batches: int = 4) -> Any:
    """Accumulate gradients on a few training batches (Taylor importance needs them)."""

    def run(model: nn.Module) -> None:
        model.train()
        model.zero_grad()
        for i, (x, y) in enumerate(data.loader("train", 32, shuffle=True, seed=0)):
            if i >= batches:
                break
            F.cross_entropy(model(x), y).backward()
        model.eval()

    return run


def _recover(
    model: nn.Module,
    data: DataBundle,
    cfg: PruneConfig,
    ctx: StageContext,
    teacher: nn.Module | None,
    step: int,
) -> nn.Module:
    from edgeslim.compress.distill import kd_loss
    from edgeslim.train.engine import fit

    rc = cfg.recovery
    if rc.train is None or rc.train.epochs == 0:
        return model
    loss = (
        kd_loss([teacher], rc.kd.temperature, rc.kd.alpha)
        if teacher is not None and rc.kd
        else None
    )
    res = fit(
        model,
        data,
        rc.train,
        loss_fn=loss,
        workdir=ctx.workdir / f"recovery-{step}",  # one metrics log per step
        reporter=ctx.reporter,
        device=ctx.device,
        seed=ctx.seed,
    )
    return res.model.cpu()


def _sparse_pretrain(
    model: nn.Module, data: DataBundle, cfg: PruneConfig, ctx: StageContext
) -> nn.Module:
    from edgeslim.train.engine import fit

    sp = cfg.sparse
    assert sp is not None  # checked by the caller
    skip = set(cfg.ignored_layers or P._head_names(model))

    def loss(logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y) + sp.reg * group_lasso(model, skip)

    return fit(
        model,
        data,
        sp.train,
        loss_fn=loss,
        workdir=ctx.workdir / "sparse",
        reporter=ctx.reporter,
        device=ctx.device,
        seed=ctx.seed,
    ).model.cpu()


def prune_with_recovery(
    model: nn.Module,
    data: DataBundle,
    cfg: PruneConfig,
    ctx: StageContext,
    teacher: nn.Module | None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Prune ``model`` to ``cfg.target`` in ``cfg.steps`` steps; return it and the metrics."""
    from edgeslim.compress.guards import check_budget, recalibrate_bn
    from edgeslim.models.serialize import save_model
    from edgeslim.train.engine import eval_top1

    model = model.cpu()
    example = torch.zeros(1, *data.input_shape)
    val_parent = eval_top1(model, data, "val")  # the accuracy guard's reference: the model as it came in
    if cfg.sparse is not None:
        model = _sparse_pretrain(model, data, cfg, ctx)
    before = P.snapshot(model)
    base = {
        "macs": P.measure(model, example, "macs"),
        "params": P.measure(model, example, "params"),
    }
    kw = {
        "global_pruning": cfg.scope == "global",
        "round_to": cfg.round_to,
        "ignored": cfg.ignored_layers,
        "max_ratio": cfg.max_ratio,
    }
    grad_fn = taylor_grads(data) if cfg.importance == "taylor" else None
    log: list[dict[str, Any]] = []
    val0 = eval_top1(model, data, "val")
    pruner = None
    with ctx.reporter.task("prune steps", cfg.steps) as advance:
        for step in range(1, cfg.steps + 1):
            pruner, ratio = _step(model, example, cfg, pruner, step, base, kw, grad_fn)
            P.verify_forward(model, example)
            row = {
                "step": step,
                "ratio": round(ratio, 4),
                "val_top1_pruned": eval_top1(model, data, "val"),
                "macs_fraction": round(P.measure(model, example, "macs") / base["macs"], 4),
            }
            if recalibrate_bn(model, data, cfg.bn_recalibrate_batches, seed=ctx.seed + step):
                row["val_top1_bn_recalibrated"] = eval_top1(model, data, "val")
            model = _recover(model, data, cfg, ctx, teacher, step)
            row["val_top1_recovered"] = eval_top1(model, data, "val")
            log.append(row)
            advance(1, info=f"macs {row['macs_fraction']:.2f}")
    _check_target(cfg, model, example, base)
    model = P.record_edit_after(model, before)
    metrics = _metrics(cfg, model, example, base, before, log, val0)
    metrics["accuracy_guard"] = check_budget(
        "prune", val_parent, log[-1]["val_top1_recovered"], cfg.accuracy_budget, cfg.on_budget, len(data.val),
        "prune less (a larger target.macs / smaller target.ratio), prune in more steps, or recover longer "
        "(recovery.train, recovery.kd)",
        keep=lambda: save_model(model, ctx.workdir / "model.pt"),
    )
    return model, metrics


def _step(
    model: nn.Module,
    example: torch.Tensor,
    cfg: PruneConfig,
    pruner: Any,
    step: int,
    base: dict[str, int],
    kw: dict[str, Any],
    grad_fn: Any,
) -> tuple[Any, float]:
    """One pruning step: torch-pruning's own schedule for a ratio, a searched ratio otherwise."""
    if cfg.target.ratio is not None:
        pruner = pruner or P.build_pruner(
            model, example, cfg.importance, cfg.target.ratio, steps=cfg.steps, **kw
        )
        if grad_fn:
            grad_fn(model)
        pruner.step()
        P.sync_model_attrs(model)
        return pruner, cfg.target.ratio * step / cfg.steps
    by = "macs" if cfg.target.macs is not None else "params"
    frac = cfg.target.macs if by == "macs" else cfg.target.params
    # Linear schedule in the measured quantity: step i keeps 1 - (1 - frac) * i / N of the base.
    goal = int(base[by] * (1 - (1 - frac) * step / cfg.steps))
    ratio = P.search_ratio(model, example, cfg.importance, goal, by, **kw)
    P.prune_once(model, example, cfg.importance, ratio, grad_fn=grad_fn, **kw)
    return pruner, ratio


def _check_target(
    cfg: PruneConfig, model: nn.Module, example: torch.Tensor, base: dict[str, int]
) -> None:
    for by in ("macs", "params"):
        frac = getattr(cfg.target, by)
        if frac is not None and P.measure(model, example, by) > base[by] * frac * 1.001:
            got = P.measure(model, example, by) / base[by]
            raise StageError(
                f"prune: could not reach {by} <= {frac} (got {got:.3f}) with max_ratio "
                f"{cfg.max_ratio} and round_to {cfg.round_to}; lower round_to, raise max_ratio "
                "or remove layers from ignored_layers"
            )


def _metrics(
    cfg: PruneConfig,
    model: nn.Module,
    example: torch.Tensor,
    base: dict[str, int],
    before: dict[str, Any],
    log: list[dict[str, Any]],
    val0: float,
) -> dict[str, Any]:
    macs, params = P.measure(model, example, "macs"), P.measure(model, example, "params")
    return {
        "importance": cfg.importance,
        "scope": cfg.scope,
        "steps": cfg.steps,
        "round_to": cfg.round_to,
        "macs_before": base["macs"],
        "macs_after": macs,
        "macs_fraction": round(macs / base["macs"], 4),
        "params_before": base["params"],
        "params_after": params,
        "params_fraction": round(params / base["params"], 4),
        "val_top1_unpruned": val0,
        "recovery": log,
        "channels": P.channel_table(before, model),
    }
