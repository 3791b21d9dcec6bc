"""TensorRT backend: run a serialized engine (.engine/.plan) on the GPU it was built for.

Engines are *built* by ``deploy/tensorrt.py`` (which imports ``gpu_info`` from here); the runtime
layer never imports ``deploy`` (import-linter contract). Device buffers come from
torch's CUDA allocator, present wherever TensorRT runs. ``tensorrt`` is imported only when an
engine is opened (``pip install 'edgeslim[tensorrt]'``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.errors import InputError, StageError, require
from edgeslim.runtime.base import BackendInfo, RuntimeOptions
from edgeslim.runtime.providers import backend_spec, package_missing
from edgeslim.runtime.registry import register_backend


def gpu_info() -> dict[str, Any]:
    """GPU name and compute capability (through torch); InputError without a CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        raise InputError("building or running a TensorRT engine needs a CUDA GPU; none is visible here")
    major, minor = torch.cuda.get_device_capability(0)
    return {"gpu": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}",
            "cuda": torch.version.cuda}


def _built_meta(path: Path) -> dict[str, Any]:
    """The ``<engine>.json`` written by the build (TensorRT version, GPU, plan), or {}."""
    meta = path.with_name(path.name + ".json")
    try:
        return json.loads(meta.read_text()) if meta.is_file() else {}
    except ValueError:
        return {}


@register_backend("tensorrt")
class TensorRTBackend:
    """``run(np.ndarray) -> np.ndarray`` over a deserialized engine."""

    name = "tensorrt"

    @classmethod
    def unavailable(cls) -> str | None:
        missing = package_missing(backend_spec("tensorrt"))
        if missing:
            return missing
        import torch  # only reached where tensorrt is installed

        return None if torch.cuda.is_available() else "no CUDA GPU visible (TensorRT runs only on NVIDIA GPUs)"

    def __init__(self, artifact: str | Path, opts: RuntimeOptions | None = None):
        trt = require("tensorrt", "tensorrt")
        import torch

        self.opts = opts or RuntimeOptions(device="cuda")
        self.gpu = gpu_info()
        path = Path(artifact)
        if not path.is_file():
            raise InputError(f"TensorRT engine '{path}' does not exist; build it with edgeslim deploy + "
                             "build_engine.sh, or edgeslim.deploy.tensorrt.build_engine")
        self.torch, self.version = torch, trt.__version__
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(path.read_bytes())
        built = _built_meta(path)
        if self.engine is None:
            raise InputError(
                f"TensorRT {trt.__version__} cannot load '{path.name}' (built with TensorRT "
                f"{built.get('tensorrt', '?')} on {built.get('gpu', '?')}); rebuild it on this machine"
            )
        self.precision = str(built.get("plan", {}).get("precision", "unknown"))
        self.ctx = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_in = [self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names]
        self.input_name = next(n for n, i in zip(names, is_in, strict=True) if i)
        self.output_names = [n for n, i in zip(names, is_in, strict=True) if not i]
        self._shape = tuple(self.engine.get_tensor_shape(self.input_name))[1:]

    def run_all(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).cuda()
        self.ctx.set_input_shape(self.input_name, tuple(x.shape))
        self.ctx.set_tensor_address(self.input_name, x.data_ptr())
        outs = []
        for n in self.output_names:
            o = torch.empty(tuple(self.ctx.get_tensor_shape(n)), dtype=torch.float32, device="cuda")
            self.ctx.set_tensor_address(n, o.data_ptr())
            outs.append(o)
        # the current stream: the copies above were queued on it, so no extra synchronisation
        stream = torch.cuda.current_stream()
        if not self.ctx.execute_async_v3(stream.cuda_stream):
            raise StageError("TensorRT execution failed")
        stream.synchronize()
        return {n: o.cpu().numpy() for n, o in zip(self.output_names, outs, strict=True)}

    def run(self, batch: np.ndarray) -> np.ndarray:
        return next(iter(self.run_all(batch).values()))

    def input_shape(self) -> tuple[int, ...]:
        return self._shape

    def describe(self) -> dict[str, Any]:
        return BackendInfo(self.name, self.version, "cuda", self.precision, None, None, self.gpu).to_json()
