"""The bundle runner's runtime classes: onnxruntime and OpenVINO sessions with the manifest's
options, and a serialized TensorRT engine (built on the device by build_engine.sh) run through
cuda-python. Each has ``run(x)``, ``input_shape()``, ``name``, ``version``, ``precision``.

Shipped verbatim into every bundle as ``edgeslim_backends.py`` and loaded by path by ``runner.py``
only after every file matched its sha256 (as ``edgeslim_portable.py`` is); needs numpy and the
runtime it opens (each imported only when opened), nothing from edgeslim. Errors are raised as
the runner's own error class, passed in, so they print as one line with the runner's exit code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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


# ---------------------------------------------------------------- selection
# Which runtime runs a bundle here. It lives beside the classes so that adding a runtime to
# bundles is one entry in this table and one class here, plus its module in edgeslim/runtime/
# and its row in the provider table (edgeslim/runtime/providers.py), which decides the
# manifest's runtime section.

# name -> (import name, class in this module, install hint)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "onnxruntime": ("onnxruntime", "OrtRunner", "pip install onnxruntime (or onnxruntime-gpu)"),
    "openvino": ("openvino", "OvRunner", "pip install openvino"),
    "tensorrt": ("tensorrt", "TrtRunner",
                 "on Jetson it ships with JetPack (python3-libnvinfer); elsewhere pip install tensorrt"),
}
DISABLE_ENV = "EDGESLIM_RUNNER_DISABLE"
Runner = Any  # OrtRunner | OvRunner | TrtRunner: run(x), input_shape(), name, version, precision


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def unavailable(name: str, bundle: Path, manifest: dict) -> str | None:
    """Why backend ``name`` cannot run this bundle here (library missing, no engine), or None."""
    import importlib.util

    module, _, hint = BACKENDS[name]
    if name in _disabled():
        return f"{name} is disabled by {DISABLE_ENV}"
    if importlib.util.find_spec(module) is None:
        return f"{name} is not installed ({hint})"
    if name == "tensorrt" and not (bundle / _engine_name(manifest)).is_file():
        return f"no TensorRT engine '{_engine_name(manifest)}' yet (build it here with sh build_engine.sh)"
    return None


def _engine_name(manifest: dict) -> str:
    return manifest.get("engine_file") or "model.engine"


def runtime_section(manifest: dict) -> dict:
    """manifest['runtime'] ({order, backends}); bundles written before it existed get the order
    their target implies, with each runtime's defaults."""
    sec = manifest.get("runtime")
    if isinstance(sec, dict) and isinstance(sec.get("order"), list) and isinstance(sec.get("backends"), dict):
        return sec
    target = manifest.get("target") or {}
    order = ["tensorrt", "onnxruntime"] if target.get("runner_backend") == "tensorrt" else ["onnxruntime"]
    return {"order": order, "backends": {"onnxruntime": {"device": target.get("ort_device", "cpu")}}}


class _Chooser:
    """One selection: the bundle, its manifest, the command line, the shipped portable module
    and the runner's error class (so every refusal prints as the runner's one-line error)."""

    def __init__(self, bundle: Path, manifest: dict, args: Any, pt: ModuleType, error: type[Exception]):
        self.bundle, self.manifest, self.args, self.pt, self.error = bundle, manifest, args, pt, error
        self.sec = runtime_section(manifest)

    def config(self, name: str) -> dict:
        """The manifest's config for ``name`` with --threads/--precision applied."""
        cfg = dict(self.sec["backends"].get(name) or {"backend": name})
        if name == "onnxruntime" and not cfg.get("providers"):
            cfg["providers"] = ["CPUExecutionProvider"]
        if getattr(self.args, "threads", None):
            cfg["threads"] = self.args.threads
        want = getattr(self.args, "precision", None)
        if want == "bf16" and name != "openvino":
            raise self.error(f"--precision bf16 runs on openvino only, not {name}; use --backend openvino")
        if want and name == "openvino":
            cfg["inference_precision"] = "bf16" if want == "bf16" else "f32"
        return cfg

    def precision_problem(self, name: str, cfg: dict) -> str | None:
        """Why the manifest's precision for ``name`` cannot run natively here (None: it can).

        An explicit ``--precision bf16`` is the user's demand: refused (exit 2) rather than changed."""
        if name != "openvino" or cfg.get("inference_precision") != "bf16":
            return None
        native, why = self.pt.bf16_support(self.pt.cpu_features())
        if native:
            return None
        if getattr(self.args, "precision", None) == "bf16":
            raise self.error(f"precision bf16 on openvino: {why}; run with --precision fp32")
        return f"openvino bf16 cannot run natively here ({why})"

    def model_file(self, name: str) -> str:
        return _engine_name(self.manifest) if name == "tensorrt" else self.manifest["model"]["file"]

    def open(self, name: str, cfg: dict) -> Runner:
        cls = globals()[BACKENDS[name][1]]
        return cls(self.bundle / self.model_file(name), cfg, self.pt, self.error)

    def fp32(self, name: str, cfg: dict, skipped: list[str]) -> Runner:
        print(f"note: {'; '.join(skipped)}: running {self.model_file(name)} in {name} at fp32", file=sys.stderr)
        return self.open(name, {**cfg, "inference_precision": "f32", "precision": "fp32"})

    def strict(self, name: str) -> Runner:
        why = unavailable(name, self.bundle, self.manifest)
        if why:
            raise self.error(f"--backend {name}: {why}")
        cfg = self.config(name)
        why = self.precision_problem(name, cfg)
        return self.fp32(name, cfg, [why]) if why else self.open(name, cfg)

    def first(self) -> Runner:
        skipped: list[str] = []
        bf16_denied: tuple[str, dict] | None = None
        for name in [n for n in self.sec["order"] if n in BACKENDS]:
            why = unavailable(name, self.bundle, self.manifest)
            if why:
                skipped.append(why)
                continue
            cfg = self.config(name)
            why = self.precision_problem(name, cfg)
            if why:
                skipped.append(why)
                bf16_denied = bf16_denied or (name, cfg)
                continue
            if skipped:
                print(f"note: {'; '.join(skipped)}: running {self.model_file(name)} in {name}", file=sys.stderr)
            return self.open(name, cfg)
        if bf16_denied is not None:  # nothing else runs here: the bf16 runtime itself, in fp32
            return self.fp32(*bf16_denied, skipped)
        raise self.error(
            f"no runtime of this bundle ({', '.join(self.sec['order'])}) is importable here: "
            f"{'; '.join(skipped)}; install one, e.g. pip install numpy onnxruntime"
        )


def open_runner(bundle: Path, manifest: dict, args: Any, pt: ModuleType, error: type[Exception]) -> Runner:
    """--backend is strict; without it the first runtime of the manifest's order that can run
    here is used, and a fallback is said on stderr in one ``note:`` line (e.g. openvino not
    installed: onnxruntime). A bf16 entry on a CPU without native BF16 falls back the same way:
    to the next runtime of the order, else to openvino in fp32; only an explicit
    ``--precision bf16`` is refused there."""
    chooser = _Chooser(bundle, manifest, args, pt, error)
    name = getattr(args, "backend", None)
    return chooser.strict(name) if name else chooser.first()


def backends_report(bundle: Path, manifest: dict, pt: ModuleType) -> dict:
    """What ``runner.py backends`` prints: each runtime's availability here, the bundle's order."""
    from importlib import metadata

    out = {}
    for name, (module, _, _) in BACKENDS.items():
        why = unavailable(name, bundle, manifest)
        try:
            version = metadata.version(module)
        except metadata.PackageNotFoundError:  # installed under another distribution name, or not
            version = None
        out[name] = {"available": why is None, "reason": why, "version": version}
    feats = pt.cpu_features()
    return {"backends": out, "order": runtime_section(manifest)["order"],
            "cpu": {k: v for k, v in feats.items() if v is not False},
            "bf16_native": pt.bf16_support(feats)[0]}
