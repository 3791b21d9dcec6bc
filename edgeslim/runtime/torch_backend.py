"""Eager PyTorch backend (CPU/CUDA): the reference every exported artifact is compared with.

Opens an ``nn.Module`` (with ``RuntimeOptions.input_shape``) or an edgeslim ``model.pt``
(rebuilt from its spec, ``weights_only`` load). ``precise`` turns TF32 off for the call on CUDA
(a context manager, never a process-wide switch).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.errors import InputError, unknown_name
from edgeslim.runtime.base import BackendInfo, RuntimeOptions
from edgeslim.runtime.providers import backend_spec, package_missing
from edgeslim.runtime.registry import register_backend


def _load(artifact: Any, opts: RuntimeOptions) -> tuple[Any, tuple[int, ...]]:
    if not isinstance(artifact, (str, Path)):
        if opts.input_shape is None:
            raise InputError("a torch model needs input_shape (one input without the batch dim)")
        return artifact, tuple(opts.input_shape)
    from edgeslim.models.serialize import load_model

    model = load_model(Path(artifact))
    shape = opts.input_shape or tuple(getattr(model, "_edgeslim_spec", {}).get("input_shape", (3, 32, 32)))
    return model, tuple(shape)


@register_backend("torch")
class TorchBackend:
    name = "torch"

    @classmethod
    def unavailable(cls) -> str | None:
        return package_missing(backend_spec("torch"))

    def __init__(self, artifact: Any, opts: RuntimeOptions | None = None):
        import torch

        self.opts = opts = opts or RuntimeOptions()
        if opts.device not in ("cpu", "cuda"):
            raise unknown_name("torch device", opts.device, ["cpu", "cuda"])
        if opts.device == "cuda" and not torch.cuda.is_available():
            raise InputError("device cuda asked for but torch sees no CUDA GPU here; use device cpu")
        self.precision = opts.precision or "fp32"
        allowed = backend_spec("torch").precisions[opts.device]
        if self.precision not in allowed:
            raise unknown_name(f"torch precision on {opts.device}", self.precision, allowed)
        if opts.threads:
            torch.set_num_threads(opts.threads)  # process-wide in torch; recorded in describe()
        model, self._shape = _load(artifact, opts)
        self.torch, self.device = torch, torch.device(opts.device)
        self.model = model.to(self.device).eval()
        self.output_names = ["output"]

    def _ctx(self) -> Any:
        torch = self.torch
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.device.type == "cuda" and self.precision == "fp16":
            stack.enter_context(torch.autocast("cuda", dtype=torch.float16))
        if self.device.type == "cuda" and self.opts.precise:
            stack.enter_context(torch.backends.cudnn.flags(enabled=True, allow_tf32=False))
        return stack

    def _forward(self, batch: np.ndarray) -> Any:
        with self._ctx():
            return self.model(self.torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device))

    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self._forward(batch)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return out.float().cpu().numpy()

    def run_all(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        out = self._forward(batch)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return {f"output{i}" if i else "output": o.float().cpu().numpy() for i, o in enumerate(outs)}

    def input_shape(self) -> tuple[int, ...]:
        return self._shape

    def describe(self) -> dict[str, Any]:
        torch = self.torch
        return BackendInfo(self.name, torch.__version__, self.device.type, self.precision,
                           torch.get_num_threads(), None,
                           {"inter_threads": torch.get_num_interop_threads(), "precise": self.opts.precise}).to_json()
