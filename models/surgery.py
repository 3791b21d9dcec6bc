"""Head surgery: find the classification head and replace it for a new number of classes."""

from __future__ import annotations

from torch import nn

from edgeslim.errors import InputError


def find_head(model: nn.Module) -> tuple[str, nn.Module]:
    """The last Linear (or 1x1 Conv producing logits) in registration order."""
    head = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) or (isinstance(mod, nn.Conv2d) and mod.kernel_size == (1, 1)):
            head = (name, mod)
    if head is None:
        raise InputError(f"{type(model).__name__} has no Linear or 1x1 Conv head to replace")
    return head


def num_classes_of(model: nn.Module) -> int:
    _, head = find_head(model)
    return int(head.out_features if isinstance(head, nn.Linear) else head.out_channels)


def replace_head(model: nn.Module, num_classes: int, init: str = "default") -> nn.Module:
    """Swap the head for one with ``num_classes`` outputs (``init``: default, xavier, kaiming)."""
    name, old = find_head(model)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None)
    init_head(new, init)
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    setattr(parent, name.rsplit(".", 1)[-1], new)
    return model


def init_head(layer: nn.Module, init: str) -> None:
    if init == "default":
        return
    if init == "xavier":
        nn.init.xavier_uniform_(layer.weight)
    elif init == "kaiming":
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    else:
        raise InputError(f"head init '{init}' is not valid; use default, xavier or kaiming")
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
