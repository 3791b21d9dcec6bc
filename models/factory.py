"""Build the pipeline's starting model from the recipe's ``model:`` section."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import nn

from edgeslim.errors import InputError, did_you_mean
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


# Keys of model.kwargs that edgeslim itself passes to every builder: given again they collide
# ("got multiple values for argument") deep inside the first stage.
_RESERVED_KWARGS = {
    "num_classes": "the head size comes from the data's classes (or the checkpoint's head); drop it",
    "weights": "use model.weights (torchvision) or model.checkpoint",
    "pretrained": "edgeslim never downloads weights; give model.checkpoint (a local file)",
}
_ZOO_KINDS = ("builtin", "torchvision", "timm")


def check_model_kwargs(spec: ModelSpec, run_user_code: bool = False) -> None:
    """Refuse ``model.kwargs`` the builder cannot take, in one line, before anything is written.

    Names are checked against the builder's signature (``inspect.signature``: did-you-mean and
    the accepted arguments); a value whose type cannot fit the argument's default (``width:
    "wide"`` for an int) is named; then a zoo model (built-in, torchvision, timm) is built on the
    meta device (no memory, no weights; on the CPU where a builder cannot run on meta) so any
    other error of the builder is reported here, not by the first stage. A user's file or
    module is imported only with ``run_user_code`` (preflight, not ``validate``): importing it
    runs it.

    Raises:
        InputError: ``model.kwargs...: <what>; <what it takes>``.

    >>> from edgeslim.recipe import ModelSpec
    >>> check_model_kwargs(ModelSpec(source="tinycnn", kwargs={"widht": 8}))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    edgeslim.errors.InputError: model.kwargs: 'widht' is not an argument of tinycnn (did you mean 'width'?); ...
    """
    from edgeslim.models.source_registry import source_info

    info = source_info(spec.source)
    if not spec.kwargs or not info.editable or info.kind in ("edgeslim", "object"):
        return  # a saved model refuses kwargs itself (_from_saved); an object takes none
    if info.kind not in _ZOO_KINDS and not run_user_code:
        return
    for key, why in _RESERVED_KWARGS.items():
        if key in spec.kwargs:
            raise InputError(f"model.kwargs.{key}: edgeslim sets this itself; {why}")
    fn, where = _builder_of(info)
    params, open_ended = _params(fn)
    if open_ended and info.kind in _ZOO_KINDS:
        # Zoo builders pass **kwargs on to the model's class: its constructor says what goes.
        cls_params = _class_params(spec)
        params, open_ended = ({**params, **cls_params[0]}, cls_params[1]) if cls_params else (params, True)
    # timm's builder also takes its own options (features_only, drop_rate...) that no signature
    # lists: its names are judged by building, not by the signature.
    if not open_ended and info.kind != "timm":
        _check_names(spec.kwargs, params, where)
    _check_types(spec.kwargs, params, where)
    if info.kind in _ZOO_KINDS:
        _probe_build(spec, where, params)


def _builder_of(info: SourceInfo) -> tuple[Callable[..., Any], str]:
    """(the callable model.kwargs go to, its display name)."""
    if info.kind == "builtin":
        from edgeslim.models.registry import get_builder

        return get_builder(info.target), info.target
    if info.kind == "torchvision":
        import torchvision

        return torchvision.models.get_model_builder(info.target), info.source
    if info.kind == "timm":
        from edgeslim.errors import require

        return require("timm", "timm").models.get_model_entrypoint(info.target), info.source  # type: ignore[attr-defined]
    from edgeslim.models.userfile import builder_for, origin_of

    return builder_for(origin_of(info.kind, info.target))


def _params(fn: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """(the keyword arguments ``fn`` names, whether it also takes ``**kwargs``)."""
    try:
        ps = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return {}, True
    named = {n: p for n, p in ps.items() if n != "self"
             and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return named, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ps.values())


def _takes(params: dict[str, inspect.Parameter]) -> str:
    shown = [n for n in params if n not in ("self", "num_classes")]
    return "it takes: " + (", ".join(shown) or "no arguments")


def _check_names(kwargs: dict[str, Any], params: dict[str, inspect.Parameter], where: str) -> None:
    for key in kwargs:
        if key not in params and key != "in_chans":  # in_chans is only passed when it is taken
            raise InputError(f"model.kwargs: '{key}' is not an argument of {where}{did_you_mean(key, params)}; "
                             f"{_takes(params)}")


def _check_types(kwargs: dict[str, Any], params: dict[str, inspect.Parameter], where: str) -> None:
    """A value that cannot be what the argument's default is (a string for a number, ...)."""
    for key, value in kwargs.items():
        p = params.get(key)
        default = None if p is None else p.default
        if isinstance(default, bool) or not isinstance(default, (int, float)) or value is None:
            continue  # only numeric defaults say clearly what the argument takes
        integral = isinstance(default, int)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            not integral or float(value).is_integer())
        if not ok:
            want = "an integer" if integral else "a number"
            raise InputError(f"model.kwargs.{key}: given {value!r} ({type(value).__name__}), but {key} of {where} "
                             f"takes {want} (default {default!r}); e.g. {key}: {default!r}")


def _probe_build(spec: ModelSpec, where: str, params: dict[str, inspect.Parameter]) -> None:
    """Build the architecture with the kwargs on the meta device (CPU if it cannot): any error
    is the user's kwargs, said in one line."""
    import torch

    from edgeslim.models.registry import create_model

    kwargs = {k: v for k, v in spec.kwargs.items() if k != "in_chans"}
    in_ch = spec.kwargs.get("in_chans", 3)
    try:
        with torch.device("meta"):
            create_model(spec.source, None, in_ch, **kwargs)
        return
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - some builders cannot run on meta (.item() in __init__): try the CPU
        pass
    try:
        create_model(spec.source, None, in_ch, **kwargs)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a builder can raise anything for bad arguments
        raise InputError(_build_failure(spec, where, params, exc)) from exc


def _build_failure(spec: ModelSpec, where: str, accepted: dict[str, inspect.Parameter],
                   exc: BaseException) -> str:
    import re

    text = (str(exc).strip().splitlines() or [""])[0][:200]
    unknown = re.search(r"unexpected keyword argument '(\w+)'", text)
    if unknown and accepted:
        key = unknown.group(1)
        return (f"model.kwargs: '{key}' is not an argument of {where}{did_you_mean(key, accepted)}; "
                f"{_takes(accepted)}")
    takes = f"; {_takes(accepted)}" if accepted else ""
    return (f"model.kwargs {spec.kwargs} do not fit {where}: {type(exc).__name__}: {text}{takes}; "
            "fix or drop the keys named")


def _class_params(spec: ModelSpec) -> tuple[dict[str, inspect.Parameter], bool] | None:
    """The constructor arguments of the class a zoo builder makes (torchvision/timm builders
    take ``**kwargs`` and pass them on): found by building the default model on meta."""
    import torch

    from edgeslim.models.registry import create_model

    try:
        with torch.device("meta"):
            cls = type(create_model(spec.source, None, 3))
    except Exception:  # noqa: BLE001 - only a better message is lost
        return None
    return _params(cls.__init__)
