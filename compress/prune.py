"""Structured channel pruning with torch-pruning's dependency graph, saved as a replayable edit.

A pruned model is stored as its original spec plus a ``prune_channels`` edit holding the new
shape of every changed parameter/buffer and every changed integer attribute (``out_channels``,
``embed_dim``, ``hidden_dim`` ...). Replaying the edit on a freshly built model reshapes it so the
saved state dict loads strictly: no pickled modules, works for convnets and ViTs alike.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from edgeslim.errors import InputError, StageError, unknown_name
from edgeslim.models.edits import record_edit, register_edit

IMPORTANCES = ("l1", "l2", "bn_scale", "taylor", "random")

# Leaf modules whose channels torch-pruning knows how to remove. A leaf with parameters that is
# not one of these is a custom op: torch-pruning would guess its channel dimension silently.
_SUPPORTED_LEAVES: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.PReLU,
    nn.Embedding,
    nn.MultiheadAttention,
    nn.LSTM,
)
_ATTR_TYPES = (int, bool, float)  # float: attention scale after head pruning


def make_importance(name: str) -> Any:
    """torch-pruning importance for ``l1``, ``l2``, ``bn_scale``, ``taylor``, ``random``."""
    import torch_pruning as tp

    imp = tp.importance
    table: dict[str, Callable[[], Any]] = {
        "l1": lambda: imp.GroupMagnitudeImportance(p=1),
        "l2": lambda: imp.GroupMagnitudeImportance(p=2),
        "bn_scale": lambda: imp.BNScaleImportance(),
        "taylor": lambda: imp.GroupTaylorImportance(),
        "random": lambda: imp.RandomImportance(),
    }
    if name not in table:
        raise unknown_name("pruning importance", name, table)
    return table[name]()


def resolve_layers(model: nn.Module, names: list[str]) -> list[nn.Module]:
    """Modules for the given dotted names; an unknown name is an InputError with suggestions."""
    mods = dict(model.named_modules())
    out = []
    for n in names:
        if n not in mods:
            raise unknown_name("layer", n, [k for k in mods if k])
        out.append(mods[n])
    return out


def check_prunable(model: nn.Module, ignored: list[str]) -> None:
    """Raise a one-line InputError naming the first custom layer torch-pruning cannot handle."""
    for name, mod in model.named_modules():
        if any(name == i or name.startswith(i + ".") for i in ignored):
            continue
        if list(mod.children()) or not list(mod.parameters(recurse=False)):
            continue
        if not isinstance(mod, _SUPPORTED_LEAVES):
            raise InputError(
                f"cannot prune safely: layer '{name}' is a custom op ({type(mod).__name__}) "
                "with its own "
                "parameters that torch-pruning has no rule for; add it to prune.ignored_layers "
                f"(keeps its channels and its neighbours'), or replace it with standard layers"
            )


def _head_names(model: nn.Module) -> list[str]:
    from edgeslim.models.surgery import find_head

    return [find_head(model)[0]]


def is_qkv_attention(mod: nn.Module) -> bool:
    """timm-style attention: one ``qkv`` Linear, ``num_heads`` and ``head_dim`` attributes.

    Covers timm's ViT / DeiT / MobileViT ``Attention``; its forward reshapes the qkv output with
    ``num_heads`` and ``head_dim`` (and ``attn_dim``), which :func:`sync_model_attrs` updates.
    """
    return (isinstance(getattr(mod, "qkv", None), nn.Linear) and isinstance(getattr(mod, "num_heads", None), int)
            and isinstance(getattr(mod, "head_dim", None), int))


def attention_heads(model: nn.Module) -> dict[nn.Module, int]:
    """``num_heads`` per attention projection so head dims are pruned consistently."""
    heads: dict[nn.Module, int] = {}
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            heads[m] = m.num_heads
        elif is_qkv_attention(m):
            heads[m.qkv] = m.num_heads
    return heads


def check_attention(model: nn.Module, ignored: list[str]) -> None:
    """Refuse attention layers whose head layout torch-pruning would break, naming the fix.

    An attention module edgeslim does not know (a ``num_heads`` attribute, but neither
    ``nn.MultiheadAttention`` nor a timm-style ``qkv`` projection) reshapes by head count in its
    forward; pruning its projections would make that reshape fail at run time.
    """
    for name, mod in model.named_modules():
        if not name or any(name == i or name.startswith(i + ".") for i in ignored):
            continue
        if not isinstance(getattr(mod, "num_heads", None), int) or isinstance(mod, nn.MultiheadAttention):
            continue
        if is_qkv_attention(mod) or not any(isinstance(c, nn.Linear) for c in mod.children()):
            continue
        raise InputError(
            f"cannot prune safely: attention layer '{name}' ({type(mod).__name__}) splits its projections "
            "into heads in a way torch-pruning cannot update (no single qkv Linear); add it to "
            f"prune.ignored_layers (e.g. ignored_layers: [{name}, ...]: its heads keep their width)"
        )


def unwrapped_parameters(model: nn.Module) -> list[tuple[nn.Parameter, int]]:
    """Parameters held directly by container modules (ViT ``cls_token``, ``pos_embed``): the
    channel dimension is the last one, as torch-pruning's own timm ViT example prunes them."""
    out = []
    for mod in model.modules():
        if isinstance(mod, _SUPPORTED_LEAVES) or not list(mod.children()):
            continue
        for p in mod.parameters(recurse=False):
            if p.dim() >= 2:
                out.append((p, p.dim() - 1))
    return out


def build_pruner(
    model: nn.Module,
    example: torch.Tensor,
    importance: str,
    ratio: float,
    *,
    global_pruning: bool = False,
    round_to: int | None = 8,
    ignored: list[str] | None = None,
    steps: int = 1,
    max_ratio: float = 0.95,
) -> Any:
    """A torch-pruning MetaPruner over ``model`` (head and ``ignored`` layers kept)."""
    import torch_pruning as tp

    ignored = list(ignored if ignored is not None else _head_names(model))
    check_prunable(model, ignored)
    check_attention(model, ignored)
    ign = resolve_layers(model, ignored)
    heads = attention_heads(model)
    # Head dims only: keeps num_heads valid and rounding applies per head group.
    try:
        return tp.pruner.MetaPruner(
            model,
            example,
            importance=make_importance(importance),
            global_pruning=global_pruning,
            pruning_ratio=ratio,
            iterative_steps=steps,
            ignored_layers=ign,
            round_to=round_to,
            num_heads=heads,
            unwrapped_parameters=unwrapped_parameters(model),
            prune_head_dims=True,
            prune_num_heads=False,
            max_pruning_ratio=max_ratio,
        )
    except (RuntimeError, KeyError, IndexError, ValueError, AttributeError) as exc:
        raise StageError(
            f"torch-pruning could not trace the model: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}"
        ) from exc


# ---------------------------------------------------------------------------------------------
# Shape snapshot / replay: the pruned structure as a JSON-able edit


def _attrs(model: nn.Module) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, mod in model.named_modules():
        d = {}
        for k, v in vars(mod).items():
            if k.startswith("_") and k != "_qkv_same_embed_dim":
                continue
            if isinstance(v, _ATTR_TYPES) or (
                isinstance(v, tuple) and v and all(isinstance(i, int) for i in v)
            ):
                d[k] = v
        out[name] = d
    return out


def _shapes(model: nn.Module) -> dict[str, list[int]]:
    sd = dict(model.named_parameters())
    sd.update(dict(model.named_buffers()))
    return {k: list(v.shape) for k, v in sd.items()}


def snapshot(model: nn.Module) -> dict[str, Any]:
    return {"shapes": _shapes(model), "attrs": _attrs(model)}


def structure_edit(before: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """The ``prune_channels`` edit that turns the ``before`` structure into ``model``'s."""
    after = snapshot(model)
    shapes = {k: v for k, v in after["shapes"].items() if before["shapes"].get(k) != v}
    attrs: dict[str, dict[str, Any]] = {}
    for mod, d in after["attrs"].items():
        old = before["attrs"].get(mod, {})
        diff = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if old.get(k) != v
        }
        if diff:
            attrs[mod] = diff
    return {"op": "prune_channels", "shapes": shapes, "attrs": attrs}


@register_edit("prune_channels")
def _apply_prune_channels(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    # Tensors are resized to empty ones of the recorded shape: the saved state dict fills them.
    for full, shape in edit.get("shapes", {}).items():
        mod_name, _, attr = full.rpartition(".")
        mod = model.get_submodule(mod_name) if mod_name else model
        old = getattr(mod, attr)
        new = torch.zeros(shape, dtype=old.dtype)
        if isinstance(old, nn.Parameter):
            setattr(mod, attr, nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            mod._buffers[attr] = new
    for mod_name, d in edit.get("attrs", {}).items():
        mod = model.get_submodule(mod_name) if mod_name else model
        for k, v in d.items():
            setattr(mod, k, tuple(v) if isinstance(getattr(mod, k, None), tuple) else v)
    return model


def sync_model_attrs(model: nn.Module) -> None:
    """Fix attributes torch-pruning does not know about.

    torchvision ViT's ``hidden_dim``; timm attention's ``head_dim`` / ``attn_dim`` / ``scale``
    (heads are kept, their width shrinks: ``head_dim = qkv.out_features / (3 * num_heads)``).
    """
    for mod in model.modules():
        tok = getattr(mod, "class_token", None)
        if isinstance(tok, torch.Tensor) and hasattr(mod, "hidden_dim"):
            mod.hidden_dim = int(tok.shape[-1])
        if is_qkv_attention(mod):
            mod.head_dim = int(mod.qkv.out_features // (3 * mod.num_heads))
            if isinstance(getattr(mod, "attn_dim", None), int):
                mod.attn_dim = mod.num_heads * mod.head_dim
            if isinstance(getattr(mod, "scale", None), float):
                # Same softmax temperature as the fused kernel, which scales by the actual head width.
                mod.scale = mod.head_dim**-0.5


# ---------------------------------------------------------------------------------------------
# Verification and reporting


@contextmanager
def _track_layers(model: nn.Module) -> Iterator[list[str]]:
    stack: list[str] = []
    handles = []
    for name, mod in model.named_modules():
        if name and not list(mod.children()):
            handles.append(mod.register_forward_pre_hook(lambda m, a, n=name: stack.append(n)))
    try:
        yield stack
    finally:
        for h in handles:
            h.remove()


def verify_forward(model: nn.Module, example: torch.Tensor) -> None:
    """Run the pruned model once; a failure names the layer that broke."""
    model.eval()
    with _track_layers(model) as stack, torch.no_grad():
        try:
            model(example)
        except Exception as exc:  # any op can fail on a shape torch-pruning got wrong
            where = stack[-1] if stack else "(model input)"
            mod = model.get_submodule(where) if stack else model
            raise StageError(
                f"pruned model fails at layer '{where}' ({type(mod).__name__}): "
                f"{str(exc).splitlines()[0][:200]}; {_fix_for(model, where)}"
            ) from exc


def _fix_for(model: nn.Module, where: str) -> str:
    """The option that fixes a failure at ``where``: ignore the enclosing attention module if any."""
    parts = where.split(".")
    for i in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:i])
        if isinstance(getattr(model.get_submodule(name), "num_heads", None), int):
            return (f"it sits in attention module '{name}', whose head layout was not updated: add "
                    f"'{name}' to prune.ignored_layers")
    return "add that layer (or the custom op feeding it) to prune.ignored_layers"


def channel_table(before: dict[str, Any], model: nn.Module) -> list[dict[str, Any]]:
    """Per-layer output channels before/after for Conv/Linear layers (and attention)."""
    rows = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.modules.conv._ConvNd):
            key, now = "out_channels", mod.out_channels
        elif isinstance(mod, nn.Linear):
            key, now = "out_features", mod.out_features
        elif isinstance(mod, nn.MultiheadAttention):
            key, now = "embed_dim", mod.embed_dim
        else:
            continue
        was = before["attrs"].get(name, {}).get(key, now)
        rows.append(
            {
                "layer": name,
                "type": type(mod).__name__,
                "before": int(was),
                "after": int(now),
                "kept": round(now / max(was, 1), 3),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------
# One pruning step and the ratio search


def prune_once(
    model: nn.Module,
    example: torch.Tensor,
    importance: str,
    ratio: float,
    grad_fn: Callable[[nn.Module], None] | None = None,
    **kw: Any,
) -> nn.Module:
    """Prune ``model`` in place by channel ``ratio`` (one shot)."""
    pruner = build_pruner(model, example, importance, ratio, **kw)
    if importance == "taylor" and grad_fn is not None:
        grad_fn(model)
    pruner.step()
    sync_model_attrs(model)
    return model


def measure(model: nn.Module, example: torch.Tensor, by: str) -> int:
    from edgeslim.measure import count_macs, count_params

    return count_macs(model, tuple(example.shape[1:])) if by == "macs" else count_params(model)


def search_ratio(
    model: nn.Module,
    example: torch.Tensor,
    importance: str,
    goal: int,
    by: str,
    iters: int = 9,
    **kw: Any,
) -> float:
    """Smallest channel ratio whose one-shot prune brings ``by`` (macs|params) to <= ``goal``."""
    # Random importance is searched with L1 (deterministic probe); the real step uses it.
    probe_imp = "l1" if importance in ("random", "taylor") else importance
    lo, hi = 0.0, kw.get("max_ratio", 0.95)
    best = hi
    for _ in range(iters):
        mid = (lo + hi) / 2
        trial = prune_once(copy.deepcopy(model), example, probe_imp, mid, **kw)
        if measure(trial, example, by) <= goal:
            best, hi = mid, mid
        else:
            lo = mid
    return best


def pruned_copy_with_width(
    model: nn.Module, example: torch.Tensor, width: float, round_to: int | None = 8
) -> nn.Module:
    """A width-reduced copy (keeps ``width`` of the channels by L1), as an edit."""
    student = copy.deepcopy(model)
    before = snapshot(student)
    prune_once(student, example, "l1", 1.0 - width, round_to=round_to)
    return record_edit_after(student, before)


def record_edit_after(model: nn.Module, before: dict[str, Any]) -> nn.Module:
    """Record the structural change since ``before`` as a replayable edit on ``model``'s spec."""
    edit = structure_edit(before, model)
    # The structure is already applied; record_edit re-applies it, which is a no-op on equal shapes
    # except for re-zeroing, so keep the weights and restore them after.
    state = copy.deepcopy(model.state_dict())
    model = record_edit(model, edit)
    model.load_state_dict(state)
    return model
