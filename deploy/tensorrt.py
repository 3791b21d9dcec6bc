"""TensorRT engines from ONNX (TensorRT Python API). Running them is the runtime layer's
``edgeslim.runtime.tensorrt.TensorRTBackend`` (``open_backend("m.engine")``).

* FP32 and FP16 engines from an FP32 ONNX; INT8 from a QDQ model (explicit quantization: the
  scales come from the model) or, for an FP32 model, through an INT8 calibration cache
  (implicit quantization, the route older devices and TensorRT 8 use) fed by edgeslim's
  calibration set (``edgeslim.calibration.readers.tensorrt_calibrator``).
* An optimization profile (min/opt/max batch) for the dynamic batch axis, a timing cache so
  rebuilds are fast, and ``<engine>.json`` metadata: TensorRT version, GPU name and compute
  capability, because an engine only runs on the GPU and TensorRT version it was built with.

``tensorrt`` is imported inside functions only (``pip install 'edgeslim[tensorrt]'``).
Planning (``plan_build``) needs neither TensorRT nor a GPU, so it is tested everywhere.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.errors import InputError, StageError, require
from edgeslim.fsutil import atomic_write_bytes, atomic_write_json

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class BuildPlan:
    """What a build will do, decided from the ONNX file and the request before TensorRT runs."""

    onnx: str
    precision: str
    int8_mode: str | None  # "explicit" (QDQ) | "calibration" | None
    input_name: str
    shapes: dict[str, list[int]]  # min/opt/max full input shapes (batch first)
    dynamic_batch: bool
    workspace_mb: int
    calibration_cache: str | None = None
    notes: list[str] = field(default_factory=list)


def plan_build(
    onnx_path: str | Path,
    precision: str = "fp16",
    *,
    min_batch: int = 1,
    opt_batch: int = 1,
    max_batch: int = 8,
    workspace_mb: int = 1024,
    calibration_cache: str | Path | None = None,
    has_calib_data: bool = False,
) -> BuildPlan:
    """Check the request against the model; raise InputError naming the fix when it cannot work."""
    from edgeslim.onnxio.info import detect_precision, graph_inputs, load_model

    if precision not in PRECISIONS:
        raise InputError(f"TensorRT precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    path = Path(onnx_path)
    if not path.is_file():
        raise InputError(f"ONNX file '{path}' does not exist")
    m = load_model(path)
    inp = graph_inputs(m)[0]
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim]
    dynamic = dims[0] <= 0
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise InputError(
            f"batch profile min {min_batch} <= opt {opt_batch} <= max {max_batch} does not hold"
        )
    if not dynamic and (opt_batch != dims[0] or max_batch != dims[0]):
        min_batch = opt_batch = max_batch = dims[0]
    chw = dims[1:]
    shapes = {k: [b, *chw] for k, b in (("min", min_batch), ("opt", opt_batch), ("max", max_batch))}
    kind = detect_precision(m)
    plan = BuildPlan(str(path), precision, None, inp.name, shapes, dynamic, workspace_mb)
    if kind == "fp16" and precision == "fp32":
        raise InputError("the model holds FP16 weights; build it with precision fp16")
    if kind in ("int8", "int8_dynamic"):
        if precision != "int8":
            raise InputError(
                f"'{path.name}' is a QDQ (INT8) model; TensorRT builds it only as int8 "
                "(explicit quantization): use precision int8"
            )
        plan.int8_mode = "explicit"
    elif precision == "int8":
        cache = Path(calibration_cache) if calibration_cache else None
        if not has_calib_data and (cache is None or not cache.is_file()):
            raise InputError(
                "INT8 from an FP32 model needs calibration: a calibration cache file or a "
                "calibration set (calib.npy from the quantize stage); or quantize to QDQ first"
            )
        plan.int8_mode, plan.calibration_cache = "calibration", str(cache) if cache else None
        plan.notes.append(
            "implicit INT8 calibration is deprecated in TensorRT 10; QDQ models are preferred"
        )
    return plan


def _trt() -> Any:
    return require("tensorrt", "tensorrt")


def build_engine(
    plan: BuildPlan,
    engine_path: str | Path,
    timing_cache: str | Path | None = None,
    calib_data: np.ndarray | None = None,
) -> dict[str, Any]:
    """Build and save a serialized engine plus ``<engine>.json`` metadata; return the metadata."""
    from edgeslim.runtime.tensorrt import gpu_info

    trt = _trt()
    info = gpu_info()
    engine_path = Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(plan.onnx):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise StageError(
            f"TensorRT {trt.__version__} cannot parse '{Path(plan.onnx).name}': {errs[:400]}; "
            "try a lower export.opset"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    profile = builder.create_optimization_profile()
    profile.set_shape(plan.input_name, plan.shapes["min"], plan.shapes["opt"], plan.shapes["max"])
    config.add_optimization_profile(profile)
    _set_precision(trt, config, plan, profile, calib_data)
    cache_bytes = (
        Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    )
    tcache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(tcache, ignore_mismatch=True)
    t0 = time.perf_counter()
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise StageError(
            f"TensorRT failed to build a {plan.precision} engine from '{Path(plan.onnx).name}' "
            "(see the TensorRT log above); try precision fp32 or a larger workspace"
        )
    atomic_write_bytes(engine_path, bytes(blob))
    if timing_cache:
        atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    meta = {
        "schema": "edgeslim.engine/1",
        "tensorrt": trt.__version__,
        **info,
        "plan": asdict(plan),
        "build_s": round(time.perf_counter() - t0, 2),
        "size_bytes": engine_path.stat().st_size,
        "note": "an engine runs only on this GPU model with this TensorRT version",
    }
    atomic_write_json(engine_path.with_name(engine_path.name + ".json"), meta)
    return meta


def _set_precision(
    trt: Any, config: Any, plan: BuildPlan, profile: Any, calib_data: np.ndarray | None
) -> None:
    if plan.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8: layers left in float run in fp16
    if plan.precision != "int8":
        return
    config.set_flag(trt.BuilderFlag.INT8)
    if plan.int8_mode == "calibration":
        config.int8_calibrator = make_calibrator(
            calib_data, plan.calibration_cache, plan.shapes["opt"][0]
        )
        config.set_calibration_profile(profile)


def make_calibrator(data: np.ndarray | None, cache: str | None, batch_size: int) -> Any:
    """edgeslim's INT8 entropy calibrator (calibration/) over ``data``, reusing ``cache``."""
    from edgeslim.calibration.readers import tensorrt_calibrator

    arr = (
        data if data is not None else np.zeros((0, 1), np.float32)
    )  # cache-only: no batches needed
    return tensorrt_calibrator(arr, cache or "calibration.cache", batch_size=max(1, batch_size))


def run_calibration_data(run_dir: str | Path) -> np.ndarray | None:
    """The newest calibration set a quantize stage stored in the run (hash-checked), if any."""
    from edgeslim.calibration.select import load_stored

    metas = sorted(Path(run_dir).glob("*/calib.json"))
    return load_stored(metas[-1].parent).load() if metas else None


def build_engine_for_run(
    run_dir: str | Path,
    out: str | Path,
    precision: str = "fp16",
    opt_batch: int = 1,
    max_batch: int = 8,
) -> dict[str, Any]:
    """Engine for a run's newest ONNX, calibrating FP32 -> INT8 on the run's stored calibration set.

    The calibration cache is written next to the engine (``calibration.cache``) so a device
    without the calibration images can rebuild with ``trtexec --int8 --calib=calibration.cache``.
    """
    from edgeslim.deploy.bundle.build import load_run, onnx_stage

    run_dir, out = Path(run_dir), Path(out)
    st = onnx_stage(run_dir, load_run(run_dir))
    calib = run_calibration_data(run_dir) if precision == "int8" else None
    cache = out.with_name("calibration.cache")
    plan = plan_build(
        run_dir / st["dir"] / st["onnx_file"],
        precision,
        opt_batch=opt_batch,
        max_batch=max_batch,
        calibration_cache=cache if cache.is_file() else None,
        has_calib_data=calib is not None,
    )
    if plan.int8_mode == "calibration":
        plan.calibration_cache = str(cache)
    return build_engine(plan, out, timing_cache=out.with_name("timing.cache"), calib_data=calib)
