"""The quantize stage's flow: float ONNX, calibration set, candidate artifacts, the choice."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeslim.compress import precision_auto as PA
from edgeslim.compress import quantize as Q
from edgeslim.fsutil import atomic_write_text
from edgeslim.runtime.providers import GPU_PROVIDERS, preset_of

if TYPE_CHECKING:
    from torch import nn

    from edgeslim.compress.configs import QuantizeConfig
    from edgeslim.data.bundle import DataBundle
    from edgeslim.deploy.profiles import Profile
    from edgeslim.models.frozen import FrozenModel
    from edgeslim.recipe import Recipe
    from edgeslim.stages.context import StageContext


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


def target_profile(cfg: QuantizeConfig, recipe: Recipe | None) -> Profile | None:
    """The deploy profile the model must suit: ``target.profile``, else the recipe's deploy stage."""
    from edgeslim.deploy.profiles import get_profile

    name = cfg.target.profile
    if name is None and recipe is not None:
        name = next((getattr(s, "target", None) for s in recipe.stages if s.stage == "deploy"), None)
    return get_profile(name) if isinstance(name, str) else None


def check_for_target(cfg: QuantizeConfig, profile: Profile | None) -> bool:
    """Refuse settings the target's runtime cannot take; return whether activations are symmetric.

    Never changes what the user asked: an explicit ``symmetric_activations: false`` for a
    TensorRT target is an error, not silently flipped.
    """
    from edgeslim.errors import InputError

    if profile is None:
        return bool(cfg.symmetric_activations)
    acc, where = profile.accepts, f"target '{profile.name}' ({profile.accepts.runtime})"
    if acc.int8_activations == "symmetric" and cfg.symmetric_activations is False:
        raise InputError(f"quantize.symmetric_activations is false but {where} builds only symmetric INT8 QDQ "
                         "(int8, zero point 0); remove symmetric_activations or choose another target")
    if cfg.opset > profile.max_opset:
        raise InputError(f"quantize.opset {cfg.opset} is newer than {where} parses (<= {profile.max_opset}); "
                         f"set quantize.opset: {profile.max_opset}")
    order = profile.runtime_order
    if cfg.backends:
        extra = [b for b in cfg.backends if b not in order]
        if extra:
            raise InputError(f"quantize.backends lists {', '.join(extra)} but {where} runs {', '.join(order)}; "
                             "remove it or choose another target")
    asked = [p for p in ([cfg.precision] if cfg.precision != "auto" else (cfg.candidates or [])) if p != "fp32"]
    for p in asked:
        if p == "bf16":  # a runtime precision (OpenVINO's hint on the float file), not a file format
            if "openvino" not in order:
                raise InputError(f"quantize precision bf16 runs in openvino only and {where} runs "
                                 f"{', '.join(order)}; choose fp32 or int8 for it")
            continue
        if (p == "int8_dynamic" and not acc.dynamic_int8) or p.split("_")[0] not in profile.precisions:
            raise InputError(f"quantize precision {p} cannot run on {where}, which runs "
                             f"{', '.join(profile.precisions)} (static QDQ for int8); choose one of those")
    return acc.int8_activations == "symmetric" or bool(cfg.symmetric_activations)


def _settings(cfg: QuantizeConfig, symmetric: bool) -> Q.PtqSettings:
    return Q.PtqSettings(
        cfg.calibrate_method,
        cfg.percentile,
        cfg.per_channel,
        symmetric,
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
    model: nn.Module | None,
    symmetric: bool = False,
) -> tuple[Path, dict[str, Any]]:
    if cfg.method == "qat":
        from edgeslim.compress.qat_stage import qat_to_onnx
        from edgeslim.errors import InputError

        if model is None:
            raise InputError("quantize.method qat trains the model, but the source is a frozen graph; use "
                             "method: ptq, or give the Python class as model.source")
        return qat_to_onnx(model, data, cfg, ctx, calib, work / "int8_qat.onnx")
    s = _settings(cfg, symmetric)
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
    model: nn.Module | FrozenModel | Path, data: DataBundle, cfg: QuantizeConfig, ctx: StageContext
) -> tuple[Path, dict[str, Any]]:
    """Export the float model, build the requested precision(s), keep the one measurement picks.

    ``model`` is the chain's torch model, or a frozen source (``FrozenModel``: TorchScript,
    ExportedProgram, ONNX) or an ONNX path, whose float ONNX is taken as it is. With a target
    profile the INT8 model is built the way that runtime takes it and checked against it; the
    chosen precision must stay within ``accuracy_budget`` of the float ONNX on the val split.
    """
    profile = target_profile(cfg, ctx.recipe)
    symmetric = check_for_target(cfg, profile)
    work = ctx.workdir / "candidates"
    work.mkdir()
    threads = cfg.target.threads or ctx.recipe.run.threads
    shape = data.input_shape
    notes: list[str] = []
    float_path, torch_model = float_onnx(model, shape, ctx.workdir / "float.onnx", cfg.opset, notes)
    for note in notes:  # e.g. the dynamo exporter's fallback: said unless --quiet, kept in metrics
        ctx.log(f"[yellow]quantize: float export: {note}[/yellow]")
    backends, devices = candidate_backends(cfg, profile)
    wanted = _wanted(cfg, profile, backends)
    cands: dict[str, Path] = {"fp32": float_path}
    metrics: dict[str, Any] = {"float_onnx": "float.onnx", "method": cfg.method}
    if notes:
        metrics["export_warnings"] = notes
    if profile is not None:
        metrics["target_profile"] = profile.name
    metrics["int8_format"] = {"activations": "int8 symmetric (zero point 0)" if symmetric else "uint8 asymmetric",
                              "weights": "int8 symmetric " + ("per-channel" if cfg.per_channel else "per-tensor")}
    if "int8" in wanted:
        calib, metrics["calibration"] = calibration_set(cfg, data, ctx)
        cands["int8"], extra = build_int8(cfg, float_path, work, calib, data, threads, ctx, torch_model, symmetric)
        metrics.update(extra)
    if "int8_dynamic" in wanted:
        cands["int8_dynamic"] = Q.quantize_dynamic_int8(float_path, work / "int8_dynamic.onnx")
    if "fp16" in wanted:
        cands["fp16"] = Q.to_fp16(float_path, work / "fp16.onnx")
    choice = choose_runtime(cfg, wanted, backends, devices, cands, data, threads, ctx)
    hint = PA.runtime_hint(choice)
    metrics.update(precision=choice["chosen"], backend=choice["chosen_backend"], runtime=hint,
                   precision_choice=choice)
    if choice.get("warning"):
        metrics["warning"] = choice["warning"]
    for note in [choice.get("note"), *choice.get("notes", [])]:
        if note:
            ctx.log(f"precision auto: {note}")
    atomic_write_text(ctx.workdir / "precision_choice.md", "\n".join(PA.choice_markdown(choice)))
    metrics["precision_choice_file"] = "precision_choice.md"
    out = ctx.workdir / "model.onnx"
    _ship(cands[PA.artifact_key(choice["chosen"])], out, hint)
    shutil.rmtree(work)  # candidates are measured and recorded; only the chosen one ships
    _check_target(out, profile)
    metrics["accuracy_guard"] = _guard(cfg, choice, len(data.val))
    return out, metrics


def candidate_backends(cfg: QuantizeConfig, profile: Profile | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """The runtimes candidates are measured in (the target's order; no target: onnxruntime, the
    runtime every bundle can fall back to) and the device each runs on here."""
    gpu = any(p in GPU_PROVIDERS for p in cfg.target.providers)
    order = tuple(cfg.backends) if cfg.backends else profile.runtime_order if profile else ("onnxruntime",)
    # onnxruntime on the providers the recipe names; TensorRT on the GPU; OpenVINO on the CPU
    devices = {"onnxruntime": preset_of(cfg.target.providers) if gpu else "cpu", "tensorrt": "cuda", "openvino": "cpu"}
    return order, devices


def choose_runtime(cfg: QuantizeConfig, wanted: set[str], backends: tuple[str, ...], devices: dict[str, str],
                   files: dict[str, Path], data: DataBundle, threads: int | None, ctx: StageContext) -> dict[str, Any]:
    """Every backend x precision candidate measured (or the reason it is skipped); the choice."""
    from edgeslim.runtime.providers import PRECISIONS, Candidate, cpu_precision_support, precision_candidates

    forced = None if cfg.precision == "auto" else cfg.precision
    cands = precision_candidates(wanted=tuple(p for p in PRECISIONS if p in wanted), backends=backends,
                                 devices=devices)
    for c in cands:
        if c.backend == "tensorrt" and not c.skipped and c.applicable:
            c.skipped = ("TensorRT engines are built on the device (build_engine.sh), not by this stage; to time "
                         "TensorRT here set target.providers: [TensorrtExecutionProvider, CUDAExecutionProvider]")
    if forced == "fp16" and not any(c.precision == "fp16" and c.applicable for c in cands):
        # a stand-in, said so in the record: the CPU provider runs the fp16 file without fast kernels
        cands.append(Candidate("onnxruntime", "fp16", "cpu", options={"stand_in": "no GPU provider given"}))
    gpu = any(p in GPU_PROVIDERS for p in cfg.target.providers)
    choice = PA.select(cands, files, data, cfg.accuracy_budget, threads=threads, iters=cfg.latency_iters,
                       forced=forced, providers=list(cfg.target.providers) if gpu else None, log=ctx.log)
    cpu = cpu_precision_support()
    feats = cpu["features"]
    choice["cpu"] = {"model": feats.get("model"), **{k: feats.get(k) for k in ("avx512_vnni", "avx512_bf16",
                     "amx_bf16", "amx_int8")}, "bf16_native": cpu["bf16_native"], "bf16_reason": cpu["bf16_reason"]}
    choice["backends"] = list(backends)
    return choice


def _ship(src: Path, out: Path, hint: dict[str, Any]) -> None:
    """model.onnx = the chosen artifact, stamped with the runtime its choice was made for
    (metadata ``edgeslim.runtime``; the export stage keeps it, deploy reads it)."""
    from edgeslim.onnxio.export import finalize_onnx

    shutil.copyfile(src, out)
    finalize_onnx(out, out, {"edgeslim.runtime": hint}, simplify=False)


def float_onnx(model: nn.Module | FrozenModel | Path, shape: tuple[int, ...], out: Path,
               opset: int, notes: list[str] | None = None) -> tuple[Path, nn.Module | None]:
    """The float ONNX every candidate is built from, and the torch module if there is one
    (the exporter's notes, such as a fallback to TorchScript, are appended to ``notes``)."""
    from edgeslim.onnxio.export import export_onnx, finalize_onnx

    if isinstance(model, Path):
        return finalize_onnx(model, out, {"edgeslim.exporter": "none (ONNX source)"}, input_shape=shape).path, None
    if hasattr(model, "to_onnx") and hasattr(model, "kind"):  # a FrozenModel
        return model.to_onnx(out, shape, opset, True).path, model.module  # type: ignore[union-attr]
    res = export_onnx(model, shape, out, opset, True)  # type: ignore[arg-type]
    if notes is not None:
        notes.extend(res.warnings)
    return res.path, model  # type: ignore[return-value]


def _check_target(path: Path, profile: Profile | None) -> None:
    """The built model must be what the target takes (a broken promise is a bug, said loudly)."""
    if profile is None:
        return
    from edgeslim.deploy.compat import check_onnx_for_profile, first_problem_message
    from edgeslim.errors import StageError

    problems = check_onnx_for_profile(path, profile)
    if problems:
        raise StageError(first_problem_message(problems, f"quantize built a model '{profile.name}' would reject"))


def _guard(cfg: QuantizeConfig, choice: dict[str, Any], n_val: int) -> dict[str, Any]:
    from edgeslim.compress.guards import check_budget

    chosen = next(r for r in choice["candidates"] if r["candidate"] == choice["chosen_candidate"])
    parent = choice["reference_val_top1"]  # the float ONNX in onnxruntime
    knobs = ("use calibrate_method: entropy or percentile, more calibration.samples, raise "
             "sensitivity.max_float_layers, or method: qat")
    return check_budget("quantize", parent, chosen["val_top1"], cfg.accuracy_budget, cfg.on_budget, n_val, knobs)


def _wanted(cfg: QuantizeConfig, profile: Profile | None = None,
            backends: tuple[str, ...] = ("onnxruntime",)) -> set[str]:
    """Precisions to build and measure. fp32 is always measured too: it is the fallback of auto
    and the comparison that tells a forced precision it is slower."""
    if cfg.precision != "auto":
        return {cfg.precision, "fp32"}
    if cfg.candidates:
        return {*cfg.candidates, "fp32"}
    gpu = any(p in GPU_PROVIDERS for p in cfg.target.providers)
    # Only what the target runs: no dynamic INT8 for TensorRT, fp16 where the device has it, bf16
    # where OpenVINO is one of its runtimes (the candidate is skipped, with the reason, on CPUs
    # without native BF16).
    out = {"fp32", "int8"}
    if profile is None or profile.accepts.dynamic_int8:
        out.add("int8_dynamic")
    if gpu and (profile is None or "fp16" in profile.precisions):
        out.add("fp16")
    if "openvino" in backends:
        out.add("bf16")
    return out
