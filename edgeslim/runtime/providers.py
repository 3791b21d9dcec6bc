"""THE provider/precision table: which backend runs on which device, in which precisions, how.

One table for every caller (bench, check, the quantize stage's candidates, bundles): backend
name -> devices, precisions per device, artifact kinds, the module that implements it and its
pip extra; onnxruntime's execution-provider presets with their options; and the backend x
precision candidates for ``precision: auto``, each with the reason when it is skipped.

How the bundle's runner gets the same answers without importing edgeslim (see also
``portable.py``): the table is consulted when the bundle is built and the *resolved* session
config for the chosen backend and its fallback (``runner_config``) is written into
manifest.json; the runner applies it with ``portable.ort_session_options``/``ov_compile_config``.
The runner therefore holds no provider table of its own, and adding a backend touches this
table, the registry entry (``module`` below) and one backend module, plus the runner's opener.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslim.errors import unknown_name
from edgeslim.runtime.portable import bf16_support, cpu_features, int8_support

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8_dynamic")
DEVICES = ("cpu", "cuda")

# onnxruntime presets: the GPU route without building an engine by hand. The TensorRT EP builds
# (and caches) its engine on first run; CPU stays last for operators the GPU providers skip.
ORT_PRESETS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
}
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")

# onnxruntime's idle-thread spinning, decided by measurement (2-core EPYC, batch 1, 2 threads,
# sessions timed in alternation; benchmarks/results/compress_resnet18_speed.json, quiet machine):
# spinning on lowers a median by 7-15% (ResNet-18 FP32 13.2 vs 14.2 ms, pruned INT8 2.46 vs
# 2.91 ms) but doubles the tail (pruned FP32 p90 13.0 vs 6.4 ms, pruned INT8 7.8 vs 3.3 ms) and
# makes a same-file self-compare drift 0.83..1.05 (issue 12): idle spinning threads of one
# session steal the cores the next one runs on. Every edgeslim measurement times several
# sessions in one process (bench, check, precision: auto), so off is the default;
# benchmarks/runtime_backends.py re-measures both (its ORT-vs-ORT self pair) per CPU. A deployed
# runner with a single session may turn it on (runner_config(allow_spinning=True)).
DEFAULT_ALLOW_SPINNING = False


@dataclass(frozen=True)
class BackendSpec:
    """What one backend is: where it is implemented and what it can run."""

    name: str
    module: str  # the edgeslim.runtime module whose @register_backend defines it
    package: str | None  # import name of the inference library (None: part of edgeslim)
    extra: str  # pip install 'edgeslim[extra]'
    devices: tuple[str, ...]
    precisions: dict[str, tuple[str, ...]]  # device (or onnxruntime preset) -> precisions
    artifacts: tuple[str, ...]  # file suffixes it opens ("module" = an in-memory torch model)
    notes: tuple[str, ...] = ()


BACKENDS: dict[str, BackendSpec] = {
    s.name: s
    for s in (
        BackendSpec(
            "onnxruntime", "edgeslim.runtime.ort", "onnxruntime", "onnx", ("cpu", "cuda", "tensorrt"),
            {"cpu": ("fp32", "int8", "int8_dynamic"), "cuda": ("fp32", "fp16", "int8"),
             "tensorrt": ("fp32", "fp16", "int8")},
            (".onnx",),
            ("CPU INT8 wants U8S8 QDQ (uint8 activations): onnxruntime fuses it fully",
             "the CPU provider has no fast FP16 kernels"),
        ),
        BackendSpec(
            "openvino", "edgeslim.runtime.openvino", "openvino", "openvino", ("cpu",),
            {"cpu": ("fp32", "bf16", "int8")},
            (".onnx", ".xml"),
            ("runs the same ONNX (FP32 or QDQ INT8); BF16 through the inference-precision hint",
             "its CPU default hint is BF16 where the CPU has it: edgeslim sets f32 explicitly"),
        ),
        BackendSpec(
            "torch", "edgeslim.runtime.torch_backend", "torch", "", ("cpu", "cuda"),
            {"cpu": ("fp32",), "cuda": ("fp32", "fp16")},
            (".pt", ".pth", "module"),
            ("eager PyTorch: the reference every export is compared with",),
        ),
        BackendSpec(
            "tensorrt", "edgeslim.runtime.tensorrt", "tensorrt", "tensorrt", ("cuda",),
            {"cuda": ("fp32", "fp16", "int8")},
            (".engine", ".plan"),
            ("an engine runs only on the GPU model and TensorRT version it was built with",),
        ),
    )
}


def backend_spec(name: str) -> BackendSpec:
    if name not in BACKENDS:
        raise unknown_name("backend", name, BACKENDS)
    return BACKENDS[name]


def package_missing(spec: BackendSpec) -> str | None:
    """Why the backend's library cannot be imported here (None when it can); imports nothing."""
    if spec.package and importlib.util.find_spec(spec.package) is None:
        extra = f"pip install 'edgeslim[{spec.extra}]'" if spec.extra else f"pip install {spec.package}"
        return f"{spec.package} is not installed ({extra})"
    return None


def ort_providers(
    preset: str, fp16: bool = False, int8: bool = False, cache_dir: str | Path | None = None,
    precise: bool = False,
) -> list[Any]:
    """onnxruntime provider list (names, or (name, options)) for a preset: cpu, cuda, tensorrt.

    ``precise`` turns TF32 off in the CUDA provider (a reference run compares in true FP32).
    """
    if preset not in ORT_PRESETS:
        raise unknown_name("onnxruntime provider preset", preset, ORT_PRESETS)
    out: list[Any] = []
    for name in ORT_PRESETS[preset]:
        if name == "TensorrtExecutionProvider":
            opts: dict[str, Any] = {"trt_fp16_enable": fp16 and not precise, "trt_int8_enable": int8}
            if cache_dir is not None:
                opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir),
                            trt_timing_cache_enable=True, trt_timing_cache_path=str(cache_dir))
            out.append((name, opts))
        elif name == "CUDAExecutionProvider" and precise:
            out.append((name, {"use_tf32": 0}))
        else:
            out.append(name)
    return out


def provider_names(providers: list[Any]) -> list[str]:
    return [p if isinstance(p, str) else p[0] for p in providers]


def preset_of(providers: list[Any]) -> str:
    """The preset (cpu/cuda/tensorrt) a provider list starts with; device of a session."""
    first = provider_names(providers)[0] if providers else "CPUExecutionProvider"
    return next((k for k, v in ORT_PRESETS.items() if v[0] == first), "cpu")


# --------------------------------------------------------------------------- precision candidates


@dataclass
class Candidate:
    """One backend x precision pair ``precision: auto`` may measure, or why it is skipped.

    ``applicable`` is False where the table itself rules the pair out (onnxruntime has no BF16,
    OpenVINO no dynamic INT8): not a candidate anywhere, so the quantize stage leaves it out of
    its record. ``skipped`` is the reason an applicable pair cannot run *here* (library missing,
    no native BF16, no GPU): recorded, so a run says what it did not try and why.
    """

    backend: str
    precision: str
    device: str = "cpu"
    skipped: str | None = None  # the reason when it is not a candidate here
    options: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True

    @property
    def key(self) -> str:
        """``backend/precision`` (plus ``@device`` off the CPU): the candidate's name in records."""
        return f"{self.backend}/{self.precision}" + ("" if self.device == "cpu" else f"@{self.device}")

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "device": self.device,
                "skipped": self.skipped, "options": self.options}


def cpu_precision_support(cpuinfo: str | None = None) -> dict[str, Any]:
    """What this CPU runs natively: flags plus the BF16/INT8 verdicts with their reasons."""
    feats = cpu_features(cpuinfo)
    bf16, bf16_why = bf16_support(feats)
    int8, int8_why = int8_support(feats)
    return {"features": feats, "bf16_native": bf16, "bf16_reason": bf16_why,
            "int8_fast": int8, "int8_reason": int8_why}


def ort_device_missing(device: str) -> str | None:
    """Why onnxruntime cannot run on ``device`` (a preset) here: its provider is not in this build.

    The CPU provider is always there. Asked of the installed onnxruntime through importlib (the
    runtime core imports no inference library statically; see the import contracts).
    """
    if device == "cpu":
        return None
    missing = package_missing(backend_spec("onnxruntime"))
    if missing:
        return missing
    ort = importlib.import_module("onnxruntime")
    want = ORT_PRESETS.get(device, (device,))[0]
    if want not in ort.get_available_providers():
        return (f"{want} is not available in this onnxruntime build (install onnxruntime-gpu on a machine "
                "with an NVIDIA GPU)")
    return None


def precision_candidates(
    device: str = "cpu",
    wanted: tuple[str, ...] = PRECISIONS,
    backends: tuple[str, ...] = ("onnxruntime", "openvino"),
    cpuinfo: str | None = None,
    available: dict[str, str | None] | None = None,
    devices: dict[str, str] | None = None,
    device_missing: Any = None,
) -> list[Candidate]:
    """Every backend x precision pair for ``device``; the ones that cannot run say why.

    Args:
        device: where the candidates run (``cpu``, or an onnxruntime GPU preset ``cuda``/``tensorrt``).
        wanted: precisions to consider.
        backends: backend names, in the order the target tries them.
        cpuinfo: a /proc/cpuinfo text (tests inject a fake one; default: this machine's).
        available: backend -> reason it is unavailable (None = available); by default the
            registry's ``available_backends()``.
        devices: backend -> device, overriding ``device`` per backend (TensorRT runs on ``cuda``
            while the CPU runtimes of the same target run on ``cpu``).
        device_missing: ``f(backend, device) -> reason | None`` for a non-CPU device (default:
            onnxruntime's provider list, :func:`ort_device_missing`).

    BF16 is a CPU candidate only where the CPU has it natively (``portable.bf16_support``).
    """
    if available is None:
        from edgeslim.runtime.registry import available_backends

        available = available_backends()
    devices = devices or {}
    missing_on = device_missing or (lambda b, d: ort_device_missing(d) if b == "onnxruntime" else None)
    cpu = cpu_precision_support(cpuinfo)
    out = []
    for name in backends:
        spec = backend_spec(name)
        dev = devices.get(name, device)
        for prec in wanted:
            cand = Candidate(name, prec, dev)
            if prec not in spec.precisions.get(dev, ()):
                cand.skipped, cand.applicable = f"{name} does not run {prec} on {dev}", False
            elif available.get(name):
                cand.skipped = str(available[name])
            elif dev != "cpu" and missing_on(name, dev):
                cand.skipped = str(missing_on(name, dev))
            elif prec == "bf16" and dev == "cpu" and not cpu["bf16_native"]:
                cand.skipped = f"bf16: {cpu['bf16_reason']}"
            if prec == "bf16" and name == "openvino":
                cand.options = {"inference_precision": "bf16"}
            out.append(cand)
    return out


# --------------------------------------------------------------------------- bundle runner config


def runner_config(
    backend: str, device: str = "cpu", precision: str = "fp32", threads: int | None = None,
    allow_spinning: bool | None = None,
) -> dict[str, Any]:
    """The resolved, JSON-able session config a bundle writes into manifest.json for its runner.

    The runner passes it to ``portable.ort_session_options`` (onnxruntime) or
    ``portable.ov_compile_config`` (OpenVINO) and never consults a table of its own.
    """
    spec = backend_spec(backend)
    if device not in spec.devices:
        raise unknown_name(f"device for backend {backend}", device, spec.devices)
    if precision not in spec.precisions[device]:
        raise unknown_name(f"precision for {backend} on {device}", precision, spec.precisions[device])
    cfg: dict[str, Any] = {"backend": backend, "device": device, "precision": precision, "threads": threads}
    if backend == "onnxruntime":
        cfg["providers"] = provider_names(ort_providers(device))
        cfg["allow_spinning"] = DEFAULT_ALLOW_SPINNING if allow_spinning is None else allow_spinning
        cfg["graph_optimization"] = "all"
    elif backend == "openvino":
        cfg["inference_precision"] = "bf16" if precision == "bf16" else "f32"
        cfg["pinning"] = True
    return cfg
