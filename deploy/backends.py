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

    def __init__(self, path: str | Path, providers: list[str] | None = None, intra_op_threads: int | None = None,
                 inter_op_threads: int | None = None):
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
        missing = [p for p in providers if p not in avail]
        if missing:
            raise InputError(f"onnxruntime provider(s) {missing} are not available here; available: {avail}")
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise InputError(f"onnxruntime cannot load '{path}': {str(exc).splitlines()[0][:200]}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self._shape = tuple(d if isinstance(d, int) else 1 for d in inp.shape)[1:]
        self.providers = self.session.get_providers()

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def input_shape(self) -> tuple[int, ...]:
        return self._shape


def open_backend(artifact: Any, input_shape: tuple[int, ...] | None = None, kind: str | None = None,
                 **kw: Any) -> Backend:
    """Open a torch model, an .onnx file (onnxruntime) or a TensorRT .engine/.plan."""
    if not isinstance(artifact, (str, Path)):
        if input_shape is None:
            raise ValueError("a torch model needs input_shape")
        return TorchBackend(artifact, input_shape, kw.get("device", "cpu"))
    path = Path(artifact)
    if kind in (None, "onnxruntime") and path.suffix == ".onnx":
        return OrtBackend(path, kw.get("providers"), kw.get("intra_op_threads"), kw.get("inter_op_threads"))
    if path.suffix in (".engine", ".plan") or kind == "tensorrt":
        from edgeslim.deploy.tensorrt import TensorRTBackend  # optional: needs tensorrt + CUDA

        return TensorRTBackend(path)
    if path.suffix in (".pt", ".pth"):
        from edgeslim.models.serialize import load_model

        model = load_model(path)
        shape = input_shape or tuple(model._edgeslim_spec.get("input_shape", (3, 32, 32)))
        return TorchBackend(model, shape, kw.get("device", "cpu"))
    raise InputError(f"cannot run '{path}': expected .onnx, .engine/.plan or an edgeslim model.pt")
