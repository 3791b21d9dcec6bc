"""Backends by name: ``register_backend``, ``get_backend``, ``available_backends``, ``open_backend``.

Built-in backends are listed once, in ``providers.BACKENDS`` (name -> implementing module);
their modules are imported the first time a name is asked for, so ``import edgeslim.runtime``
imports no inference library. Third-party backends register with the decorator on import or
through the ``edgeslim.backends`` entry-point group (``name = "pkg.module"``).

>>> from edgeslim.runtime.registry import available_backends
>>> "onnxruntime" in available_backends()
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError, MissingDependencyError, unknown_name
from edgeslim.runtime.base import Backend, Capabilities, RuntimeOptions
from edgeslim.runtime.providers import BACKENDS, backend_spec

ENTRY_POINT_GROUP = "edgeslim.backends"
_REGISTRY: dict[str, type] = {}


def register_backend(name: str) -> Callable[[type], type]:
    """Class decorator: make ``name`` open this class. A second class for one name is an error.

    The class takes ``(artifact, opts: RuntimeOptions)`` and may define a classmethod
    ``unavailable() -> str | None`` giving the reason it cannot run here.
    """

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"backend '{name}' is already registered by {_REGISTRY[name].__module__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_names() -> list[str]:
    """Every known backend name: built-in, registered, and entry points (nothing imported)."""
    return sorted({*BACKENDS, *_REGISTRY, *_entry_points()})


def _load_class(name: str) -> type:
    if name in _REGISTRY:
        return _REGISTRY[name]
    module = BACKENDS[name].module if name in BACKENDS else _entry_points().get(name)
    if module is None:
        raise unknown_name("backend", name, backend_names(), "see `edgeslim.runtime.available_backends()`")
    try:
        importlib.import_module(module)
    except ImportError as exc:  # the module itself is broken: say which, never "unknown backend"
        raise ImportError(f"backend '{name}': module {module} failed to import ({exc})") from exc
    if name not in _REGISTRY:
        raise ImportError(f"backend '{name}': module {module} did not @register_backend('{name}')")
    return _REGISTRY[name]


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run here (missing package, no GPU, ...), or None."""
    cls = _load_class(name)
    probe = getattr(cls, "unavailable", None)
    return probe() if probe else None


def available_backends() -> dict[str, str | None]:
    """name -> None when it can run here, else the one-line reason it cannot."""
    out: dict[str, str | None] = {}
    for name in backend_names():
        try:
            out[name] = unavailable_reason(name)
        except ImportError as exc:
            out[name] = str(exc)
    return out


def get_backend(name: str, check: bool = True) -> type:
    """The backend class for ``name``; with ``check``, raise when it cannot run here.

    Raises:
        InputError: unknown name (one line, with close matches and the valid names).
        MissingDependencyError: the backend's library or device is missing (with the reason).
    """
    cls = _load_class(name)
    if check:
        why = unavailable_reason(name)
        if why:
            raise MissingDependencyError(f"backend '{name}' is unavailable here: {why}")
    return cls


def capabilities(name: str) -> Capabilities:
    spec = backend_spec(name)
    return Capabilities(spec.devices, spec.precisions, spec.artifacts)


def backend_for_artifact(artifact: Any) -> str:
    """Default backend for an artifact: torch for a module/.pt, onnxruntime for .onnx, ..."""
    if not isinstance(artifact, (str, Path)):
        return "torch"
    suffix = Path(artifact).suffix
    for name in ("onnxruntime", "tensorrt", "torch", "openvino"):
        if suffix in BACKENDS[name].artifacts:
            return name
    valid = sorted({s for b in BACKENDS.values() for s in b.artifacts if s.startswith(".")})
    raise InputError(f"cannot run '{artifact}': expected one of {', '.join(valid)} or an edgeslim model.pt")


def open_backend(
    artifact: Any, backend: str | None = None, opts: RuntimeOptions | None = None, **kw: Any
) -> Backend:
    """Open ``artifact`` (a path or a torch module) in ``backend`` (default: by file type).

    ``kw`` sets :class:`RuntimeOptions` fields, e.g. ``open_backend("m.onnx", "openvino",
    threads=2, precision="bf16")``.
    """
    bad = [k for k in kw if k not in RuntimeOptions.__dataclass_fields__]
    if bad:
        raise TypeError(f"unknown runtime option(s) {bad}; valid: {', '.join(RuntimeOptions.__dataclass_fields__)}")
    opts = replace(opts or RuntimeOptions(), **kw)  # never mutate the caller's options
    cls = get_backend(backend or backend_for_artifact(artifact))
    return cls(artifact, opts)
