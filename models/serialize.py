"""Save and reload a model as spec + state dict (loaded with ``weights_only=True``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from edgeslim.errors import CheckpointError
from edgeslim.fsutil import atomic_torch_save
from edgeslim.models.edits import apply_edit, get_spec, set_spec

FORMAT = "edgeslim.model/1"


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Build the architecture a spec describes (random weights), replaying its edits."""
    from edgeslim.models.registry import create_model

    model = create_model(
        spec["source"], num_classes=spec.get("base_num_classes"), in_chans=spec.get("in_chans", 3),
        **spec.get("kwargs", {}),
    )
    for edit in spec.get("edits", []):
        model = apply_edit(model, edit)
    return set_spec(model, spec)


def save_model(model: nn.Module, path: str | Path) -> Path:
    """Write ``model.pt`` atomically: format tag, spec, state dict."""
    return atomic_torch_save(path, {"format": FORMAT, "spec": get_spec(model), "state_dict": model.state_dict()})


def load_model(path: str | Path) -> nn.Module:
    """Reload a model saved by :func:`save_model`; never unpickles code."""
    from edgeslim.models.checkpoint import load_state_strict, safe_torch_load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file '{path}' does not exist")
    obj = safe_torch_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(
            f"'{path}' is not an edgeslim model file (expected format {FORMAT}); "
            "for a plain state dict use --checkpoint with an architecture name"
        )
    model = build_from_spec(obj["spec"])
    load_state_strict(model, obj["state_dict"], source=f"'{path}'")
    return model.eval()
