"""Opening any model source for a look (``edgeslim info``), a benchmark or an export.

:func:`open_model` takes every form ``model.source`` takes (see ``source_registry``) plus an
edgeslim ``model.pt`` and returns the model with the input shape it expects; ONNX files come back
without a torch module (their graph is what runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from edgeslim.models.frozen import FrozenModel


@dataclass
class OpenedModel:
    """A model opened from a source: ``model`` is None for an ONNX file (see ``frozen``)."""

    source: str
    kind: str
    model: nn.Module | None
    input_shape: tuple[int, int, int]
    editable: bool = True
    frozen: FrozenModel | None = None


def open_model(source: str, checkpoint: str | None = None, num_classes: int | None = None,
               in_chans: int = 3, image_size: int | None = None, kwargs: dict[str, Any] | None = None) -> OpenedModel:
    """Open ``source`` in eval mode with its input shape (C, H, W).

    The image side is ``image_size`` when given, else what the source knows (a frozen graph's
    fixed size, the saved model's kwargs, the zoo's default), else 32.

    >>> m = open_model("tinycnn", num_classes=3)
    >>> m.kind, m.input_shape
    ('builtin', (3, 32, 32))
    """
    from edgeslim.models.source_registry import check_source, default_input_size

    info = check_source(source)
    kwargs = dict(kwargs or {})
    if not info.editable:
        return _open_frozen(info, image_size, checkpoint)
    if info.kind == "edgeslim":
        return _open_saved(source, info.target, image_size, checkpoint)
    from edgeslim.models.registry import create_model

    size = image_size or default_input_size(source, kwargs) or 32
    if info.kind in ("builtin",) and "image_size" not in kwargs and _takes_image_size(info.target):
        kwargs["image_size"] = size
    in_ch = in_chans if info.kind in ("builtin", "pyfile", "module", "timm") else 3
    model = create_model(source, num_classes=None if checkpoint else num_classes, in_chans=in_ch, **kwargs)
    if checkpoint:
        from edgeslim.fsutil import require_file
        from edgeslim.models.checkpoint import load_weights_into

        load_weights_into(model, require_file(checkpoint, "checkpoint"), num_classes=num_classes)
    return OpenedModel(source, info.kind, model.eval(), (in_ch, size, size))


def _takes_image_size(name: str) -> bool:
    return name in ("tinyvit", "test_mlp")  # the built-ins whose layers depend on the image side


def _open_saved(source: str, path: str, image_size: int | None, checkpoint: str | None) -> OpenedModel:
    from edgeslim.errors import InputError
    from edgeslim.models.serialize import load_model
    from edgeslim.models.source_registry import default_input_size

    if checkpoint:
        raise InputError(f"'{source}' is a saved edgeslim model with its own weights; drop --checkpoint")
    model = load_model(path)
    spec = getattr(model, "_edgeslim_spec", {}) or {}
    size = image_size or _run_image_size(Path(path)) or _spec_size(spec, default_input_size) or 32
    return OpenedModel(source, "edgeslim", model, (int(spec.get("in_chans", 3)), int(size), int(size)))


def _spec_size(spec: dict[str, Any], default_input_size: Any) -> int | None:
    try:
        return default_input_size(str(spec.get("source", "")), spec.get("kwargs", {}))
    except Exception:  # an object:/pyfile source named in an old spec: no default size known
        return None


def _run_image_size(model_path: Path) -> int | None:
    """Image size of the recipe that produced a stage's model.pt (runs/<name>/NN-stage/model.pt)."""
    import json

    try:
        return int(json.loads((model_path.parent.parent / "run.json").read_text())["recipe"]["data"]["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _open_frozen(info: Any, image_size: int | None, checkpoint: str | None) -> OpenedModel:
    from edgeslim.errors import InputError
    from edgeslim.models.frozen import open_frozen

    if checkpoint:
        raise InputError(f"'{info.source}' is a frozen {info.kind} graph with its own weights; drop --checkpoint")
    fm = open_frozen(info)
    if fm.input_shape:
        shape = tuple(fm.input_shape)
        if image_size and shape[-1] != image_size:
            raise InputError(f"'{info.source}' takes {shape[-2]}x{shape[-1]} images (fixed in the graph); "
                             f"drop --image-size {image_size} or export the model at that size")
    else:
        shape = (3, image_size or 224, image_size or 224)
    if fm.module is not None and fm.num_classes is None and not fm.input_shape:
        fm = _probe_classes(fm, shape)
    return OpenedModel(info.source, info.kind, fm.module, shape, editable=False, frozen=fm)  # type: ignore[arg-type]


def _probe_classes(fm: FrozenModel, shape: tuple[int, ...]) -> FrozenModel:
    import torch

    with torch.no_grad():
        try:
            fm.num_classes = int(fm.module(torch.zeros(1, *shape)).shape[-1])  # type: ignore[misc]
        except Exception as exc:  # wrong guess of the input size: say which size to give
            from edgeslim.errors import InputError

            raise InputError(f"'{fm.path}' does not run on a 1x{'x'.join(map(str, shape))} input "
                             f"({type(exc).__name__}); pass --image-size N") from exc
    return fm


def load_for_info(name: str, checkpoint: str | None, num_classes: int | None, in_chans: int,
                  image_size: int | None) -> tuple[nn.Module, tuple[int, int, int]]:
    """(model, input shape) for a torch-runnable source; kept for callers that need a module."""
    opened = open_model(name, checkpoint, num_classes, in_chans, image_size)
    if opened.model is None:
        from edgeslim.errors import InputError

        raise InputError(f"'{name}' is an ONNX graph, not a torch model; pass the .onnx file itself")
    return opened.model, opened.input_shape


def describe(model: nn.Module, shape: tuple[int, int, int], depth: int = 2, checkpoint: Path | None = None,
             kind: str | None = None) -> str:
    from edgeslim.measure import count_macs, count_params, state_dict_bytes

    lines = [f"model:  {type(model).__name__}" + (f" ({kind})" if kind else ""),
             f"input:  1x{shape[0]}x{shape[1]}x{shape[2]}",
             f"params: {count_params(model):,}", f"MACs:   {count_macs(model, shape):,}",
             f"size:   {state_dict_bytes(model):,} bytes (fp32 state dict)"]
    if checkpoint:
        lines.append(f"file:   {checkpoint} ({checkpoint.stat().st_size:,} bytes)")
    lines += ["", f"{'layer':<40} {'type':<22} {'params':>12}"]
    for name, mod in model.named_modules():
        if not name or name.count(".") >= depth:
            continue
        n = sum(p.numel() for p in mod.parameters())
        lines.append(f"{name:<40} {type(mod).__name__:<22} {n:>12,}")
    return "\n".join(lines)


def describe_frozen(opened: OpenedModel, macs: int | None) -> str:
    """Summary of a frozen graph: kind, input, params, MACs, classes, file size, what can run on it."""
    from edgeslim.models.source_registry import FROZEN_STAGES

    fm = opened.frozen
    assert fm is not None  # only called for frozen sources
    c, h, w = opened.input_shape
    return "\n".join([
        f"model:  {fm.path.name} ({fm.kind}, frozen)",
        f"input:  1x{c}x{h}x{w}" + ("" if fm.input_shape else " (not fixed by the graph; --image-size)"),
        f"params: {fm.params():,}",
        f"MACs:   {macs:,}" if macs is not None else "MACs:   (not counted)",
        f"classes: {fm.num_classes if fm.num_classes is not None else '(unknown)'}",
        f"file:   {fm.path} ({fm.path.stat().st_size:,} bytes)",
        f"stages: {', '.join(FROZEN_STAGES)} (frozen: no prune / distill / finetune)",
    ])
