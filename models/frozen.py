"""Frozen model sources: a TorchScript archive, a ``torch.export`` ExportedProgram (``.pt2``) and an
ONNX file. They run, quantize, export, evaluate, deploy and bench, but cannot be edited.

Loading a TorchScript archive runs TorchScript (a restricted language, not arbitrary Python)
from the user's own file; an ExportedProgram is a serialized graph plus tensors; an ONNX file
is opened by onnx / onnxruntime. None of them unpickles Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgeslim.errors import InputError
from edgeslim.models.source_registry import SourceInfo, source_info


class ExportedModule(nn.Module):
    """An ExportedProgram's module behind an nn.Module that tolerates ``eval()``/``train()``.

    ``ExportedProgram.module()`` refuses ``eval()``; the graph was captured in eval mode and is
    fixed, so switching modes is a no-op here.
    """

    def __init__(self, program: Any):
        super().__init__()
        object.__setattr__(self, "program", program)
        self.graph_module = program.module()

    def train(self, mode: bool = True) -> ExportedModule:  # the captured graph has one mode
        object.__setattr__(self, "training", mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph_module(x)


@dataclass
class FrozenModel:
    """A frozen source, opened. ``module`` is a torch callable (None for ONNX)."""

    kind: str  # torchscript | exported | onnx
    path: Path
    module: nn.Module | None = None
    input_shape: tuple[int, ...] | None = None  # C, H, W when the graph fixes them
    num_classes: int | None = None
    fixed_batch: int | None = None  # the batch size the graph is specialised to, if any
    notes: list[str] = field(default_factory=list)

    def params(self) -> int:
        if self.module is not None:
            prog = getattr(self.module, "program", None)
            tensors = prog.state_dict.values() if prog is not None else self.module.parameters()
            return int(sum(t.numel() for t in tensors))
        from edgeslim.onnxio.info import count_params

        return count_params(self.path)

    def check_fits(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        """InputError (one line) when the data cannot go through this graph: another input size,
        another number of classes (a frozen head cannot be replaced), or a fixed batch size."""
        what = f"{self.kind} file '{self.path}'"
        if self.input_shape and tuple(self.input_shape) != tuple(input_shape):
            c, h, w = (tuple(self.input_shape) + (None, None, None))[:3]
            raise InputError(
                f"{what} takes {'x'.join(map(str, self.input_shape))} inputs but the data gives "
                f"{'x'.join(map(str, input_shape))}; set data.image_size: {h if h == w else f'{h} (square only)'}"
                f" and data.channels: {c}")
        if self.num_classes is not None and self.num_classes != num_classes:
            raise InputError(
                f"{what} predicts {self.num_classes} classes but the data has {num_classes}; a frozen graph keeps its "
                "head: use the same classes (data.classes, in the model's order), or give the network's Python class "
                "(path/to/file.py:ClassName) so the head can be replaced")
        if self.fixed_batch is not None:
            raise InputError(self._fixed_batch_message())

    def _fixed_batch_message(self) -> str:
        how = ("torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))"
               if self.kind == "exported" else "torch.onnx.export(..., dynamic_axes={'input': {0: 'batch'}})")
        return (f"{self.kind} file '{self.path}' is fixed to batch {self.fixed_batch}, and edgeslim evaluates and "
                f"calibrates in batches; save it with a dynamic batch axis: {how}")

    def to_onnx(self, out: str | Path, input_shape: tuple[int, ...] | None = None, opset: int = 17,
                dynamic_batch: bool = True, metadata: dict[str, Any] | None = None) -> Any:
        """Write this model as a finalized ONNX file (simplified, checked, metadata stamped).

        TorchScript goes through the TorchScript exporter; an ExportedProgram through the dynamo
        exporter with its own (captured) shapes; an ONNX file is finalized as it is. Returns the
        deploy ``ExportResult``.
        """
        from edgeslim.onnxio.export import export_onnx, finalize_onnx

        shape = tuple(input_shape or self.input_shape or ())
        if dynamic_batch and self.fixed_batch is not None:
            raise InputError(self._fixed_batch_message())
        if not shape:
            raise InputError(f"{self.kind} file '{self.path}' does not fix its input size; give data.image_size")
        meta = {"edgeslim.source": str(self.path), **(metadata or {})}
        if self.kind == "onnx":
            res = finalize_onnx(self.path, out, {"edgeslim.exporter": "none (ONNX source)", **meta},
                                input_shape=shape)
            res.exporter = "none"
            return res
        if self.kind == "torchscript":
            return export_onnx(self.module, shape, out, opset, dynamic_batch, meta, exporter="torchscript")
        return _export_program(self, Path(out), shape, opset, meta)


def _export_program(fm: FrozenModel, out: Path, shape: tuple[int, ...], opset: int,
                    meta: dict[str, Any]) -> Any:
    """ExportedProgram -> ONNX through the dynamo exporter, keeping the program's own shapes."""
    import shutil
    import tempfile

    from edgeslim.onnxio.export import _quiet, finalize_onnx

    program = fm.module.program  # type: ignore[union-attr]
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.stem}.export-", dir=out.parent))
    try:
        raw = scratch / "raw.onnx"
        with _quiet():
            onnx_prog = torch.onnx.export(program, dynamo=True, opset_version=opset,
                                          input_names=["input"], output_names=["logits"])
            onnx_prog.save(str(raw))
        res = finalize_onnx(raw, out, {"edgeslim.exporter": "dynamo (ExportedProgram)", **meta},
                            input_shape=shape)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    res.exporter = "dynamo"
    res.warnings.append("an ExportedProgram keeps the input shapes it was captured with (batch included)")
    return res


def open_frozen(source: str | Path | SourceInfo) -> FrozenModel:
    """Open a TorchScript / ExportedProgram / ONNX source (see the module docstring)."""
    info = source if isinstance(source, SourceInfo) else source_info(str(source))
    if info.editable or info.file is None:
        raise InputError(f"'{info.source}' is not a frozen model file (it is a {info.kind} source)")
    path = info.file
    if not path.is_file():
        raise InputError(f"model file '{path}' does not exist; check model.source")
    if info.kind == "onnx":
        shape, classes, batch = _onnx_io(path)
        return FrozenModel("onnx", path, None, shape, classes, batch)
    module = _load_torch(info.kind, path)
    shape = probe_input_shape(info, module)
    fm = FrozenModel(info.kind, path, module, shape, fixed_batch=_program_batch(module))
    if shape:
        with torch.no_grad():
            try:
                out = module(torch.zeros(1, *shape))
                fm.num_classes = int(out.shape[-1])
            except Exception as exc:  # a graph that needs other inputs: reported when it is used
                fm.notes.append(f"probe run failed: {type(exc).__name__}: {str(exc)[:120]}")
    return fm


def _load_torch(kind: str, path: Path) -> nn.Module:
    import logging
    import warnings

    # torch.export logs a full traceback for a damaged archive before raising; the one-line
    # error below says it, so that logger is quiet while loading (and restored after).
    log = logging.getLogger("torch.export")
    level = log.level
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*is deprecated", category=FutureWarning)
            if kind == "torchscript":
                return torch.jit.load(str(path), map_location="cpu").eval()
        log.setLevel(logging.CRITICAL)
        return ExportedModule(torch.export.load(str(path)))
    except Exception as exc:  # torch raises RuntimeError / many others for a bad archive
        what = "TorchScript archive" if kind == "torchscript" else "torch.export ExportedProgram (.pt2)"
        raise InputError(
            f"'{path}' could not be opened as a {what}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}; "
            "save it again with " + ("torch.jit.save" if kind == "torchscript" else "torch.export.save")
        ) from exc
    finally:
        log.setLevel(level)


def probe_input_shape(info: SourceInfo, module: nn.Module | None = None) -> tuple[int, ...] | None:
    """C, H, W a frozen graph fixes (ONNX static dims, the program's example input), if any."""
    path = info.file
    if path is None:
        return None
    if info.kind == "onnx":
        return _onnx_io(path)[0]
    if info.kind == "exported":
        prog = module.program if isinstance(module, ExportedModule) else torch.export.load(str(path))
        ex = getattr(prog, "example_inputs", None)
        if ex and ex[0]:
            return tuple(int(d) for d in ex[0][0].shape[1:])
        for node in prog.graph.nodes:  # the first user input's fake tensor carries its shape
            if node.op == "placeholder" and node.name in prog.graph_signature.user_inputs:
                val = node.meta.get("val")
                return tuple(int(d) for d in val.shape[1:]) if val is not None else None
        return None
    # TorchScript keeps no public record of its input size: the data (or --image-size) gives it.
    return None


def _program_batch(module: nn.Module) -> int | None:
    """The batch an ExportedProgram was specialised to (None: dynamic, or not a program)."""
    prog = getattr(module, "program", None)
    if prog is None:
        return None
    for node in prog.graph.nodes:
        if node.op == "placeholder" and node.name in prog.graph_signature.user_inputs:
            val = node.meta.get("val")
            dim = val.shape[0] if val is not None and len(val.shape) else None
            return int(dim) if isinstance(dim, int) else None
    return None


def _onnx_io(path: Path) -> tuple[tuple[int, ...] | None, int | None, int | None]:
    from edgeslim.onnxio.info import graph_inputs, load_model

    m = load_model(path)
    inputs = graph_inputs(m)
    if len(inputs) != 1:
        raise InputError(f"ONNX model '{path}' has {len(inputs)} inputs; edgeslim takes image classifiers "
                         "with one NCHW input")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    shape = tuple(dims[1:]) if len(dims) == 4 and all(dims[1:]) else None
    out_dims = [d.dim_value if d.HasField("dim_value") else None for d in m.graph.output[0].type.tensor_type.shape.dim]
    classes = out_dims[-1] if out_dims and out_dims[-1] else None
    return shape, classes, (dims[0] if dims and dims[0] else None)  # type: ignore[return-value]
