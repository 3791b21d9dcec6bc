"""Loading weights safely: ``weights_only=True`` for .pt/.pth, safetensors, clear errors."""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeslim.errors import CheckpointError

_STATE_KEYS = ("state_dict", "model_state_dict", "model", "state", "module")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from .pt/.pth/.bin (never unpickling code) or .safetensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; check the path")
    _refuse_empty(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint '{path}' is not a readable safetensors file ({exc})") from exc
    obj = safe_torch_load(path)
    return extract_state_dict(obj, path)


def _refuse_empty(path: Path) -> None:
    try:
        empty = path.stat().st_size == 0
    except OSError:
        return  # the loader reports an unreadable file with its own message
    if empty:
        raise CheckpointError(f"checkpoint '{path}' is empty (0 bytes): it was not written completely; "
                              "save it again with torch.save(model.state_dict(), path)")


def _first_line(exc: BaseException, n: int) -> str:
    """The first line of an exception's message, or its type name when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0][:n] if lines else type(exc).__name__


def safe_torch_load(path: Path) -> Any:
    path = Path(path)
    if path.is_file():
        _refuse_empty(path)
    try:
        with warnings.catch_warnings():
            # torch warns that its weights-only unpickler may not support a pickle protocol
            # other than 2, just before it refuses such a file; the refusal below is the message.
            warnings.filterwarnings("ignore", message=r"Detected pickle protocol \d+ in the checkpoint",
                                    category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _pickles_objects(path):  # not a readable pickle at all: corrupt, not unsafe
            raise CheckpointError(
                f"checkpoint '{path}' is corrupt or not a PyTorch file ({_first_line(exc, 120)}); "
                "re-save it with torch.save(model.state_dict(), path)"
            ) from exc
        # weights_only refuses any global it does not know: an arbitrary pickle is never run.
        raise CheckpointError(
            f"checkpoint '{path}' contains Python objects other than tensors and was refused "
            f"(unsafe to unpickle: {_first_line(exc, 160)}); save a plain state_dict "
            "with torch.save(model.state_dict(), path) or use .safetensors"
        ) from exc
    # KeyError/IndexError: what torch.load's legacy-format reader raises on some garbage bytes
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as exc:
        raise CheckpointError(
            f"checkpoint '{path}' is corrupt or not a PyTorch file ({_first_line(exc, 160)}); "
            "re-save it with torch.save(model.state_dict(), path)"
        ) from exc


def _pickles_objects(path: Path) -> bool:
    """True when the file is a well-formed pickle that imports or builds Python objects.

    Read with pickletools, which parses opcodes without executing anything.
    """
    import pickletools

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
                raw = zf.read(name)
        else:
            raw = path.read_bytes()
        ops = {op.name for op, _, _ in pickletools.genops(raw)}
    except Exception:  # any parse failure means the bytes are not a pickle
        return False
    return bool(ops & {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"})


def extract_state_dict(obj: Any, path: Path | str = "<memory>") -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in _STATE_KEYS:
            if key in obj and isinstance(obj[key], dict):
                return extract_state_dict(obj[key], path)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return {k.removeprefix("module."): v for k, v in tensors.items()}
    raise CheckpointError(
        f"checkpoint '{path}' holds no state dict (found {type(obj).__name__}); "
        "expected a dict of tensors, optionally under 'state_dict' or 'model'"
    )


def shape_mismatches(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    own = model.state_dict()
    out = []
    for k, v in state.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            out.append(f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}")
    return out


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load with a one-line error naming the first mismatching keys and shapes."""
    bad = shape_mismatches(model, state)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if bad or missing or unexpected:
        parts = []
        if bad:
            more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
            parts.append("shape mismatch " + "; ".join(bad[:3]) + more)
        if missing:
            parts.append(f"missing keys {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_first(unexpected)}")
        raise CheckpointError(
            f"{source} does not fit the architecture {type(model).__name__}: " + ", ".join(parts)
            + "; check model.source and model.kwargs match the checkpoint"
        )
    model.load_state_dict(state, strict=True)


def _first(keys: list[str], n: int = 3) -> str:
    return str(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def load_weights_into(model: nn.Module, path: str | Path, num_classes: int | None = None) -> nn.Module:
    """Load a checkpoint; a head of another size is resized first, then set to ``num_classes``."""
    from edgeslim.models.surgery import find_head, num_classes_of, replace_head

    state = load_state_dict_file(path)
    head_name, _ = find_head(model)
    bad = [m.split(":")[0] for m in shape_mismatches(model, state)]
    if bad and all(k.startswith(head_name + ".") for k in bad):
        w = state[f"{head_name}.weight"]
        replace_head(model, int(w.shape[0]))
    load_state_strict(model, state, source=f"checkpoint '{path}'")
    if num_classes is not None and num_classes != num_classes_of(model):
        replace_head(model, num_classes)
    return model
