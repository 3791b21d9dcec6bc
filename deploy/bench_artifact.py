"""Opening what ``edgeslim bench``/``check`` time: ONNX, TensorRT engines, model.pt, registry names.

Every artifact becomes a backend from ``deploy/backends.py`` plus what a result records about
it: input shape (read from the model), fixed batch size, file size, params, MACs, threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.errors import InputError

if TYPE_CHECKING:
    from edgeslim.deploy.bench import BenchOptions

MODEL_FILES = ("model.onnx", "model.engine", "model.plan", "model.pt")
_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


@dataclass
class Artifact:
    """An opened artifact: a backend with ``run(np.ndarray)`` plus what the result records."""

    name: str
    kind: str  # onnx | tensorrt | torch
    backend: Any
    input_shape: tuple[int, ...]
    fixed_batch: int | None = None
    size_bytes: int | None = None
    params: int | None = None
    macs: int | None = None
    sha256: str | None = None
    providers: list[str] | None = None
    threads: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def backend_name(self) -> str:
        return str(getattr(self.backend, "name", self.kind))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "params": self.params,
            "macs": self.macs,
            "sha256": self.sha256,
            "input_shape": list(self.input_shape),
        }


def resolve_artifact(spec: str | os.PathLike) -> Path | str:
    """A file, the model file in a bundle/stage folder, or a registry name (returned as str)."""
    p = Path(spec)
    if p.is_dir():
        import json

        manifest = p / "manifest.json"
        if manifest.is_file():
            try:
                meta = json.loads(manifest.read_text())
            except ValueError as exc:
                raise InputError(f"bundle manifest '{manifest}' is not valid JSON ({exc})") from exc
            for key in ("model", "artifact", "model_file", "file"):
                name = meta.get(key) if isinstance(meta, dict) else None
                if isinstance(name, dict):  # deploy bundle: {"model": {"file": ...}}
                    name = name.get("file")
                if isinstance(name, str) and (p / name).is_file():
                    return p / name
        for name in MODEL_FILES:
            if (p / name).is_file():
                return p / name
        raise InputError(
            f"folder '{p}' holds no model file ({', '.join(MODEL_FILES)}); "
            "pass the .onnx/.engine/model.pt file itself"
        )
    if p.is_file():
        return p
    # "nets/mynet.py:Net" names a user's class (a model source), not a missing file.
    if (p.suffix in (".onnx", ".engine", ".plan", ".pt", ".pth") or os.sep in str(spec)) and ":" not in p.name:
        raise InputError(
            f"artifact '{spec}' does not exist; pass an .onnx, .engine/.plan, model.pt, "
            "a bundle folder or a registry name (edgeslim models lists them)"
        )
    return str(spec)


def open_artifact(spec: str | os.PathLike, opts: BenchOptions) -> Artifact:
    """Open what ``spec`` names for timing (see :func:`resolve_artifact`)."""
    from edgeslim.fsutil import sha256_file

    target = resolve_artifact(spec)
    if isinstance(target, str):
        return _open_registry(target, opts)
    if target.suffix == ".onnx":
        art = _open_onnx(target, opts)
    elif target.suffix in (".engine", ".plan"):
        from edgeslim.deploy.backends import open_backend

        backend = open_backend(target, kind="tensorrt")
        art = Artifact(
            str(target), "tensorrt", backend, tuple(backend.input_shape()), device="cuda"
        )
    elif target.suffix in (".pt", ".pth", ".pt2", ".ts", ".jit"):
        art = _open_model_pt(target, opts)
    else:
        raise InputError(
            f"cannot benchmark '{target}': expected .onnx, .engine/.plan, an edgeslim "
            "model.pt, a bundle folder or a registry name"
        )
    art.size_bytes, art.sha256 = target.stat().st_size, sha256_file(target)
    return art


def _open_onnx(path: Path, opts: BenchOptions) -> Artifact:
    from edgeslim.deploy.backends import OrtBackend
    from edgeslim.errors import require, unknown_name
    from edgeslim.measure import onnx_params

    ort = require("onnxruntime", "onnx")
    if opts.provider == "auto":
        cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        providers = _PROVIDERS["cuda" if cuda else "cpu"]
    elif opts.provider in _PROVIDERS:
        providers = _PROVIDERS[opts.provider]
    else:
        raise unknown_name("provider", opts.provider, ["auto", *_PROVIDERS])
    backend = OrtBackend(path, providers, opts.threads, opts.inter_threads)
    dims = list(backend.session.get_inputs()[0].shape)
    fixed = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    shape = []
    for i, d in enumerate(dims[1:]):
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif i >= 1 and opts.image_size:
            shape.append(opts.image_size)
        else:
            raise InputError(
                f"'{path}' has a dynamic input dimension {i + 1} ({d!r}); pass --image-size N "
                "(or export with a fixed image size)"
            )
    art = Artifact(
        str(path),
        "onnx",
        backend,
        tuple(shape),
        fixed_batch=fixed,
        providers=backend.providers,
        threads={"intra": opts.threads or "default", "inter": opts.inter_threads or "default"},
        device="cuda" if backend.providers[0] != "CPUExecutionProvider" else "cpu",
    )
    art.params = onnx_params(path)
    art.macs = onnx_macs(path, (fixed or 1, *shape))
    return art


def onnx_macs(path: str | os.PathLike, input_shape: tuple[int, ...]) -> int | None:
    """MACs of Conv/Gemm/MatMul (float or quantized) per image, from ONNX shape inference."""
    import onnx

    try:
        m = onnx.load(str(path))
        inits = {t.name: list(t.dims) for t in m.graph.initializer}
        graph_in = [i for i in m.graph.input if i.name not in inits][0]
        for d, v in zip(graph_in.type.tensor_type.shape.dim, input_shape, strict=False):
            d.dim_value = int(v)
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:  # an unusual graph: MACs are informative only, never fatal
        return None
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*m.graph.value_info, *m.graph.output, *m.graph.input)
    }
    shapes.update(inits)
    total = 0
    for n in m.graph.node:
        op, ins = n.op_type, list(n.input)
        out = shapes.get(n.output[0]) if n.output else None
        if not out or not all(out):
            continue
        if op in ("Conv", "ConvInteger", "QLinearConv"):
            w = shapes.get(ins[3] if op == "QLinearConv" else ins[1])
            if w and all(w):
                total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif op in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
            a = shapes.get(ins[0])
            trans_a = any(at.name == "transA" and at.i for at in n.attribute)
            if a and all(a):
                total += int(np.prod(out)) * int(a[-2] if trans_a else a[-1])
    return total // (input_shape[0] or 1)


def _torch_threads(opts: BenchOptions) -> dict[str, Any]:
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.inter_threads and opts.inter_threads != torch.get_num_interop_threads():
        try:
            torch.set_num_interop_threads(opts.inter_threads)
        except RuntimeError as exc:  # torch allows this once, before any parallel work
            raise InputError(
                f"--inter-threads {opts.inter_threads} cannot be set now ({exc}); "
                "run edgeslim bench in a fresh process"
            ) from exc
    return {"intra": torch.get_num_threads(), "inter": torch.get_num_interop_threads()}


def _torch_artifact(name: str, model: Any, shape: tuple[int, ...], opts: BenchOptions) -> Artifact:
    from edgeslim.deploy.backends import TorchBackend
    from edgeslim.errors import unknown_name
    from edgeslim.measure import count_macs, count_params

    if opts.device not in ("cpu", "cuda"):
        raise unknown_name("device", opts.device, ["cpu", "cuda"])
    threads = _torch_threads(opts)
    art = Artifact(
        name,
        "torch",
        None,
        shape,
        params=count_params(model),
        macs=count_macs(model, shape),
        threads=threads,
        device=opts.device,
    )
    art.backend = TorchBackend(model, shape, opts.device)
    return art


def _open_model_pt(path: Path, opts: BenchOptions) -> Artifact:
    """An edgeslim model.pt (rebuilt from its spec, a user's file included), TorchScript or .pt2."""
    from edgeslim.models.inspect import open_model

    opened = open_model(str(path), image_size=opts.image_size or _run_image_size(path))
    return _torch_artifact(str(path), opened.model, opened.input_shape, opts)


def _run_image_size(model_path: Path) -> int | None:
    """Image size of the recipe that produced a stage's model.pt (runs/<name>/NN-stage/model.pt)."""
    import json

    run_json = model_path.parent.parent / "run.json"
    try:
        return int(json.loads(run_json.read_text())["recipe"]["data"]["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _open_registry(name: str, opts: BenchOptions) -> Artifact:
    from edgeslim.measure import state_dict_bytes
    from edgeslim.models.inspect import load_for_info

    model, shape = load_for_info(name, opts.checkpoint, opts.num_classes, opts.in_chans, opts.image_size)
    art = _torch_artifact(name, model, tuple(shape), opts)
    art.size_bytes = state_dict_bytes(model)
    return art
