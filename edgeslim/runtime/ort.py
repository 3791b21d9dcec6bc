"""onnxruntime backend: every session option explicit, a ``precise`` mode for reference runs.

Threads, spinning, execution mode and graph optimization level come from
:class:`~edgeslim.runtime.base.RuntimeOptions` through ``portable.ort_session_options`` (the
same function the bundle's runner uses); providers come from the provider table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.errors import InputError, require
from edgeslim.onnxio.info import detect_precision, load_model
from edgeslim.runtime.base import BackendInfo, RuntimeOptions
from edgeslim.runtime.portable import ort_session_options
from edgeslim.runtime.providers import (
    DEFAULT_ALLOW_SPINNING,
    backend_spec,
    ort_providers,
    package_missing,
    preset_of,
    provider_names,
)
from edgeslim.runtime.registry import register_backend


def session_config(opts: RuntimeOptions) -> dict[str, Any]:
    """The JSON-able session config for ``opts`` (what describe() and a bundle record)."""
    spin = DEFAULT_ALLOW_SPINNING if opts.allow_spinning is None else bool(opts.allow_spinning)
    return {"threads": opts.threads, "inter_threads": opts.inter_threads, "allow_spinning": spin,
            "execution_mode": "sequential", "graph_optimization": "basic" if opts.precise else "all",
            "precise": opts.precise}


@register_backend("onnxruntime")
class OrtBackend:
    """An onnxruntime session over an .onnx file. ``run(batch) -> first output``."""

    name = "onnxruntime"

    @classmethod
    def unavailable(cls) -> str | None:
        return package_missing(backend_spec("onnxruntime"))

    def __init__(self, artifact: str | Path, opts: RuntimeOptions | None = None):
        ort = require("onnxruntime", "onnx")
        self.opts = opts = opts or RuntimeOptions()
        self.path = Path(artifact)
        if not self.path.is_file():
            raise InputError(f"ONNX file '{self.path}' does not exist")
        self.model_precision = detect_precision(load_model(self.path))
        want = opts.precision or self.model_precision
        # The TensorRT EP may lower an FP32 graph to FP16 (a build flag); elsewhere onnxruntime
        # runs exactly what the file holds.
        lowers = opts.device == "tensorrt" and self.model_precision == "fp32" and want == "fp16"
        if want != self.model_precision and not lowers:
            raise InputError(
                f"onnxruntime runs the precision the ONNX holds ({self.model_precision}); got precision "
                f"'{want}': quantize/convert the model first (bf16: use backend openvino)"
            )
        self.precision = want
        providers = opts.providers or ort_providers(
            opts.device, fp16=want == "fp16", int8=want == "int8", cache_dir=opts.cache_dir, precise=opts.precise)
        avail = ort.get_available_providers()
        missing = [p for p in provider_names(providers) if p not in avail]
        if missing:
            raise InputError(f"onnxruntime provider(s) {missing} are not available here; available: {avail}")
        self.config = session_config(opts)
        try:
            self.session = ort.InferenceSession(str(self.path), ort_session_options(ort, self.config),
                                                providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise InputError(f"onnxruntime cannot load '{self.path}': {str(exc).splitlines()[0][:200]}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self._shape = tuple(d if isinstance(d, int) else 1 for d in inp.shape)[1:]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()  # what really runs, after any fallback
        self.version = ort.__version__

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def run_all(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outs = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return dict(zip(self.output_names, outs, strict=True))

    def input_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def device(self) -> str:
        return preset_of(self.providers)

    def describe(self) -> dict[str, Any]:
        threads = self.opts.threads or "default"
        return BackendInfo(self.name, self.version, self.device, self.precision, threads,
                           list(self.providers), self.config).to_json()
