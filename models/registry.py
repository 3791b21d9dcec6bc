"""A registry of named model builders (timm-style ``register_model`` / ``create_model``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from torch import nn

from edgeslim.errors import InputError, unknown_name

Builder = Callable[..., nn.Module]
_BUILDERS: dict[str, Builder] = {}
SOURCES = ("builtin", "torchvision", "timm")  # zoo prefixes; every form: source_registry.FORMS


def register_model(name: str | None = None) -> Callable[[Builder], Builder]:
    """Register a builder ``fn(num_classes=..., in_chans=..., **kw) -> nn.Module``.

    >>> @register_model("doc_example_net")
    ... def _b(num_classes=10, in_chans=3):
    ...     return nn.Linear(in_chans, num_classes)
    >>> "doc_example_net" in list_models("doc_*")
    True
    """

    def deco(fn: Builder) -> Builder:
        key = name or fn.__name__
        if key in _BUILDERS:
            raise ValueError(f"model '{key}' is already registered")
        _BUILDERS[key] = fn
        return fn

    return deco


def list_models(pattern: str = "*") -> list[str]:
    """Names of the built-in models matching a shell-style pattern.

    >>> "tinycnn" in list_models("tiny*")
    True
    """
    _ensure_builtins()
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def get_builder(name: str) -> Builder:
    """The registered builder of a built-in model (unknown names: InputError with close matches)."""
    _ensure_builtins()
    if name not in _BUILDERS:
        raise unknown_name("model", name, list(_BUILDERS))
    return _BUILDERS[name]


def split_source(name: str) -> tuple[str, str]:
    """``'torchvision:resnet18'`` -> ``('torchvision', 'resnet18')``; bare names are built-ins.

    Other kinds (``pyfile``, ``module``, ``onnx``, ``exported``, ``torchscript``, ``edgeslim``,
    ``object``) come from :mod:`edgeslim.models.source_registry`; an unknown prefix is an
    InputError listing the valid forms. Nothing is imported or run.
    """
    from edgeslim.models.source_registry import check_module_importable, source_info

    info = source_info(name)
    if info.kind == "module":
        check_module_importable(info)
    return info.kind, info.target


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int = 3,
    weights: str | None = None,
    weights_file: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build an editable model from any source that has one (see ``source_registry``).

    Args:
        name: ``tinycnn`` (built-in), ``torchvision:resnet18``, ``timm:resnet18``,
            ``path/to/file.py:Name``, ``package.module:Name`` or an edgeslim ``model.pt``.
        num_classes: classes of the head; the source's default when ``None``. A user's class
            or factory receives it only when its signature has ``num_classes``.
        in_chans: input channels (built-ins, timm, and user builders that take ``in_chans``).
        weights: torchvision weights enum name (``DEFAULT``, ``IMAGENET1K_V1``), from the
            local torch hub cache only; never downloaded.
        weights_file: a local weights file (any source).

    >>> import torch
    >>> m = create_model("tinycnn", num_classes=5)
    >>> m(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 5])
    """
    from edgeslim.models import sources

    src, arch = split_source(name)
    if weights and src != "torchvision":
        raise InputError(
            f"model '{name}' has no named weights '{weights}' (only torchvision:<name> has); "
            "use checkpoint: PATH or weights_file instead"
        )
    if src == "builtin":
        model = _builtin(arch, name, num_classes, in_chans, kwargs)
    elif src == "torchvision":
        model = sources.torchvision_model(arch, num_classes, weights, **kwargs)
    elif src == "timm":
        model = sources.timm_model(arch, num_classes, in_chans, **kwargs)
    else:
        model = sources.other_model(src, arch, name, num_classes, in_chans, kwargs)
    if weights_file:
        from edgeslim.models.checkpoint import load_weights_into

        load_weights_into(model, weights_file, num_classes=num_classes)
    return model


def _builtin(arch: str, name: str, num_classes: int | None, in_chans: int, kwargs: dict[str, Any]) -> nn.Module:
    _ensure_builtins()
    if arch not in _BUILDERS:
        from edgeslim.models.source_registry import FORMS

        raise unknown_name("model", name, list(_BUILDERS), "valid forms: " + ", ".join(FORMS[1:]))
    kw = dict(kwargs)
    if num_classes is not None:
        kw["num_classes"] = num_classes
    return _BUILDERS[arch](in_chans=in_chans, **kw)


def _ensure_builtins() -> None:
    # Importing the module runs its @register_model decorators once.
    from edgeslim.models import builtins  # noqa: F401

