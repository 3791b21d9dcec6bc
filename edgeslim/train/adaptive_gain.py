"""Backpropagation with adaptive gain (BPAG): activations whose per-unit gain is learned.

``AdaptiveGain(act)(x) = act(gain * x)`` with one learnable gain per channel (per feature for
linear layers), initialised to ``init``; gains are trained by backprop with everything else.
The swap is the registered model edit ``adaptive_gain`` so a saved model reloads with the
same structure (its gains come back from the state dict).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgeslim.errors import InputError
from edgeslim.models.edits import record_edit, register_edit

ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.ELU,
    nn.Tanh,
    nn.Sigmoid,
)


class AdaptiveGain(nn.Module):
    """``act(gain * x)`` with a learnable gain along ``dim`` (1: channels/features, -1: tokens)."""

    def __init__(self, act: nn.Module, units: int, dim: int = 1, init: float = 1.0):
        super().__init__()
        if hasattr(act, "inplace"):
            act.inplace = False  # the gain product is a new tensor; in-place buys nothing here
        self.act, self.dim = act, dim
        self.gain = nn.Parameter(torch.full((units,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.ndim
        if self.gain.numel() > 1:
            shape[self.dim] = -1
        return self.act(x * self.gain.view(shape))


def _probe_units(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, list[int]]:
    """Per activation module: [units, dim] seen on a forward pass (1 unit if it varies)."""
    seen: dict[str, list[int]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, ACTIVATIONS) and name:

            def hook(m: nn.Module, args: tuple, out: Any, name: str = name) -> None:
                x = args[0]
                dim = -1 if x.ndim == 3 else 1
                cur = [int(x.shape[dim]) if x.ndim > 1 else 1, dim]
                prev = seen.setdefault(name, cur)
                if prev != cur:  # reused at several widths: fall back to one shared gain
                    seen[name] = [1, 1]

            hooks.append(mod.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        dev = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.no_grad():
            model(torch.zeros(2, *input_shape, device=dev))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return seen


@register_edit("adaptive_gain")
def _apply(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    init = float(edit.get("init", 1.0))
    for name, (units, dim) in edit["units"].items():
        act = model.get_submodule(name)
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], AdaptiveGain(act, units, dim, init))
    return model


def add_adaptive_gain(
    model: nn.Module, input_shape: tuple[int, ...], init: float = 1.0
) -> nn.Module:
    """Replace every activation module of ``model`` with its adaptive-gain version (an edit)."""
    if any(isinstance(m, AdaptiveGain) for m in model.modules()):
        return model
    units = _probe_units(model, input_shape)
    if not units:
        raise InputError(
            f"{type(model).__name__} has no activation modules "
            f"({', '.join(a.__name__ for a in ACTIVATIONS)}) to give an adaptive gain; "
            "set adaptive_gain: false"
        )
    return record_edit(model, {"op": "adaptive_gain", "units": units, "init": init})


def gain_stats(model: nn.Module) -> dict[str, float]:
    """Mean/min/max of all learned gains (for the stage metrics)."""
    gains = [m.gain.detach().flatten() for m in model.modules() if isinstance(m, AdaptiveGain)]
    if not gains:
        return {}
    g = torch.cat(gains)
    return {
        "gain_mean": round(float(g.mean()), 4),
        "gain_min": round(float(g.min()), 4),
        "gain_max": round(float(g.max()), 4),
    }
