"""OpenVINO backend: the same ONNX (FP32 or QDQ INT8) on the CPU plugin, BF16 through the hint.

Compiled with the latency hint, one stream, ``threads`` inference threads, pinned threads, and
an explicit inference precision (``portable.ov_compile_config``): f32 unless BF16 is asked for.
OpenVINO's own default on a BF16-capable CPU is BF16, so an unset hint would silently lower
an FP32 model; edgeslim always sets it. BF16 is refused with the reason on CPUs without native
BF16 (``portable.bf16_support``): emulated BF16 is slower than FP32 and less accurate.

``pip install 'edgeslim[openvino]'``; ``openvino`` is imported only when a backend is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.errors import InputError, require
from edgeslim.onnxio.info import detect_precision, load_model
from edgeslim.runtime.base import BackendInfo, RuntimeOptions
from edgeslim.runtime.portable import bf16_support, cpu_features, ov_compile_config
from edgeslim.runtime.providers import backend_spec, package_missing
from edgeslim.runtime.registry import register_backend


def compile_config(opts: RuntimeOptions, model_precision: str, cpuinfo: str | None = None) -> dict[str, Any]:
    """The JSON-able config for ``opts`` (inference precision decided here), or InputError."""
    want = opts.precision or model_precision
    if opts.device != "cpu":
        raise InputError(f"backend openvino runs on device 'cpu' in edgeslim; got '{opts.device}'")
    if want not in ("fp32", "bf16", "int8"):
        raise InputError(f"backend openvino runs fp32, bf16 or int8 (QDQ); got precision '{want}'")
    if want == "int8" and model_precision != "int8":
        raise InputError("precision int8 on openvino needs a QDQ INT8 ONNX; quantize the model first")
    hint = "f32"
    if want == "bf16":
        if opts.precise:
            raise InputError("precise=True is an FP32 reference run; it cannot use precision bf16")
        native, why = bf16_support(cpu_features(cpuinfo))
        if not native:
            raise InputError(f"precision bf16 on openvino: {why}; use fp32 or int8")
        hint = "bf16"
    return {"threads": opts.threads, "inference_precision": hint, "pinning": opts.pinning,
            "precise": opts.precise, "precision": want}


def _ir_precision(model: Any) -> str:
    """int8 when an OpenVINO model holds FakeQuantize ops (how QDQ/NNCF INT8 appears), else fp32."""
    return "int8" if any(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops()) else "fp32"


@register_backend("openvino")
class OpenVinoBackend:
    """An OpenVINO compiled model over an .onnx (or IR .xml) file."""

    name = "openvino"

    @classmethod
    def unavailable(cls) -> str | None:
        return package_missing(backend_spec("openvino"))

    def __init__(self, artifact: str | Path, opts: RuntimeOptions | None = None):
        ov = require("openvino", "openvino")
        self.opts = opts = opts or RuntimeOptions()
        self.path = Path(artifact)
        if not self.path.is_file():
            raise InputError(f"model file '{self.path}' does not exist")
        # ONNX facts from the file (a bad file fails here with edgeslim's one-line error)
        onnx_precision = detect_precision(load_model(self.path)) if self.path.suffix == ".onnx" else None
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
            self.model_precision = onnx_precision or _ir_precision(model)
            self.config = compile_config(opts, self.model_precision)
            if opts.input_shape is not None:
                model.reshape({model.inputs[0].get_any_name(): list(opts.input_shape)})
            self.compiled = core.compile_model(model, "CPU", ov_compile_config(self.config))
        except RuntimeError as exc:  # OpenVINO reports unsupported ops/models as RuntimeError
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise InputError(f"OpenVINO cannot compile '{self.path}': {first}") from exc
        self.request = self.compiled.create_infer_request()
        self.output_names = [o.get_any_name() if o.get_names() else f"output{i}"
                             for i, o in enumerate(self.compiled.outputs)]
        self.input_name = self.compiled.inputs[0].get_any_name()
        pshape = self.compiled.inputs[0].get_partial_shape()
        self._shape = tuple(d.get_length() if d.is_static else 1 for d in pshape)[1:]
        self.version = ov.__version__
        # what the plugin really chose: recorded so a result shows f32 vs bf16 unambiguously
        used = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = used.to_string() if hasattr(used, "to_string") else str(used)

    def _infer(self, batch: np.ndarray) -> list[np.ndarray]:
        res = self.request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
        return [np.asarray(res[o], dtype=np.float32) for o in self.compiled.outputs]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._infer(batch)[0]

    def run_all(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self._infer(batch), strict=True))

    def input_shape(self) -> tuple[int, ...]:
        return self._shape

    def describe(self) -> dict[str, Any]:
        opts = {**self.config, "inference_precision_used": self.inference_precision,
                "compile_config": ov_compile_config(self.config)}
        return BackendInfo(self.name, self.version, "cpu", self.config["precision"],
                           self.opts.threads or "default", None, opts).to_json()
