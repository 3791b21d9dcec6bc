"""The quantize stage's flow: float ONNX, calibration set, candidate artifacts, the choice."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.compress import quantize as Q

if TYPE_CHECKING:
    from torch import nn

    from edgeslim.compress.configs import QuantizeConfig
    from edgeslim.data.bundle import DataBundle
    from edgeslim.stages.context import StageContext

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def calibration_set(
    cfg: QuantizeConfig, data: DataBundle, ctx: StageContext
) -> tuple[np.ndarray, dict]:
    from edgeslim.calibration import select

    c = cfg.calibration
    seed = ctx.recipe.run.seed if c.seed is None else c.seed
    if c.source == "folder":
        if not c.folder:
            from edgeslim.errors import InputError

            raise InputError(
                "quantize.calibration.source is 'folder' but calibration.folder is empty; "
                "give a folder of images or .npy files"
            )
        batch, src = select.from_folder(c.folder, data, c.samples, seed), f"folder:{c.folder}"
    else:
        batch, src = select.from_split(data, c.samples, seed), "train (class-stratified)"
    stored = select.store(batch, ctx.workdir, src)
    return batch, stored.to_json()


def _settings(cfg: QuantizeConfig) -> Q.PtqSettings:
    return Q.PtqSettings(
        cfg.calibrate_method,
        cfg.percentile,
        cfg.per_channel,
        cfg.symmetric_activations,
        cfg.reduce_range,
        cfg.preprocess,
        list(cfg.exclude_layers),
    )


def build_int8(
    cfg: QuantizeConfig,
    float_path: Path,
    work: Path,
    calib: np.ndarray,
    data: DataBundle,
    threads: int | None,
    ctx: StageContext,
    model: nn.Module,
) -> tuple[Path, dict[str, Any]]:
    if cfg.method == "qat":
        from edgeslim.compress.qat_stage import qat_to_onnx

        return qat_to_onnx(model, data, cfg, ctx, calib, work / "int8_qat.onnx")
    s = _settings(cfg)
    src = Q.preprocess(float_path, work / "float_prep.onnx") if s.preprocess else float_path
    if cfg.sensitivity.enabled:
        scan = Q.sensitivity_scan(
            src,
            work,
            calib,
            s,
            data,
            cfg.accuracy_budget,
            cfg.sensitivity.max_float_layers,
            threads,
            ctx.log,
        )
        path = Path(scan.pop("path")).rename(work / "int8.onnx")
        return path, {"sensitivity": scan}
    return Q.quantize_static_qdq(src, work / "int8.onnx", calib, s), {}


def quantize_model(
    model: nn.Module, data: DataBundle, cfg: QuantizeConfig, ctx: StageContext
) -> tuple[Path, dict[str, Any]]:
    """Export the float model, build the requested precision(s), keep the one measurement picks."""
    from edgeslim.deploy.export import export_onnx

    work = ctx.workdir / "candidates"
    work.mkdir()
    threads = cfg.target.threads or ctx.recipe.run.threads
    shape = data.input_shape
    float_path = export_onnx(model, shape, ctx.workdir / "float.onnx", cfg.opset, True).path
    wanted = _wanted(cfg)
    cands: dict[str, Path] = {"fp32": float_path}
    metrics: dict[str, Any] = {"float_onnx": "float.onnx", "method": cfg.method}
    if "int8" in wanted:
        calib, metrics["calibration"] = calibration_set(cfg, data, ctx)
        cands["int8"], extra = build_int8(cfg, float_path, work, calib, data, threads, ctx, model)
        metrics.update(extra)
    if "int8_dynamic" in wanted:
        cands["int8_dynamic"] = Q.quantize_dynamic_int8(float_path, work / "int8_dynamic.onnx")
    if "fp16" in wanted:
        cands["fp16"] = Q.to_fp16(float_path, work / "fp16.onnx")
    forced = None if cfg.precision == "auto" else cfg.precision
    choice = Q.choose_precision(
        cands,
        float_path,
        data,
        shape,
        cfg.accuracy_budget,
        threads,
        cfg.latency_iters,
        forced,
        cfg.target.providers,
    )
    metrics.update(precision=choice["chosen"], precision_choice=choice)
    if choice.get("warning"):
        metrics["warning"] = choice["warning"]
    out = ctx.workdir / "model.onnx"
    shutil.copyfile(cands[choice["chosen"]], out)
    shutil.rmtree(work)  # candidates are measured and recorded; only the chosen one ships
    return out, metrics


def _wanted(cfg: QuantizeConfig) -> set[str]:
    if cfg.precision != "auto":
        # fp32 is always measured too, so a slower forced precision can be reported.
        return {cfg.precision}
    gpu = any(p in GPU_PROVIDERS for p in cfg.target.providers)
    default = ["fp32", "int8", "int8_dynamic"] + (["fp16"] if gpu else [])
    return set(cfg.candidates or default)
