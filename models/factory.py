"""Build the pipeline's starting model from the recipe's ``model:`` section."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from edgeslim.errors import InputError
from edgeslim.models.edits import record_edit, set_spec

if TYPE_CHECKING:
    from edgeslim.models.source_registry import SourceInfo
    from edgeslim.recipe import ModelSpec

_TAKES_IN_CHANS = ("builtin", "pyfile", "module")


def model_from_spec(spec: ModelSpec, in_chans: int, num_classes: int) -> nn.Module:
    """Create the model, load its weights (cache or local checkpoint), size the head.

    The returned model carries a spec (source, origin, kwargs, base head size, edits) so every
    later stage can save it as architecture + state and reload it without pickled code. A
    user's file is recorded by absolute path and SHA-256 (``origin``), so the saved model
    reopens from any working directory.

    Raises:
        InputError: a frozen source (ONNX, ExportedProgram, TorchScript), which has no
            editable module; open it with :func:`edgeslim.models.frozen.open_frozen`.
    """
    from edgeslim.models.source_registry import source_info

    info = source_info(spec.source)
    if not info.editable:
        from edgeslim.models.sources import other_model

        other_model(info.kind, info.target, spec.source, None, in_chans, {})  # raises the frozen message
    if info.kind == "edgeslim":
        return _from_saved(spec, info, num_classes)
    kwargs = dict(spec.kwargs)
    if info.kind in _TAKES_IN_CHANS:
        kwargs.setdefault("in_chans", in_chans)
    in_ch = kwargs.pop("in_chans", in_chans if info.kind == "object" else 3)
    base_spec = {"source": spec.source, "kwargs": kwargs, "in_chans": in_ch, "edits": []}
    origin = _origin(info)
    if origin:
        base_spec["origin"] = origin
    if spec.checkpoint:
        model = _with_checkpoint(spec, base_spec, in_ch, kwargs)
    else:
        from edgeslim.models.registry import create_model
        from edgeslim.models.surgery import num_classes_of

        n = None if spec.weights else num_classes
        model = create_model(spec.source, n, in_ch, weights=spec.weights, **kwargs)
        # The head size the builder really made (a user's class may not take num_classes).
        set_spec(model, {**base_spec, "base_num_classes": num_classes_of(model)})
    return _size_head(model, num_classes, spec.head_init)


def _origin(info: SourceInfo) -> dict[str, Any] | None:
    if info.kind in ("pyfile", "module"):
        from edgeslim.models.userfile import origin_of

        return origin_of(info.kind, info.target)
    if info.kind == "object":
        from edgeslim.models.sources import _OBJECTS
        from edgeslim.models.userfile import object_origin

        obj = _OBJECTS.get(info.target)
        return object_origin(obj) if obj is not None else None
    return None


def _with_checkpoint(spec: ModelSpec, base_spec: dict[str, Any], in_ch: int, kwargs: dict[str, Any]) -> nn.Module:
    """Build with the checkpoint's head size (when the builder takes num_classes), then load strictly."""
    from edgeslim.models.checkpoint import load_state_dict_file, load_state_strict
    from edgeslim.models.registry import create_model
    from edgeslim.models.surgery import find_head, num_classes_of

    state = load_state_dict_file(spec.checkpoint)
    probe = create_model(spec.source, None, in_ch, **kwargs)
    head_name, _ = find_head(probe)
    w = state.get(f"{head_name}.weight")
    base = int(w.shape[0]) if w is not None else None
    model = create_model(spec.source, base, in_ch, **kwargs) if base is not None else probe
    set_spec(model, {**base_spec, "base_num_classes": num_classes_of(model)})
    if base is not None and num_classes_of(model) != base:
        # A builder without a num_classes argument: resize its head to the checkpoint's, as an edit.
        model = record_edit(model, {"op": "replace_head", "num_classes": base, "init": "default"})
    load_state_strict(model, state, source=f"checkpoint '{spec.checkpoint}'")
    return model


def _from_saved(spec: ModelSpec, info: SourceInfo, num_classes: int) -> nn.Module:
    """An edgeslim model.pt as a source: its own spec (origin, edits) carries on."""
    from edgeslim.models.serialize import load_model

    if spec.checkpoint or spec.weights or spec.kwargs:
        raise InputError(
            f"model.source '{spec.source}' is a saved edgeslim model with its own weights and architecture; "
            "drop model.checkpoint, model.weights and model.kwargs"
        )
    return _size_head(load_model(info.target).train(), num_classes, spec.head_init)


def _size_head(model: nn.Module, num_classes: int, init: str) -> nn.Module:
    from edgeslim.models.surgery import num_classes_of

    if num_classes_of(model) != num_classes:
        model = record_edit(model, {"op": "replace_head", "num_classes": num_classes, "init": init})
    return model


def model_from_object(module: nn.Module, in_chans: int, num_classes: int, head_init: str = "default") -> nn.Module:
    """An nn.Module handed over in Python as the starting model (``edgeslim.run(recipe, model=m)``).

    It is registered as an ``object:`` source for this process; its spec's origin says how to
    rebuild it later (its class's module or file), see ``userfile.object_origin``.
    """
    from edgeslim.models.sources import register_object
    from edgeslim.recipe import ModelSpec

    source = register_object(module)
    return model_from_spec(ModelSpec(source=source, head_init=head_init), in_chans, num_classes)


def starting_model(spec: ModelSpec, in_chans: int, num_classes: int) -> Any:
    """The recipe's starting model: an editable nn.Module, or an opened ``FrozenModel``.

    What a stage gets when it comes first in a recipe (no earlier stage made a model).
    """
    from edgeslim.models.source_registry import source_info

    info = source_info(spec.source)
    if not info.editable:
        from edgeslim.models.frozen import open_frozen

        return open_frozen(info)
    return model_from_spec(spec, in_chans, num_classes)
