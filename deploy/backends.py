"""One interface for running an artifact: ``backend.run(batch: np.ndarray) -> np.ndarray``.

Evaluation and benchmarking both go through it, so accuracy is measured on the artifact a
device will really run (the ONNX/INT8 model in onnxruntime), not only on the PyTorch model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeslim.errors import InputError, require


class Backend(Protocol):
    name: str

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def input_shape(self) -> tuple[int, ...]: ...


class TorchBackend:
    name = "torch"

    def __init__(self, model: Any, input_shape: tuple[int, ...], device: str = "cpu"):
        import torch

        self.torch, self.device = torch, torch.device(device)
        self.model = model.to(self.device).eval()
        self._shape = tuple(input_shape)

    def run(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return out.float().cpu().numpy()

    def input_shape(self) -> tuple[int, ...]:
        return self._shape


class OrtBackend:
    """onnxruntime session; ``providers`` e.g. ["CUDAExecutionProvider", "CPUExecutionProvider"]."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        providers: list[str] | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
    ):
        ort = require("onnxruntime", "onnx")
        path = Path(path)
        if not path.is_file():
            raise InputError(f"ONNX file '{path}' does not exist")
        so = ort.SessionOptions()
        if intra_op_threads:
            so.intra_op_num_threads = intra_op_threads
        if inter_op_threads:
            so.inter_op_num_threads = inter_op_threads
        avail = ort.get_available_providers()
        providers = providers or ["CPUExecutionProvider"]
        missing = [
            p if isinstance(p, str) else p[0]
            for p in providers
            if (p if isinstance(p, str) else p[0]) not in avail
        ]
        if missing:
            raise InputError(
                f"onnxruntime provider(s) {missing} are not available here; available: {avail}"
            )
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise InputError(
                f"onnxruntime cannot load '{path}': {str(exc).splitlines()[0][:200]}"
            ) from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self._shape = tuple(d if isinstance(d, int) else 1 for d in inp.shape)[1:]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(
            None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        )[0]

    def input_shape(self) -> tuple[int, ...]:
        return self._shape


# Execution-provider presets: the onnxruntime route to a GPU without building an engine by hand.
# The TensorRT EP builds (and caches) its engine on first run; CPU stays last as the fallback
# for operators the GPU providers do not take.
EP_PRESETS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def ort_providers(
    preset: str, fp16: bool = False, int8: bool = False, cache_dir: str | Path | None = None
) -> list[Any]:
    """Provider list (with options) for ``cpu``, ``cuda`` or ``tensorrt`` onnxruntime sessions."""
    if preset not in EP_PRESETS:
        from edgeslim.errors import unknown_name

        raise unknown_name("onnxruntime provider preset", preset, EP_PRESETS)
    out: list[Any] = []
    for name in EP_PRESETS[preset]:
        if name == "TensorrtExecutionProvider":
            opts: dict[str, Any] = {"trt_fp16_enable": fp16, "trt_int8_enable": int8}
            if cache_dir is not None:
                opts.update(
                    trt_engine_cache_enable=True,
                    trt_engine_cache_path=str(cache_dir),
                    trt_timing_cache_enable=True,
                    trt_timing_cache_path=str(cache_dir),
                )
            out.append((name, opts))
        else:
            out.append(name)
    return out


def open_backend(
    artifact: Any, input_shape: tuple[int, ...] | None = None, kind: str | None = None, **kw: Any
) -> Backend:
    """Open a torch model, an .onnx file (onnxruntime) or a TensorRT .engine/.plan."""
    if not isinstance(artifact, (str, Path)):
        if input_shape is None:
            raise ValueError("a torch model needs input_shape")
        return TorchBackend(artifact, input_shape, kw.get("device", "cpu"))
    path = Path(artifact)
    if kind in ("ort-cuda", "ort-tensorrt") and path.suffix == ".onnx":
        provs = ort_providers(
            kind[4:], kw.get("fp16", False), kw.get("int8", False), kw.get("cache_dir")
        )
        return OrtBackend(path, provs, kw.get("intra_op_threads"), kw.get("inter_op_threads"))
    if kind in (None, "onnxruntime") and path.suffix == ".onnx":
        return OrtBackend(
            path, kw.get("providers"), kw.get("intra_op_threads"), kw.get("inter_op_threads")
        )
    if path.suffix in (".engine", ".plan") or kind == "tensorrt":
        from edgeslim.deploy.tensorrt import TensorRTBackend  # optional: needs tensorrt + CUDA

        return TensorRTBackend(path)
    if path.suffix in (".pt", ".pth"):
        from edgeslim.models.serialize import load_model

        model = load_model(path)
        shape = input_shape or tuple(model._edgeslim_spec.get("input_shape", (3, 32, 32)))
        return TorchBackend(model, shape, kw.get("device", "cpu"))
    raise InputError(f"cannot run '{path}': expected .onnx, .engine/.plan or an edgeslim model.pt")
