"""Model sources outside the built-ins: torchvision (with its weights enum) and timm.

Weights are never downloaded: torchvision weights must already be in torch hub's cache, timm
weights come from a local file. A missing file gets an error saying where to put it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeslim.errors import InputError, require, unknown_name


def torchvision_weights_path(arch: str, weights: str) -> tuple[Any, Path]:
    """Resolve a weights enum name to (enum member, expected cache file)."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(arch)
    except (KeyError, ValueError) as exc:
        raise unknown_name("torchvision model", arch, torchvision.models.list_models()) from exc
    names = [m.name for m in enum] + ["DEFAULT"]
    if weights not in names:
        raise unknown_name(f"weights for torchvision:{arch}", weights, names)
    member = enum[weights] if weights != "DEFAULT" else enum.DEFAULT
    fname = member.url.rsplit("/", 1)[-1]
    return member, Path(torch.hub.get_dir()) / "checkpoints" / fname


def torchvision_model(arch: str, num_classes: int | None, weights: str | None, **kwargs: Any) -> nn.Module:
    import torchvision

    if arch not in torchvision.models.list_models():
        raise unknown_name("torchvision model", arch, torchvision.models.list_models(module=torchvision.models))
    if not weights:
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        return torchvision.models.get_model(arch, weights=None, **kwargs)
    member, path = torchvision_weights_path(arch, weights)
    if not path.is_file():
        raise InputError(
            f"torchvision:{arch} weights {member} are not in the local cache and edgeslim never "
            f"downloads; fetch {member.url} on a connected machine and place it at {path}"
        )
    # Build with the weights' own head, load the cached file safely, then swap the head.
    n_cat = len(member.meta.get("categories", [])) or None
    model = torchvision.models.get_model(arch, weights=None, **({"num_classes": n_cat} if n_cat else {}), **kwargs)
    from edgeslim.models.checkpoint import load_state_dict_file, load_state_strict

    load_state_strict(model, load_state_dict_file(path), source=str(path))
    if num_classes is not None and n_cat != num_classes:  # keep the pretrained head when it fits
        from edgeslim.models.surgery import replace_head

        replace_head(model, num_classes)
    return model


def timm_model(arch: str, num_classes: int | None, in_chans: int, **kwargs: Any) -> nn.Module:
    timm = require("timm", "timm")
    if not timm.list_models(arch):
        raise unknown_name("timm model", arch, timm.list_models(f"*{arch[:3]}*")[:50])
    kw = dict(kwargs)
    if num_classes is not None:
        kw["num_classes"] = num_classes
    # pretrained=False: weights come only from a local weights_file (see create_model).
    return timm.create_model(arch, pretrained=False, in_chans=in_chans, **kw)


# ---------------------------------------------------------------------------------------------
# Sources beyond the zoos: a user's file or module, an in-memory object, an edgeslim model.pt

_OBJECTS: dict[str, nn.Module] = {}


def register_object(model: nn.Module) -> str:
    """Make an in-memory nn.Module a model source for this process: returns ``object:<key>``.

    The key carries the class name and a hash of its structure and weights, so two different
    modules never share a stage cache.
    """
    import hashlib
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    digest = hashlib.sha256(repr(model).encode() + buf.getvalue()).hexdigest()[:12]
    key = f"{type(model).__name__}-{digest}"
    _OBJECTS[key] = model
    return f"object:{key}"


def other_model(kind: str, target: str, name: str, num_classes: int | None, in_chans: int,
                kwargs: dict[str, Any]) -> nn.Module:
    """Build a pyfile / module / object / edgeslim source; frozen graphs are refused."""
    import copy

    from edgeslim.models.source_registry import FROZEN_STAGES

    if kind in ("pyfile", "module"):
        from edgeslim.models.userfile import build_user_model, origin_of

        return build_user_model(origin_of(kind, target), kwargs, num_classes, in_chans)
    if kind == "object":
        if target not in _OBJECTS:
            raise InputError(f"model source '{name}' names no object registered in this process; pass the "
                             "module again: edgeslim.run(recipe, model=my_module)")
        return copy.deepcopy(_OBJECTS[target])
    if kind == "edgeslim":
        from edgeslim.models.serialize import load_model

        if kwargs:
            raise InputError(f"'{name}' is a saved model: its architecture is fixed; drop model.kwargs {kwargs}")
        return load_model(target)
    raise InputError(
        f"'{name}' is a frozen {kind} graph: it runs as it is but is not an editable nn.Module; stages "
        f"that can use it: {', '.join(FROZEN_STAGES)}; to prune or train it, give its Python class "
        "(path/to/file.py:ClassName) and its weights (checkpoint)"
    )
