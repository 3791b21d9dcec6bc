"""Transfer-learning controls: backbone layer groups, freezing, frozen BatchNorm, head dropout."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from edgeslim.train.config import FreezeSpec
from edgeslim.train.optim import head_param_names

_CONTAINERS = (nn.Sequential, nn.ModuleList)


def layer_groups(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Backbone blocks in forward order, input side first, without the head.

    Top-level children, with Sequential/ModuleList containers opened one level, so a ResNet
    gives stem, layers.0, layers.1, ... The module holding the head is left out.
    """
    head = head_param_names(model)
    groups: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        parts = list(child.named_children()) if isinstance(child, _CONTAINERS) else [("", child)]
        for sub, mod in parts:
            full = f"{name}.{sub}" if sub else name
            names = {f"{full}.{n}" for n, _ in mod.named_parameters()} or {full}
            if not names & head and any(True for _ in mod.parameters()):
                groups.append((full, mod))
    return groups


def trainable_groups(n_groups: int, epoch: int, spec: FreezeSpec) -> int:
    """How many backbone groups (counted from the top) train in ``epoch`` (0-based)."""
    if epoch < spec.epochs:
        return 0
    if spec.unfreeze == "all":
        return n_groups
    return min(n_groups, epoch - spec.epochs + 1)


def set_frozen(model: nn.Module, spec: FreezeSpec, epoch: int) -> list[str]:
    """Freeze/unfreeze backbone groups for ``epoch``; returns the names of frozen groups."""
    groups = layer_groups(model)
    n_train = trainable_groups(len(groups), epoch, spec)
    frozen = groups[: len(groups) - n_train]
    for _, mod in groups:
        mod.requires_grad_(True)
    for _, mod in frozen:
        mod.requires_grad_(False)
    return [n for n, _ in frozen]


def set_train_mode(model: nn.Module, frozen: list[str], bn_frozen: bool) -> None:
    """model.train(), but BatchNorm in frozen groups (or everywhere with bn_frozen) stays in eval.

    A frozen block whose BN statistics kept moving would drift away from the weights it was
    trained with, so frozen means frozen statistics too.
    """
    model.train()
    roots = [model] if bn_frozen else [model.get_submodule(n) for n in frozen]
    for root in roots:
        for m in root.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def override_dropout(model: nn.Module, p: float) -> Callable[[], None]:
    """Set every Dropout's p; when there is none, drop the head's input while training.

    Returns a function undoing the change (the pre-hook is training-only and not saved).
    """
    from edgeslim.errors import InputError
    from edgeslim.models.surgery import find_head

    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    if drops:
        old = [m.p for m in drops]
        for m in drops:
            m.p = p

        def undo() -> None:
            for m, q in zip(drops, old, strict=True):
                m.p = q

        return undo
    try:
        _, head = find_head(model)
    except InputError:
        return lambda: None

    def hook(mod: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (nn.functional.dropout(args[0], p, mod.training),) + tuple(args[1:])

    handle = head.register_forward_pre_hook(hook)
    return handle.remove


def training_overrides(
    model: nn.Module, dropout: float | None, bn_momentum: float | None
) -> Callable[[], None]:
    """Apply the train-time-only settings (dropout p, BN momentum); returns their undo."""
    undos = []
    if dropout is not None:
        undos.append(override_dropout(model, dropout))
    if bn_momentum is not None:
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        old = [m.momentum for m in bns]
        for m in bns:
            m.momentum = bn_momentum

        def undo_bn() -> None:
            for m, v in zip(bns, old, strict=True):
                m.momentum = v

        undos.append(undo_bn)
    return lambda: [u() for u in reversed(undos)] and None
