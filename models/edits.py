"""Model edits that must be replayed to rebuild a saved model without pickling code.

A saved model is ``spec`` (registry name, kwargs, classes, an ordered list of edits) plus a
state dict. Each edit is a small JSON-able dict ``{"op": name, ...}``; the function
registered for ``op`` re-applies it to a freshly built model. Stages that change a model's
structure (head surgery, adaptive-gain activations, pruning, fake quantization) register an
edit op here and call :func:`record_edit`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from torch import nn

from edgeslim.errors import unknown_name

EditFn = Callable[[nn.Module, dict[str, Any]], nn.Module]
_EDITS: dict[str, EditFn] = {}
SPEC_ATTR = "_edgeslim_spec"


def register_edit(op: str) -> Callable[[EditFn], EditFn]:
    def deco(fn: EditFn) -> EditFn:
        if op in _EDITS:
            raise ValueError(f"edit op '{op}' is already registered")
        _EDITS[op] = fn
        return fn

    return deco


def apply_edit(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    _load_known_edits()
    op = edit.get("op", "")
    if op not in _EDITS:
        raise unknown_name("model edit", op, _EDITS)
    return _EDITS[op](model, edit)


def get_spec(model: nn.Module) -> dict[str, Any]:
    spec = getattr(model, SPEC_ATTR, None)
    if spec is None:
        raise ValueError(f"{type(model).__name__} carries no edgeslim spec; build it with build_from_spec")
    return spec


def set_spec(model: nn.Module, spec: dict[str, Any]) -> nn.Module:
    # Stored as a plain attribute: nn.Module.__setattr__ keeps non-tensors in __dict__.
    object.__setattr__(model, SPEC_ATTR, copy.deepcopy(spec))
    return model


def record_edit(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Apply ``edit`` and append it to the model's spec so a reload replays it."""
    spec = get_spec(model)
    model = apply_edit(model, edit)
    spec = copy.deepcopy(spec)
    spec.setdefault("edits", []).append(copy.deepcopy(edit))
    return set_spec(model, spec)


@register_edit("replace_head")
def _replace_head(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    from edgeslim.models.surgery import replace_head

    # Weights come from the state dict on reload, so the init choice does not matter there.
    return replace_head(model, int(edit["num_classes"]), edit.get("init", "default"))


def _load_known_edits() -> None:
    # Modules that register edit ops elsewhere in the package; imported lazily to keep
    # `import edgeslim` light. A missing optional module simply registers nothing.
    import importlib

    for mod in ("edgeslim.train.adaptive_gain", "edgeslim.compress.prune", "edgeslim.compress.qat"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
