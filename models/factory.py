"""Build the pipeline's starting model from the recipe's ``model:`` section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from edgeslim.models.edits import record_edit, set_spec

if TYPE_CHECKING:
    from edgeslim.recipe import ModelSpec


def model_from_spec(spec: ModelSpec, in_chans: int, num_classes: int) -> nn.Module:
    """Create the model, load its weights (cache or local checkpoint), size the head.

    The returned model carries a spec (source, kwargs, base head size, edits) so every later
    stage can save it as architecture + state and reload it without pickled code.
    """
    from edgeslim.models.checkpoint import load_state_dict_file, load_state_strict
    from edgeslim.models.registry import create_model, split_source
    from edgeslim.models.surgery import find_head, num_classes_of

    src, _ = split_source(spec.source)
    kwargs = dict(spec.kwargs)
    if src == "builtin":
        kwargs.setdefault("in_chans", in_chans)
    in_ch = kwargs.pop("in_chans", 3)
    if spec.weights:
        model = create_model(spec.source, None, in_ch, weights=spec.weights, **kwargs)
    elif spec.checkpoint:
        state = load_state_dict_file(spec.checkpoint)
        probe = create_model(spec.source, None, in_ch, **kwargs)
        head_name, _ = find_head(probe)
        w = state.get(f"{head_name}.weight")
        base = int(w.shape[0]) if w is not None else None
        model = create_model(spec.source, base, in_ch, **kwargs)
        load_state_strict(model, state, source=f"checkpoint '{spec.checkpoint}'")
    else:
        model = create_model(spec.source, num_classes, in_ch, **kwargs)
    base_classes = num_classes_of(model)
    set_spec(model, {"source": spec.source, "kwargs": kwargs, "in_chans": in_ch,
                     "base_num_classes": base_classes, "edits": []})
    if base_classes != num_classes:
        model = record_edit(model, {"op": "replace_head", "num_classes": num_classes, "init": spec.head_init})
    return model
