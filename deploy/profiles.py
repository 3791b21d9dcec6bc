"""Deploy profiles: what each target device runs, and the checks that refuse what it cannot.

A profile never changes what the recipe produced: an INT8 model for a board without INT8, an
opset newer than the device's runtime parses, or a batch the model cannot take is refused
with the reason and the fix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgeslim.errors import InputError, unknown_name


@dataclass(frozen=True)
class Accepts:
    """What a profile's runtime takes in a quantized ONNX (``deploy/compat.py`` checks it).

    TensorRT builds only symmetric INT8 QDQ: int8 (not uint8) activations and weights with zero
    point 0; it parses no dynamic quantization (DynamicQuantizeLinear, MatMulInteger) and no
    QOperator nodes (QLinearConv). onnxruntime runs all of them.
    """

    runtime: str
    int8_activations: str  # "symmetric": int8 with zero point 0 only | "any": uint8 or int8
    per_channel_weights: bool  # per-output-channel weight scales accepted (and preferred)
    dynamic_int8: bool  # DynamicQuantizeLinear / MatMulInteger / ConvInteger / QLinear* ops


ACCEPTS = {
    "tensorrt": Accepts("TensorRT", "symmetric", True, False),
    "onnxruntime": Accepts("onnxruntime", "any", True, True),
}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    arch: str  # aarch64 | x86_64
    backend: str  # tensorrt | onnxruntime
    precision: str  # what the engine is built in when the model is FP32 (TensorRT may lower it)
    precisions: tuple[str, ...]  # what the device can run
    batch: int  # the batch the runner benchmarks and the engine's "opt" shape
    max_batch: int  # the engine profile's "max" shape
    threads: int | None  # onnxruntime intra-op threads (None: all cores)
    min_opset: int
    max_opset: int  # newest opset the device's runtime parses
    ort_device: str = "cpu"  # onnxruntime provider preset when the runner uses onnxruntime
    workspace_mb: int = 1024
    dla_cores: int = 0
    notes: list[str] = field(default_factory=list)
    # runtimes the bundle's runner tries, in order (the first one installed on the device runs);
    # empty: ``backend``, then onnxruntime (deploy/bundle/runtimes.py)
    runtimes: tuple[str, ...] = ()

    @property
    def accepts(self) -> Accepts:
        """What this profile's runtime takes (quantization format; opsets are min/max_opset)."""
        return ACCEPTS[self.backend]

    @property
    def runtime_order(self) -> tuple[str, ...]:
        """The runtimes this target's bundle runner tries, in order: ``runtimes`` when listed, else
        its backend with onnxruntime as the fallback (a TensorRT bundle runs model.onnx before the
        engine is built). The quantize stage measures its candidates in these."""
        if self.runtimes:
            return tuple(self.runtimes)
        return (self.backend, "onnxruntime") if self.backend != "onnxruntime" else ("onnxruntime",)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["runner_backend"] = "tensorrt" if self.backend == "tensorrt" else "onnxruntime"
        return d


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "jetson-orin-nano",
            "NVIDIA Jetson Orin Nano (8 GB), JetPack 6.x, TensorRT 10.3, 6x Cortex-A78AE",
            "aarch64",
            "tensorrt",
            "fp16",
            ("fp32", "fp16", "int8"),
            1,
            8,
            4,
            13,
            20,
            workspace_mb=1024,
            notes=[
                "no DLA on Orin Nano",
                "JetPack 5 (TensorRT 8.5) parses opset <= 17: export with opset 17",
            ],
        ),
        Profile(
            "jetson-agx-orin",
            "NVIDIA Jetson AGX Orin, JetPack 6.x, TensorRT 10.3, 12x Cortex-A78AE",
            "aarch64",
            "tensorrt",
            "fp16",
            ("fp32", "fp16", "int8"),
            1,
            32,
            8,
            13,
            20,
            workspace_mb=4096,
            dla_cores=2,
            notes=[
                "2 DLA cores (fp16/int8): add --useDLACore=0 --allowGPUFallback to "
                "build_engine.sh to use them"
            ],
        ),
        Profile(
            "raspberry-pi-5",
            "Raspberry Pi 5, 4x Cortex-A76 (aarch64 CPU), onnxruntime CPU",
            "aarch64",
            "onnxruntime",
            "fp32",
            ("fp32", "int8"),
            1,
            16,
            4,
            13,
            21,
            notes=["onnxruntime's CPU provider has no fast FP16 kernels: FP16 models are refused"],
        ),
        Profile(
            "x86-cpu",
            "x86-64 CPU server or PC, onnxruntime CPU",
            "x86_64",
            "onnxruntime",
            "fp32",
            ("fp32", "int8"),
            1,
            64,
            None,
            13,
            21,
            notes=["INT8 (QDQ) is fastest on CPUs with VNNI/AMX"],
            runtimes=("openvino", "onnxruntime"),
        ),
        Profile(
            "nvidia-gpu",
            "Desktop/datacenter NVIDIA GPU (compute capability >= 7.5), TensorRT 10",
            "x86_64",
            "tensorrt",
            "fp16",
            ("fp32", "fp16", "int8"),
            8,
            64,
            1,
            13,
            20,
            workspace_mb=4096,
            ort_device="cuda",
            notes=["onnxruntime-gpu (CUDA/TensorRT providers) also runs the bundle"],
        ),
    )
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise unknown_name("deploy target", name, PROFILES, "see `edgeslim deploy --help`")
    return PROFILES[name]


def resolve_precision(
    profile: Profile, model_precision: str, requested: str | None, has_calibration: bool
) -> str:
    """The precision the device will run, or InputError naming why the profile cannot.

    ``model_precision`` is what the ONNX holds (fp32, fp16 or int8/QDQ); ``requested`` is an
    explicit ``--precision``. An FP32 model on a TensorRT profile is built in the profile's
    precision (an engine build flag; the model file is unchanged) unless another is requested.
    """
    fix = {
        "int8": "deploy to a target with INT8 (jetson-*, nvidia-gpu, x86-cpu, raspberry-pi-5)",
        "fp16": "deploy to a TensorRT target, or quantize to int8 instead",
    }
    if model_precision != "fp32":
        if model_precision not in profile.precisions:
            raise InputError(
                f"target '{profile.name}' cannot run a {model_precision} model "
                f"(it runs {', '.join(profile.precisions)}); {fix.get(model_precision, '')}"
            )
        if requested and requested != model_precision:
            raise InputError(
                f"--precision {requested} given but the model is already {model_precision}; "
                "drop --precision, or deploy a run without the quantize stage"
            )
        return model_precision
    want = requested or (profile.precision if profile.backend == "tensorrt" else "fp32")
    if want not in profile.precisions:
        raise InputError(
            f"target '{profile.name}' cannot run {want} (it runs {', '.join(profile.precisions)}); "
            f"choose --precision {' or '.join(profile.precisions)}"
        )
    if want != "fp32" and profile.backend != "tensorrt":
        raise InputError(
            f"target '{profile.name}' runs onnxruntime on the CPU, which cannot lower an FP32 "
            "model "
            f"to {want}; add a quantize stage (precision: {want}) to the recipe"
        )
    if want == "int8" and not has_calibration:
        raise InputError(
            f"INT8 on '{profile.name}' from an FP32 model needs a TensorRT calibration cache and "
            "the run has none; add a quantize stage (QDQ model) or pass --calibration-cache FILE"
        )
    return want


def check_model(
    profile: Profile, opset: int, dynamic_batch: bool, batch: int | None = None
) -> None:
    """Refuse an opset or batch the device cannot take (InputError with the fix)."""
    if not profile.min_opset <= opset <= profile.max_opset:
        raise InputError(
            f"target '{profile.name}' parses ONNX opset {profile.min_opset}..{profile.max_opset}; "
            f"the model has opset {opset}: "
            f"set export.opset: {min(opset, profile.max_opset)} and rerun"
        )
    b = batch or profile.batch
    if b > profile.max_batch:
        raise InputError(f"batch {b} exceeds target '{profile.name}' max batch {profile.max_batch}")
    if b > 1 and not dynamic_batch:
        raise InputError(
            f"target '{profile.name}' runs batch {b} but the model has a fixed batch of 1; "
            "set export.dynamic_batch: true, or pass --batch 1"
        )
