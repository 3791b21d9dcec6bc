"""A user's own architecture: ``path/to/file.py:Name`` or ``package.module:Name``.

``Name`` is an ``nn.Module`` subclass or a factory function returning one. It is called with
``model.kwargs``, plus ``num_classes`` / ``in_chans`` only when its signature names them (so a
class that does not take them is never handed an argument it would reject).

Importing the file runs its top-level code: naming a file as ``model.source`` is the user's
choice to run it, exactly as ``python file.py`` would. Nothing else is ever executed: weights
still load with ``weights_only=True`` or from safetensors.

The model's spec records where it came from (``origin``): the absolute file path and its
SHA-256, or the module name, plus the attribute name, so ``load_model(RUN/NN-stage/model.pt)``
rebuilds it from any working directory. A file that changed since is loaded with a warning
(the saved state dict still has to fit); a file that is gone is a one-line error naming it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from edgeslim.errors import InputError, did_you_mean

_LOADED: dict[tuple[str, str], ModuleType] = {}  # (abs path, sha256) -> module, so classes stay identical


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def import_file(path: str | Path) -> tuple[ModuleType, str]:
    """Import a user's Python file (runs its code); returns (module, sha256 of the file)."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise InputError(f"model file '{path}' does not exist (resolved to {p}); check model.source")
    digest = file_sha256(p)
    key = (str(p), digest)
    if key in _LOADED:
        return _LOADED[key], digest
    name = f"edgeslim_user.{p.stem}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise InputError(f"'{p}' cannot be imported as Python; model.source takes a .py file")
    mod = importlib.util.module_from_spec(spec)
    # dataclasses, typing and pickling look classes up by module name: make it importable.
    parent = sys.modules.setdefault("edgeslim_user", ModuleType("edgeslim_user"))
    sys.modules[name] = mod
    setattr(parent, name.rpartition(".")[2], mod)
    # Siblings of the file (``from layers import Block``) import as they would with `python file.py`.
    sys.path.insert(0, str(p.parent))
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:  # the user's code can raise anything; say where it came from
        sys.modules.pop(name, None)
        raise InputError(
            f"importing '{p}' failed: {type(exc).__name__}: {_first_line(exc)}; "
            "fix the file (it runs as plain Python when edgeslim imports it)"
        ) from exc
    finally:
        if sys.path and sys.path[0] == str(p.parent):
            sys.path.pop(0)
    _LOADED[key] = mod
    return mod, digest


def import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise InputError(
            f"module '{name}' cannot be imported ({exc}); install it or add its folder to PYTHONPATH"
        ) from exc


def resolve_attr(mod: ModuleType, name: str, where: str) -> Any:
    """``Name`` (or ``Outer.Inner``) in ``mod``; a missing one lists the modules/factories there."""
    obj: Any = mod
    for part in name.split("."):
        if not hasattr(obj, part):
            found = candidates(mod)
            raise InputError(
                f"'{where}' has no '{name}'{did_you_mean(name, found)}; nn.Module classes and functions "
                f"defined there: {', '.join(found) or '(none)'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"'{where}:{name}' is a {type(obj).__name__}, not an nn.Module class or factory")
    return obj


def candidates(mod: ModuleType) -> list[str]:
    """Classes (nn.Module subclasses) and functions defined in ``mod`` itself."""
    out = []
    for k, v in vars(mod).items():
        if k.startswith("_") or getattr(v, "__module__", None) != mod.__name__:
            continue
        if (inspect.isclass(v) and issubclass(v, nn.Module)) or inspect.isfunction(v):
            out.append(k)
    return sorted(out)


def call_builder(fn: Any, kwargs: dict[str, Any], num_classes: int | None, in_chans: int | None,
                 where: str) -> nn.Module:
    """Call a class/factory with ``kwargs`` (+ num_classes / in_chans when its signature names them)."""
    kw = dict(kwargs)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if num_classes is not None and "num_classes" in params:
        kw.setdefault("num_classes", num_classes)
    if in_chans is not None and "in_chans" in params:
        kw.setdefault("in_chans", in_chans)
    try:
        model = fn(**kw)
    except Exception as exc:  # the user's constructor can raise anything
        raise InputError(
            f"building '{where}' with {kw} failed: {type(exc).__name__}: {_first_line(exc)}; "
            "check model.kwargs against its signature"
        ) from exc
    if not isinstance(model, nn.Module):
        raise InputError(f"'{where}' returned a {type(model).__name__}, not an nn.Module")
    return model


def origin_of(kind: str, target: str) -> dict[str, Any]:
    """How to rebuild: absolute file + SHA-256 (pyfile) or module name, and the attribute."""
    if kind == "pyfile":
        path, _, name = target.rpartition(":")
        p = Path(path).expanduser().resolve()
        if not p.is_file():
            raise InputError(f"model file '{path}' does not exist (resolved to {p}); check model.source")
        return {"kind": "pyfile", "path": str(p), "sha256": file_sha256(p), "name": name}
    mod, _, name = target.partition(":")
    return {"kind": "module", "module": mod, "name": name}


def builder_for(origin: dict[str, Any], check_hash: bool = False) -> tuple[Any, str]:
    """(class or factory, display name) for an origin; warns when a file changed since."""
    if origin["kind"] == "pyfile":
        p = Path(origin["path"])
        if not p.is_file():
            raise InputError(
                f"this model was built from '{p}:{origin['name']}', which no longer exists; restore the file "
                "(or copy it back to that path) to reopen the model"
            )
        mod, digest = import_file(p)
        if check_hash and origin.get("sha256") and digest != origin["sha256"]:
            warnings.warn(
                f"'{p}' changed since this model was saved (sha256 {origin['sha256'][:12]} -> {digest[:12]}); "
                "loading it anyway: the saved weights must still fit its layers",
                stacklevel=3,
            )
        where = f"{p}:{origin['name']}"
    else:
        mod = import_module(origin["module"])
        where = f"{origin['module']}:{origin['name']}"
    return resolve_attr(mod, origin["name"], where.rpartition(":")[0]), where


def build_user_model(origin: dict[str, Any], kwargs: dict[str, Any], num_classes: int | None,
                     in_chans: int | None, check_hash: bool = False) -> nn.Module:
    fn, where = builder_for(origin, check_hash)
    return call_builder(fn, kwargs, num_classes, in_chans, where)


def object_origin(model: nn.Module) -> dict[str, Any]:
    """Origin of an nn.Module handed over as an object (``edgeslim.run(recipe, model=m)``).

    Rebuildable when its class lives in an importable module or a real file and takes no
    required arguments; otherwise reopening needs ``load_model(path, like=...)``.
    """
    cls = type(model)
    origin: dict[str, Any] = {"kind": "object", "class": f"{cls.__module__}:{cls.__qualname__}"}
    try:
        src = inspect.getsourcefile(cls)
    except TypeError:
        src = None
    if cls.__module__ not in ("__main__", "builtins") and not cls.__module__.startswith("edgeslim_user."):
        origin.update(module=cls.__module__, name=cls.__qualname__)
    elif src and Path(src).is_file() and src.endswith(".py") and "<" not in src:
        origin.update(path=str(Path(src).resolve()), sha256=file_sha256(Path(src)), name=cls.__qualname__)
    origin["default_init"] = _default_init_fits(model)
    return origin


def _default_init_fits(model: nn.Module) -> bool:
    """True when ``type(model)()`` has the same tensors (the classification head aside, which a
    reload resizes): then a reload can rebuild it unaided."""
    from edgeslim.models.surgery import find_head

    try:
        probe = type(model)()
        head = find_head(model)[0] + "."
    except Exception:  # required arguments, a constructor with side conditions, or no head
        return False

    def body(m: nn.Module) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in m.state_dict().items() if not k.startswith(head)}

    return body(model) == body(probe)


def build_object_origin(origin: dict[str, Any]) -> nn.Module:
    """Rebuild an object-origin model with its class's defaults, or say how to reopen it."""
    how = ("reopen it from Python with edgeslim.api.load_model(path, like=YourNet(...)), or put the class "
           "in a file and use model.source: path/to/file.py:YourNet")
    if origin.get("default_init") is False:
        raise InputError(f"this model was made from an in-memory {origin['class']} built with arguments edgeslim "
                         f"did not see; {how}")
    if "module" in origin:
        sub = {"kind": "module", "module": origin["module"], "name": origin["name"]}
    elif "path" in origin:
        sub = {"kind": "pyfile", "path": origin["path"], "sha256": origin.get("sha256"), "name": origin["name"]}
    else:
        raise InputError(f"this model was made from an in-memory nn.Module ({origin['class']}) that edgeslim "
                         f"cannot import; {how}")
    fn, where = builder_for(sub, check_hash=True)
    try:
        return call_builder(fn, {}, None, None, where)
    except InputError as exc:
        raise InputError(
            f"{exc}; {origin['class']} was handed over as an object with unknown arguments: {how}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""
