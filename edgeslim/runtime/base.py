"""The ``Backend`` protocol, its options and what a backend says about itself.

Everything that runs a model (evaluation, parity gates, bench, check, the quantize stage's
candidates) talks to this interface only: ``run(batch) -> first output``, ``run_all(batch) ->
every output by name``, ``input_shape()``, ``describe()``. Backends are opened by name through
``edgeslim.runtime.registry`` with one typed :class:`RuntimeOptions`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@dataclass
class RuntimeOptions:
    """How to open a backend. Every field has the same meaning for every backend.

    Attributes:
        device: ``cpu`` or ``cuda``; for onnxruntime also ``tensorrt`` (the TensorRT EP).
        precision: what to run in: ``None`` = what the artifact holds (fp32 or its int8);
            ``bf16`` = BF16 inference (OpenVINO hint, native BF16 CPUs only); ``fp16`` on GPUs.
        threads: intra-op threads (None: the library's default, usually all cores).
        inter_threads: inter-op threads (onnxruntime, torch).
        allow_spinning: onnxruntime idle-thread spinning (None: ``providers.DEFAULT_ALLOW_SPINNING``).
        precise: a reference run for parity: true FP32 everywhere (no TF32, no BF16 hint,
            basic graph optimizations, OpenVINO ACCURACY mode).
        pinning: pin OpenVINO's threads to cores.
        input_shape: full input shape (batch first) to fix a dynamic model to before compiling
            (OpenVINO compiles a faster static graph); None keeps the model's own.
        providers: an explicit onnxruntime provider list, overriding ``device``.
        cache_dir: TensorRT-EP engine/timing cache folder.
    """

    device: str = "cpu"
    precision: str | None = None
    threads: int | None = None
    inter_threads: int | None = None
    allow_spinning: bool | None = None
    precise: bool = False
    pinning: bool = True
    input_shape: tuple[int, ...] | None = None
    providers: list[Any] | None = None
    cache_dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Capabilities:
    """What a backend class can do on this machine (from the provider table)."""

    devices: tuple[str, ...]
    precisions: dict[str, tuple[str, ...]]
    artifacts: tuple[str, ...]


@dataclass
class BackendInfo:
    """What ``describe()`` returns: enough to reproduce the measurement."""

    name: str
    version: str
    device: str
    precision: str
    threads: int | str | None
    providers: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Backend(Protocol):
    """An opened artifact. ``run`` returns the first output as float32; ``run_all`` all of them."""

    name: str
    output_names: list[str]

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def run_all(self, batch: np.ndarray) -> dict[str, np.ndarray]: ...

    def input_shape(self) -> tuple[int, ...]: ...

    def describe(self) -> dict[str, Any]: ...
