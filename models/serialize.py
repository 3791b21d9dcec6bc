"""Save and reload a model as spec + state dict (loaded with ``weights_only=True``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from edgeslim.errors import CheckpointError
from edgeslim.fsutil import atomic_torch_save
from edgeslim.models.edits import apply_edit, get_spec, set_spec

FORMAT = "edgeslim.model/1"


def build_from_spec(spec: dict[str, Any], like: nn.Module | None = None) -> nn.Module:
    """Build the architecture a spec describes (random weights), replaying its edits.

    The base network comes from ``spec["origin"]`` when the model started from a user's file,
    module or object (the file is re-imported from its absolute path; a changed file warns), from
    the registry otherwise, or from ``like`` (a freshly built instance of the same class) when given.
    """
    if like is not None:
        model = copy.deepcopy(like)
    else:
        model = _base_model(spec)
    for edit in spec.get("edits", []):
        model = apply_edit(model, edit)
    return set_spec(model, spec)


def _base_model(spec: dict[str, Any]) -> nn.Module:
    origin = spec.get("origin")
    n, in_ch, kwargs = spec.get("base_num_classes"), spec.get("in_chans", 3), spec.get("kwargs", {})
    if origin and origin.get("kind") in ("pyfile", "module"):
        from edgeslim.models.userfile import build_user_model

        return build_user_model(origin, kwargs, n, in_ch, check_hash=True)
    if origin and origin.get("kind") == "object":
        from edgeslim.models.sources import _OBJECTS
        from edgeslim.models.userfile import build_object_origin

        key = str(spec.get("source", "")).removeprefix("object:")
        if key in _OBJECTS:  # same process: the registered object itself is the architecture
            return copy.deepcopy(_OBJECTS[key])
        model = build_object_origin(origin)
        from edgeslim.models.surgery import num_classes_of, replace_head

        # Built with its class's defaults: give it the head size the object had.
        return replace_head(model, n) if n is not None and num_classes_of(model) != n else model
    from edgeslim.models.registry import create_model

    return create_model(spec["source"], num_classes=n, in_chans=in_ch, **kwargs)


def save_model(model: nn.Module, path: str | Path) -> Path:
    """Write ``model.pt`` atomically: format tag, spec, state dict."""
    return atomic_torch_save(path, {"format": FORMAT, "spec": get_spec(model), "state_dict": model.state_dict()})


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The ``{format, spec, state_dict}`` of an edgeslim model file, read without running code."""
    from edgeslim.models.checkpoint import safe_torch_load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file '{path}' does not exist")
    obj = safe_torch_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(
            f"'{path}' is not an edgeslim model file (expected format {FORMAT}); "
            "for a plain state dict use --checkpoint with an architecture name"
        )
    return obj


def load_model(path: str | Path, like: nn.Module | None = None) -> nn.Module:
    """Reload a model saved by :func:`save_model`; never unpickles code.

    Args:
        path: an edgeslim ``model.pt`` (e.g. ``runs/x/01-prune/model.pt``).
        like: an instance of the starting architecture, for a model that began as an in-memory
            module (``edgeslim.run(recipe, model=m)``) whose class edgeslim cannot import.
    """
    from edgeslim.models.checkpoint import load_state_strict

    obj = read_model_file(path)
    model = build_from_spec(obj["spec"], like)
    load_state_strict(model, obj["state_dict"], source=f"'{path}'")
    return model.eval()
