"""ONNX export (torch.onnx): dynamo exporter first, TorchScript exporter as a recorded fallback.

Lives in ``edgeslim.onnxio`` (below the model sources, the compression stages and deploy): the
quantize/QAT stages, ``models/frozen.py`` and ``edgeslim export`` all export through it, and a
feature package must not import ``deploy``.

Every export is finished the same way (``finalize_onnx``): onnxslim simplification, shape
inference, ``onnx.checker``, metadata props, then one atomic save. Models under 2 GB become a
single self-contained ``.onnx`` (no external-data sidecar); larger ones keep their weights in
``<name>.onnx.data`` next to it, because protobuf cannot hold more than 2 GB in one message.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeslim.errors import InputError, StageError
from edgeslim.onnxio.info import graph_inputs
from edgeslim.onnxio.info import opset as opset_of

if TYPE_CHECKING:
    import onnx
    import torch
    from torch import nn

PROTOBUF_LIMIT = 2**31 - 1  # bytes; one ModelProto cannot be larger
_SINGLE_FILE_MAX = int(1.8 * 2**30)  # headroom for graph + metadata on top of the weights
INPUT_NAME, OUTPUT_NAME = "input", "logits"
EXPORTERS = ("auto", "dynamo", "torchscript")


@dataclass
class ExportResult:
    path: Path
    exporter: str  # "dynamo" or "torchscript"
    opset: int
    warnings: list[str]
    external_data: bool = False
    simplified: bool = False
    nodes_before: int = 0
    nodes_after: int = 0
    files: list[Path] = field(default_factory=list)


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    out: str | Path,
    opset: int = 18,
    dynamic_batch: bool = True,
    metadata: dict[str, Any] | None = None,
    exporter: str = "auto",
    *,
    simplify: bool = True,
) -> ExportResult:
    """Export ``model`` to ONNX and finalize it (simplify, check, infer shapes, metadata).

    Args:
        model: the torch model (put in eval mode and moved to the CPU).
        input_shape: one input without the batch axis, e.g. ``(3, 224, 224)``.
        out: target ``.onnx`` path; written atomically.
        opset: ONNX opset of the result.
        dynamic_batch: make axis 0 of input and output symbolic (``batch``).
        metadata: extra metadata props (values that are not strings are stored as JSON).
        exporter: ``auto`` (dynamo, then TorchScript with a warning), ``dynamo`` or ``torchscript``.
        simplify: run onnxslim on the exported graph.

    Returns:
        ExportResult naming the exporter that actually ran.
    """
    import torch

    if exporter not in EXPORTERS:
        raise InputError(f"exporter '{exporter}' is not one of {', '.join(EXPORTERS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    # batch 2 for tracing so that a dynamic batch is not specialised to 1
    x = torch.zeros(2 if dynamic_batch else 1, *input_shape)
    big = _param_bytes(model) > _SINGLE_FILE_MAX
    notes: list[str] = []
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.stem}.export-", dir=out.parent))
    try:
        raw = scratch / "raw.onnx"
        used = _run_exporter(model, x, raw, opset, dynamic_batch, exporter, big, notes)
        meta = {"edgeslim.exporter": used, **(metadata or {})}
        res = finalize_onnx(raw, out, meta, simplify=simplify, input_shape=tuple(input_shape))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if res.opset != opset:  # the dynamo exporter may only reach an opset through conversion
        notes.append(f"requested opset {opset}, the model has opset {res.opset}")
    res.exporter, res.warnings = used, notes + res.warnings
    return res


def _run_exporter(
    model: nn.Module,
    x: torch.Tensor,
    raw: Path,
    opset: int,
    dynamic: bool,
    exporter: str,
    big: bool,
    notes: list[str],
) -> str:
    if exporter in ("auto", "dynamo"):
        try:
            _export_dynamo(model, x, raw, opset, dynamic, big)
            _check_opset(raw, opset)
            return "dynamo"
        except Exception as exc:  # the dynamo exporter raises many types; fall back on any
            first = _reason(exc)
            if exporter == "dynamo":
                raise StageError(
                    f"dynamo ONNX export failed: {type(exc).__name__}: {first}; "
                    "try exporter: torchscript"
                ) from exc
            # Recorded, not warned: the note travels in ExportResult.warnings (and the exporter in
            # the ONNX metadata); the caller says it in its own voice (a stage logs it unless
            # --quiet, `edgeslim export` prints one `note:` line), never as a warnings-module
            # line with a file path.
            notes.append(
                f"dynamo exporter failed ({type(exc).__name__}: {first[:200]}); "
                "fell back to the TorchScript exporter"
            )
            for p in raw.parent.iterdir():
                p.unlink()
    try:
        _export_torchscript(model, x, raw, opset, dynamic)
    except Exception as exc:
        first = _reason(exc)
        tried = "both exporters" if exporter == "auto" else "the TorchScript exporter"
        raise StageError(f"ONNX export failed with {tried}: {type(exc).__name__}: {first}") from exc
    return "torchscript"


class OpsetMismatch(RuntimeError):
    """The dynamo exporter builds opset 18+; onnx's converter often cannot go lower."""


def _check_opset(path: Path, opset: int) -> None:
    import onnx

    got = opset_of(onnx.load(str(path), load_external_data=False))
    if got != opset:
        raise OpsetMismatch(f"it produced opset {got} instead of {opset}")


def _reason(exc: BaseException) -> str:
    """First line of the innermost cause, without colour codes (the outer error is generic)."""
    import re

    inner = exc
    while inner.__cause__ is not None:
        inner = inner.__cause__
    lines = [
        ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(inner)).splitlines() if ln.strip()
    ]
    text = lines[0] if lines else ""
    if inner is not exc:
        text = f"{type(inner).__name__}: {text}"
    return text[:300]


def _param_bytes(model: nn.Module) -> int:
    return sum(
        t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers())
    )


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporters print progress and many warnings; keep the CLI output readable."""
    names = (
        "torch",
        "torch.onnx",
        "onnxscript",
        "torch.export",
        "torch._dynamo",
        "torch.fx",
        "torch._export",
    )
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def _export_dynamo(
    model: nn.Module, x: torch.Tensor, path: Path, opset: int, dynamic: bool, big: bool
) -> None:
    import torch

    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic else None
    with _quiet():
        prog = torch.onnx.export(
            model,
            (x,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=shapes,
            external_data=big,
            verbose=False,
        )
        prog.save(str(path), external_data=big)


def _export_torchscript(
    model: nn.Module, x: torch.Tensor, path: Path, opset: int, dynamic: bool
) -> None:
    import torch

    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic else None
    with _quiet():
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            do_constant_folding=True,
        )


def finalize_onnx(
    src: str | Path,
    out: str | Path,
    metadata: dict[str, Any] | None = None,
    *,
    simplify: bool = True,
    input_shape: tuple[int, ...] | None = None,
) -> ExportResult:
    """Simplify, shape-infer, check and stamp metadata on an ONNX file; save atomically to ``out``.

    Also used on ONNX files made by other stages (a quantized QDQ model), so that every
    deployable file carries the same metadata and has passed the same checks. ``src`` may
    equal ``out``.

    Returns:
        ExportResult with ``exporter`` empty (the caller knows which exporter ran).
    """
    import onnx

    src, out = Path(src), Path(out)
    notes: list[str] = []
    try:
        m = onnx.load(str(src))
    except Exception as exc:  # protobuf DecodeError and friends
        raise InputError(
            f"'{src}' is not a readable ONNX model ({type(exc).__name__}); export it again"
        ) from exc
    before = len(m.graph.node)
    simplified = False
    if simplify:
        m, simplified = _slim(m, notes)
    m = _infer_shapes(m, notes)
    set_metadata(m, metadata or {}, input_shape)
    external = m.ByteSize() > _SINGLE_FILE_MAX if _fits_bytesize(m) else True
    files = _save(m, out, external)
    try:
        onnx.checker.check_model(str(out), full_check=False)
    except onnx.checker.ValidationError as exc:
        raise StageError(
            f"onnx.checker rejected '{out.name}': {str(exc).splitlines()[0][:300]}"
        ) from exc
    return ExportResult(
        out, "", int(opset_of(m)), notes, external, simplified, before, len(m.graph.node), files
    )


def _fits_bytesize(m: onnx.ModelProto) -> bool:
    try:
        m.ByteSize()
        return True
    except Exception:  # protobuf refuses to size messages over 2 GB
        return False


def _slim(m: onnx.ModelProto, notes: list[str]) -> tuple[onnx.ModelProto, bool]:
    try:
        import onnxslim
    except ImportError:
        notes.append("onnxslim is not installed; graph not simplified")
        return m, False
    try:
        with _quiet(), contextlib.redirect_stderr(io.StringIO()):
            slim = onnxslim.slim(m)
    except Exception as exc:  # onnxslim is best-effort; the unsimplified graph is still valid
        notes.append(
            f"onnxslim failed ({type(exc).__name__}: {str(exc)[:120]}); kept the exported graph"
        )
        return m, False
    if slim is None:
        return m, False
    return slim, True


def _infer_shapes(m: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    import onnx

    if not _fits_bytesize(m) or m.ByteSize() > _SINGLE_FILE_MAX:
        notes.append("model over 2 GB: in-memory shape inference skipped")
        return m
    try:
        return onnx.shape_inference.infer_shapes(
            m, check_type=True, strict_mode=False, data_prop=True
        )
    except Exception as exc:  # inference is advisory; checker still runs afterwards
        notes.append(f"shape inference failed ({type(exc).__name__}: {str(exc)[:120]})")
        return m


def set_metadata(
    m: onnx.ModelProto, metadata: dict[str, Any], input_shape: tuple[int, ...] | None
) -> None:
    """Replace/add metadata props (non-strings stored as JSON) plus input name/shape/layout."""
    from edgeslim import __version__

    inputs = graph_inputs(m)
    inp = inputs[0] if inputs else None
    props: dict[str, Any] = {"edgeslim.version": __version__}
    if inp is not None:
        props["edgeslim.input_name"] = inp.name
        props["edgeslim.layout"] = "NCHW"
    if input_shape is not None:
        props["edgeslim.input_shape"] = list(input_shape)
    props.update(metadata)
    keep = [p for p in m.metadata_props if p.key not in props]
    del m.metadata_props[:]
    for p in keep:
        m.metadata_props.add(key=p.key, value=p.value)
    for k, v in props.items():
        m.metadata_props.add(key=str(k), value=v if isinstance(v, str) else json.dumps(v))
    m.producer_name = m.producer_name or "edgeslim"


def _save(m: onnx.ModelProto, out: Path, external: bool) -> list[Path]:
    """One atomic save: a single file, or the .onnx plus ``<name>.data`` when over 2 GB."""
    import onnx

    from edgeslim.fsutil import temp_path_beside

    tmp = temp_path_beside(out)
    data_name = out.name + ".data"
    try:
        if external:
            data_tmp = out.parent / f".{data_name}.tmp"
            onnx.save_model(
                m,
                str(tmp),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data_tmp.name,
                size_threshold=1024,
            )
            # the .onnx refers to the data file by name: rewrite the reference to the final name
            _point_external_data(tmp, data_name)
            os.replace(data_tmp, out.parent / data_name)
        else:
            onnx.save_model(m, str(tmp))
            (out.parent / data_name).unlink(missing_ok=True)  # a stale sidecar would mislead
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return [out, out.parent / data_name] if external else [out]


def _point_external_data(path: Path, data_name: str) -> None:
    """Make the ONNX file at ``path`` name ``data_name`` as its external-data file."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    for t in _external_tensors(m):
        for e in t.external_data:
            if e.key == "location":
                e.value = data_name
    onnx.save_model(m, str(path))


def move_onnx(src: Path, dst: Path) -> None:
    """Rename an ONNX file and its ``<name>.data`` sidecar to ``dst`` (same file system).

    The sidecar goes first and the .onnx last, so ``dst`` appears only once it is complete;
    a stale sidecar of an earlier ``dst`` is removed.
    """
    side, dst_side = src.with_name(src.name + ".data"), dst.with_name(dst.name + ".data")
    if side.is_file():
        if src.name != dst.name:
            _point_external_data(src, dst_side.name)
        os.replace(side, dst_side)
    else:
        dst_side.unlink(missing_ok=True)
    os.replace(src, dst)


@contextlib.contextmanager
def staging_dir(out: Path) -> Any:
    """A temp folder beside ``out`` (``.<name>.tmp-XXXXXXXX``, removed on exit) to export and
    gate in, so nothing appears under ``out`` before the gate has passed."""
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _external_tensors(m: onnx.ModelProto) -> list[Any]:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    return [t for t in _get_all_tensors(m) if uses_external_data(t)]
