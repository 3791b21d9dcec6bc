"""Model sources: a registry keyed by prefix or shape, each knowing what it can build.

``model.source`` (and every command that names a model) takes one of these forms:

========================  ============  ==============================================
form                      kind          what it is
========================  ============  ==============================================
``tinycnn``               builtin       a registered builder (``edgeslim models``)
``torchvision:resnet18``  torchvision   torchvision's model zoo (weights from the cache)
``timm:resnet18``         timm          timm's zoo (weights via ``checkpoint:``)
``path/to/net.py:Name``   pyfile        a class or factory in a user's Python file
``package.module:Name``   module        a class or factory in an importable module
``model.onnx``            onnx          an ONNX graph (frozen)
``model.pt2``             exported      a ``torch.export`` ExportedProgram (frozen)
``model.ts`` / ``.pt``    torchscript   a TorchScript archive, told by its content (frozen)
``runs/x/01-prune/model.pt``  edgeslim  a model file an earlier run saved
========================  ============  ==============================================

Frozen sources cannot be edited (no pruning, no training); :func:`frozen_refusal` says so.
Parsing never imports a user's code; building does (importing a user's file runs it: that is
the user's own choice, the same as ``python mynet.py``).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError, did_you_mean

# Stages that change a model's weights or structure need an nn.Module they can edit.
EDITING_STAGES = ("pretrain", "finetune", "prune", "distill")
FROZEN_STAGES = ("quantize", "export", "evaluate", "deploy", "bench")
FORMS = (
    "NAME (built-in, see `edgeslim models`)",
    "torchvision:NAME",
    "timm:NAME",
    "path/to/file.py:ClassOrFactory",
    "package.module:ClassOrFactory",
    "model.onnx",
    "model.pt2 (torch.export)",
    "TorchScript file (.ts/.pt)",
    "an edgeslim model.pt",
)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"^{_IDENT}(\.{_IDENT})*$")
_TORCH_FILE_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".ptl", ".pt2", ".zip")


@dataclass(frozen=True)
class SourceInfo:
    """What a model source is, found by parsing (and, for files, reading the archive index).

    Attributes:
        source: the string as given.
        kind: builtin | torchvision | timm | pyfile | module | object | onnx | exported |
            torchscript | edgeslim.
        target: the name or path inside that kind (``resnet18``, ``/abs/net.py:Net``).
        editable: False for frozen graphs (ONNX, ExportedProgram, TorchScript).
        file: the file the source names, if any.
    """

    source: str
    kind: str
    target: str
    editable: bool = True
    file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def runnable_stages(self) -> tuple[str, ...]:
        """Stages this source can go through (all, for an editable model)."""
        return EDITING_STAGES + FROZEN_STAGES if self.editable else FROZEN_STAGES


# --------------------------------------------------------------------------------------------
# The registry: (kind, matcher) pairs tried in order. A matcher returns the target or None.

Matcher = Callable[[str], "str | None"]
_KINDS: list[tuple[str, Matcher, bool]] = []


def register_source(kind: str, editable: bool = True) -> Callable[[Matcher], Matcher]:
    """Register a matcher for a source kind; kinds are tried in registration order."""

    def deco(fn: Matcher) -> Matcher:
        if any(k == kind for k, _, _ in _KINDS):
            raise ValueError(f"model source kind '{kind}' is already registered")
        _KINDS.append((kind, fn, editable))
        return fn

    return deco


def _prefix(p: str) -> Matcher:
    return lambda s: s[len(p):] if s.startswith(p) and len(s) > len(p) else None


register_source("object")(_prefix("object:"))
register_source("torchvision")(_prefix("torchvision:"))
register_source("timm")(_prefix("timm:"))


@register_source("pyfile")
def _match_pyfile(s: str) -> str | None:
    path, sep, name = s.rpartition(":")
    return s if sep and path.endswith(".py") and re.fullmatch(rf"{_IDENT}(\.{_IDENT})*", name) else None


@register_source("onnx", editable=False)
def _match_onnx(s: str) -> str | None:
    return s if s.lower().endswith(".onnx") else None


@register_source("exported", editable=False)
def _match_exported(s: str) -> str | None:
    return s if (_torch_archive_kind(s) or ("exported" if s.endswith(".pt2") else None)) == "exported" else None


@register_source("torchscript", editable=False)
def _match_torchscript(s: str) -> str | None:
    return s if _torch_archive_kind(s) == "torchscript" else None


@register_source("edgeslim")
def _match_edgeslim(s: str) -> str | None:
    return s if _torch_archive_kind(s) == "pickle" else None


@register_source("module")
def _match_module(s: str) -> str | None:
    mod, sep, name = s.partition(":")
    return s if sep and _DOTTED.match(mod) and _DOTTED.match(name) and mod not in ("timm", "torchvision") else None


@register_source("builtin")
def _match_builtin(s: str) -> str | None:
    return s if re.fullmatch(r"[A-Za-z0-9_.-]+", s) and not s.endswith(_TORCH_FILE_SUFFIXES) else None


def _torch_archive_kind(s: str) -> str | None:
    """torchscript | exported | pickle for an existing torch file, told by its zip index.

    A TorchScript archive holds ``code/`` and ``constants.pkl``; an ExportedProgram holds
    ``archive_format`` and ``models/*.json``; ``torch.save`` writes only ``data.pkl`` + data.
    """
    p = Path(s)
    if ":" in s and not re.match(r"^[A-Za-z]:[\\/]", s):  # a colon means NAME:..., not a file
        return None
    if not (p.suffix.lower() in _TORCH_FILE_SUFFIXES and p.is_file()):
        return None
    if not zipfile.is_zipfile(p):
        # .pt2 is only ever an ExportedProgram (its loader reports the damage); else the legacy
        # torch.save format
        return "exported" if p.suffix.lower() == ".pt2" else "pickle"
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return "pickle"  # let the loader report a corrupt file with its own message
    if any(n.endswith("/archive_format") or "/models/" in n and n.endswith(".json") for n in names):
        return "exported"
    if any(n.endswith("/constants.pkl") or "/code/__torch__/" in n for n in names):
        return "torchscript"
    return "pickle"


def source_info(source: str) -> SourceInfo:
    """Classify ``source``; InputError (listing the valid forms) when no kind matches.

    >>> source_info("timm:resnet18").kind
    'timm'
    >>> source_info("nets/mynet.py:TwoBranchNet").kind
    'pyfile'
    >>> source_info("model.onnx").editable
    False
    """
    s = str(source).strip()
    for kind, match, editable in _KINDS:
        target = match(s)
        if target is not None:
            file = _file_of(kind, target)
            return SourceInfo(s, kind, target, editable, file)
    raise _unknown_form(s)


def _file_of(kind: str, target: str) -> Path | None:
    if kind == "pyfile":
        return Path(target.rpartition(":")[0])
    if kind in ("onnx", "exported", "torchscript", "edgeslim"):
        return Path(target)
    return None


def _unknown_form(s: str) -> InputError:
    prefix = s.partition(":")[0] if ":" in s else ""
    if prefix:
        hint = did_you_mean(prefix, ["torchvision", "timm"])
        what = f"unknown model source '{prefix}'{hint} in '{s}' (not a prefix, a .py file or an importable module)"
    elif Path(s).suffix:
        what = f"model source '{s}' is not an existing model file" + (
            "" if Path(s).exists() else " (no such file)")
    else:
        what = f"model source '{s}' is not a valid name"
    return InputError(f"{what}; valid forms: {', '.join(FORMS)}")


def check_source(source: str) -> SourceInfo:
    """Parse ``source`` and check what can be checked without running a user's code.

    Files must exist, a module's top-level package must be importable, a built-in name must be
    registered and a torchvision name must exist. Raises InputError with the fix.
    """
    info = source_info(source)
    if info.file is not None and not info.file.is_file():
        raise InputError(
            f"model source '{source}': file '{info.file}' does not exist "
            f"(resolved from {Path.cwd()}); give a path relative to where you run edgeslim, or absolute")
    if info.kind == "module":
        check_module_importable(info)
    if info.kind == "builtin":
        from edgeslim.errors import unknown_name
        from edgeslim.models.registry import list_models

        if info.target not in list_models():
            raise unknown_name("model", info.target, list_models(), "valid forms: " + ", ".join(FORMS[1:]))
    if info.kind == "torchvision":
        import torchvision

        if info.target not in torchvision.models.list_models():
            from edgeslim.errors import unknown_name

            raise unknown_name("torchvision model", info.target, torchvision.models.list_models())
    return info


def check_module_importable(info: SourceInfo) -> None:
    """A ``package.module:Name`` source whose top-level package cannot be found is an error.

    Only the top-level package is looked up (``find_spec`` runs no code); a one-word prefix that
    is no package is most likely a misspelt ``timm:`` / ``torchvision:``.
    """
    import importlib.util

    mod = info.target.partition(":")[0]
    top = mod.split(".")[0]
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return
    if "." not in mod:
        raise _unknown_form(info.source)
    raise InputError(
        f"model source '{info.source}': package '{top}' is not importable; install it, add its folder "
        "to PYTHONPATH, or name the file instead: path/to/file.py:Name")


def frozen_refusal(source: str, stage: str, needs_module: bool | None = None) -> str | None:
    """The one-line reason ``stage`` cannot run on ``source``, or None when it can.

    ``needs_module`` overrides the stage's default (``EDITING_STAGES``), for settings that need
    an editable module in a stage that usually does not (``quantize`` with ``method: qat``).

    >>> frozen_refusal("model.onnx", "prune").split(";")[0]
    "stage 'prune' needs an editable nn.Module but model.source 'model.onnx' is a frozen onnx graph"
    """
    info = source_info(source)
    editing = stage in EDITING_STAGES if needs_module is None else needs_module
    if info.editable or not editing:
        return None
    settings = "" if stage in EDITING_STAGES else " with these settings"
    return (
        f"stage '{stage}'{settings} needs an editable nn.Module but model.source '{source}' is a frozen "
        f"{info.kind} graph; stages that can run on it: {', '.join(FROZEN_STAGES)}; to {stage}{settings}, give "
        "the network's Python class (model.source: path/to/file.py:ClassName) and its weights "
        "(model.checkpoint: weights.pt)"
    )


def default_input_size(source: str, kwargs: dict[str, Any] | None = None) -> int | None:
    """The image side a source expects, when it knows one (None: use the data's)."""
    kwargs = kwargs or {}
    for key in ("image_size", "img_size", "input_size"):
        if isinstance(kwargs.get(key), int):
            return int(kwargs[key])
    info = source_info(source)
    if info.kind == "builtin":
        return 32
    if info.kind == "torchvision":
        return 224
    if info.kind == "timm":
        return _timm_input_size(info.target)
    if info.kind in ("onnx", "exported", "torchscript") and info.file is not None and info.file.is_file():
        from edgeslim.models.frozen import probe_input_shape

        shape = probe_input_shape(info)
        return int(shape[-1]) if shape else None
    return None


def _timm_input_size(arch: str) -> int | None:
    try:
        import timm

        cfg = timm.models.get_pretrained_cfg(arch)
        return int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else 224
    except Exception:  # an unknown arch or an old timm: the caller falls back to the data size
        return None


def source_normalization(source: str, weights: str | None = None) -> tuple[list[float], list[float]] | None:
    """Mean/std a zoo model's pretrained weights were trained with (None: unknown).

    torchvision: the weights enum's own transforms (only when ``weights`` is given); timm: the
    architecture's pretrained config. A user's file or checkpoint brings none: the recipe's
    ``data.mean/std`` apply.
    """
    info = source_info(source)
    if info.kind == "torchvision" and weights:
        from edgeslim.models.sources import torchvision_weights_path

        member, _ = torchvision_weights_path(info.target, weights)
        t = member.transforms()
        return [float(v) for v in t.mean], [float(v) for v in t.std]
    if info.kind == "timm":
        try:
            import timm

            cfg = timm.models.get_pretrained_cfg(info.target)
        except Exception:  # unknown arch: the source check reports it elsewhere
            return None
        if cfg is not None and cfg.mean and cfg.std:
            return [float(v) for v in cfg.mean], [float(v) for v in cfg.std]
    return None
