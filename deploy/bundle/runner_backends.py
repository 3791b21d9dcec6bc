"""The bundle runner's runtime classes: onnxruntime and OpenVINO sessions with the manifest's
options, and a serialized TensorRT engine (built on the device by build_engine.sh) run through
cuda-python. Each has ``run(x)``, ``input_shape()``, ``name``, ``version``, ``precision``.

Shipped verbatim into every bundle as ``edgeslim_backends.py`` and loaded by path by ``runner.py``
only after every file matched its sha256 (as ``edgeslim_portable.py`` is); needs numpy and the
runtime it opens (each imported only when opened), nothing from edgeslim. Errors are raised as
the runner's own error class, passed in, so they print as one line with the runner's exit code.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np


class OrtRunner:
    """onnxruntime with the manifest's session config (threads, spinning, providers, ...)."""

    def __init__(self, model: Path, cfg: dict, pt: ModuleType, error: type[Exception]):
        import onnxruntime as ort

        self.error = error
        avail = ort.get_available_providers()
        # a provider the device lacks (no GPU build) is dropped: CPU is always there
        want = [p for p in cfg.get("providers") or ["CPUExecutionProvider"] if p in avail]
        so = pt.ort_session_options(ort, cfg)
        self.session = ort.InferenceSession(str(model), so, providers=want or ["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0]
        self.input_name = self._input.name
        self.name, self.version, self.precision = "onnxruntime", ort.__version__, cfg.get("precision")
        self.providers = self.session.get_providers()  # what really runs, after any fallback

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def input_shape(self) -> list[int]:
        dims = self._input.shape[1:]
        if not all(isinstance(d, int) for d in dims):
            raise self.error("the model's image size is symbolic and the manifest gives none")
        return list(dims)


class OvRunner:
    """OpenVINO on the CPU: latency hint, one stream, the manifest's threads and precision hint."""

    def __init__(self, model: Path, cfg: dict, pt: ModuleType, error: type[Exception]):
        import openvino as ov

        self.error = error
        if cfg.get("inference_precision") == "bf16":
            native, why = pt.bf16_support(pt.cpu_features())
            if not native:
                raise error(f"precision bf16 on openvino: {why}; run with --precision fp32")
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(model)), "CPU", pt.ov_compile_config(cfg))
        self.request = self.compiled.create_infer_request()
        self.name, self.version, self.providers = "openvino", ov.__version__, None
        used = self.compiled.get_property("INFERENCE_PRECISION_HINT")  # what the plugin chose
        self.precision = used.to_string() if hasattr(used, "to_string") else str(used)

    def run(self, x: np.ndarray) -> np.ndarray:
        res = self.request.infer({0: np.ascontiguousarray(x, np.float32)})
        return np.asarray(res[self.compiled.outputs[0]], np.float32)

    def input_shape(self) -> list[int]:
        dims = self.compiled.inputs[0].get_partial_shape()
        if not all(d.is_static for d in list(dims)[1:]):
            raise self.error("the model's image size is symbolic and the manifest gives none")
        return [d.get_length() for d in list(dims)[1:]]


class TrtRunner:
    """A serialized TensorRT engine (built on this device by build_engine.sh); needs cuda-python."""

    def __init__(self, engine: Path, cfg: dict, pt: ModuleType, error: type[Exception]):
        import tensorrt as trt

        self.error = error

        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart
            except ImportError as exc:
                raise error(
                    "the tensorrt backend needs cuda-python: pip install cuda-python"
                ) from exc
        if not engine.is_file():
            raise error(
                f"no TensorRT engine '{engine.name}': build it on this device with "
                "sh build_engine.sh (an engine only runs on the GPU it was built on)"
            )
        self.trt, self.cudart = trt, cudart
        rt = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = rt.deserialize_cuda_engine(engine.read_bytes())
        if self.engine is None:
            raise error(
                f"TensorRT could not load '{engine.name}' (built for another GPU or TensorRT "
                "version?); rebuild it here with sh build_engine.sh"
            )
        self.ctx = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inp = next(n for n in names if self.engine.get_tensor_mode(n) == mode)
        self.out = next(n for n in names if self.engine.get_tensor_mode(n) != mode)
        self.name, self.version, self.providers = "tensorrt", trt.__version__, None
        self.precision = cfg.get("precision")
        self.stream = self._ok(cudart.cudaStreamCreate())
        self._bufs: dict[str, tuple[int, int]] = {}

    def input_shape(self) -> list[int]:
        # the optimization profile's "opt" shape (profile 0) for a dynamic engine
        dims = list(self.engine.get_tensor_shape(self.inp))[1:]
        if any(d < 0 for d in dims):
            dims = list(self.engine.get_tensor_profile_shape(self.inp, 0)[1])[1:]
        return dims

    def _ok(self, res: tuple) -> object:
        if int(res[0]) != 0:
            raise self.error(f"CUDA call failed: {res[0]}")
        return res[1] if len(res) > 1 else None

    def _buf(self, name: str, nbytes: int) -> int:
        ptr, size = self._bufs.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self.cudart.cudaFree(ptr)
            ptr = int(self._ok(self.cudart.cudaMalloc(nbytes)))
            self._bufs[name] = (ptr, nbytes)
        return ptr

    def run(self, x: np.ndarray) -> np.ndarray:
        cu = self.cudart
        x = np.ascontiguousarray(x, np.float32)
        self.ctx.set_input_shape(self.inp, x.shape)
        y = np.empty(tuple(self.ctx.get_tensor_shape(self.out)), np.float32)
        pin, pout = self._buf(self.inp, x.nbytes), self._buf(self.out, y.nbytes)
        self.ctx.set_tensor_address(self.inp, pin)
        self.ctx.set_tensor_address(self.out, pout)
        h2d, d2h = (
            cu.cudaMemcpyKind.cudaMemcpyHostToDevice,
            cu.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        self._ok(cu.cudaMemcpyAsync(pin, x.ctypes.data, x.nbytes, h2d, self.stream))
        if not self.ctx.execute_async_v3(self.stream):
            raise self.error("TensorRT execution failed")
        self._ok(cu.cudaMemcpyAsync(y.ctypes.data, pout, y.nbytes, d2h, self.stream))
        self._ok(cu.cudaStreamSynchronize(self.stream))
        return y
