"""ONNX export (torch.onnx): dynamo exporter first, TorchScript exporter as a recorded fallback."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeslim.errors import StageError


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "dynamo" or "torchscript"
    opset: int
    warnings: list[str]


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], out: str | Path, opset: int = 18,
                dynamic_batch: bool = True, metadata: dict[str, Any] | None = None,
                exporter: str = "auto") -> ExportResult:
    """Export ``model`` to one self-contained .onnx file (written atomically)."""
    import onnx

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    x = torch.zeros(2 if dynamic_batch else 1, *input_shape)
    notes: list[str] = []
    tmp = out.with_name(f".{out.stem}.tmp.onnx")
    used = None
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(model, x, tmp, opset, dynamic_batch)
            used = "dynamo"
        except Exception as exc:  # the dynamo exporter raises many types; we fall back on any
            if exporter == "dynamo":
                raise StageError(f"dynamo ONNX export failed: {str(exc).splitlines()[0][:300]}") from exc
            notes.append(f"dynamo exporter failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                         "fell back to the TorchScript exporter")
            warnings.warn(notes[-1], stacklevel=2)
    if used is None:
        _export_torchscript(model, x, tmp, opset, dynamic_batch)
        used = "torchscript"
    m = onnx.load(str(tmp))
    for k, v in (metadata or {}).items():
        entry = m.metadata_props.add()
        entry.key, entry.value = str(k), v if isinstance(v, str) else __import__("json").dumps(v)
    onnx.checker.check_model(m)
    onnx.save(m, str(tmp))
    tmp.replace(out)
    for side in out.parent.glob(f".{out.stem}.tmp.onnx*"):
        side.unlink(missing_ok=True)
    return ExportResult(out, used, opset, notes)


def _export_dynamo(model: nn.Module, x: torch.Tensor, path: Path, opset: int, dynamic: bool) -> None:
    dyn = {"input": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic else None
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset, input_names=["input"],
                                 output_names=["logits"], dynamic_shapes=(dyn["input"],) if dyn else None,
                                 external_data=False, verbose=False)
        prog.save(str(path), external_data=False)


def _export_torchscript(model: nn.Module, x: torch.Tensor, path: Path, opset: int, dynamic: bool) -> None:
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes, do_constant_folding=True)
