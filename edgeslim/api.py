"""edgeslim from Python: compress, export and evaluate a model without writing a recipe.

Each function takes plain objects (an ``nn.Module``, a NumPy/torch batch, a path) and returns
plain results, like Torch-Pruning's pruners or ``nncf.quantize``; the recipe stages are thin
adapters over the same code. Inputs are preprocessed float32 NCHW batches (normalised as the
model expects).

>>> import torch, edgeslim.api as es
>>> from edgeslim.models import create_model
>>> net = create_model("tinycnn", num_classes=4, width=8)
>>> res = es.prune(net, torch.zeros(1, 3, 32, 32), target_macs=0.5)
>>> res.macs_after <= 0.5 * res.macs_before
True
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeslim.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from edgeslim.pipeline import RunResult
    from edgeslim.recipe import Recipe

__all__ = ["PruneResult", "evaluate", "export", "load_model", "prune", "quantize", "run"]


@dataclass
class PruneResult:
    """A pruned copy of the model and what changed."""

    model: nn.Module
    ratio: float
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    channels: list[dict[str, Any]] = field(default_factory=list)

    @property
    def macs_fraction(self) -> float:
        return self.macs_after / max(self.macs_before, 1)


def prune(model: nn.Module, example_input: torch.Tensor, *, target_macs: float | None = None,
          target_params: float | None = None, ratio: float | None = None, importance: str = "l2",
          round_to: int | None = 8, ignored_layers: Sequence[str] | None = None, max_ratio: float = 0.95,
          global_pruning: bool = False) -> PruneResult:
    """Structured channel pruning (torch-pruning's dependency graph) of a copy of ``model``.

    Give exactly one of ``target_macs`` / ``target_params`` (fraction to keep; the channel ratio
    is searched) or ``ratio`` (fraction of channels removed per layer). The head and
    ``ignored_layers`` keep their channels. Attention layers (``nn.MultiheadAttention``, timm
    ViT/DeiT/MobileViT) keep their heads, each narrower. A model built by edgeslim keeps a spec
    so ``edgeslim.models.serialize.save_model`` can store the pruned result. No fine-tuning is
    done: recover accuracy with your own loop (or the recipe's ``prune`` stage).
    """
    from edgeslim.compress import prune as P

    given = [k for k, v in (("target_macs", target_macs), ("target_params", target_params), ("ratio", ratio))
             if v is not None]
    if len(given) != 1:
        raise InputError(f"give exactly one of target_macs, target_params, ratio (given: {', '.join(given) or 'none'})")
    model = copy.deepcopy(model).eval()
    kw = {"global_pruning": global_pruning, "round_to": round_to, "max_ratio": max_ratio,
          "ignored": list(ignored_layers) if ignored_layers is not None else None}
    before = P.snapshot(model)
    macs0, params0 = P.measure(model, example_input, "macs"), P.measure(model, example_input, "params")
    if ratio is None:
        by, frac = ("macs", target_macs) if target_macs is not None else ("params", target_params)
        base = macs0 if by == "macs" else params0
        ratio = P.search_ratio(model, example_input, importance, int(base * frac), by, **kw)
    P.prune_once(model, example_input, importance, ratio, **kw)
    P.verify_forward(model, example_input)
    if getattr(model, "_edgeslim_spec", None) is not None:
        model = P.record_edit_after(model, before)
    return PruneResult(model, ratio, macs0, P.measure(model, example_input, "macs"), params0,
                       P.measure(model, example_input, "params"), P.channel_table(before, model))


def export(model: nn.Module, input_shape: Sequence[int], out: str | Path, *, opset: int = 18,
           dynamic_batch: bool = True, check_parity: bool = True, samples: int = 8) -> Path:
    """Export to one finalized ONNX file (simplified, checked, metadata) and gate FP32 parity.

    ``input_shape`` is one input without the batch axis, e.g. ``(3, 224, 224)``. Parity is
    checked on ``samples`` random inputs against the torch model; a failure raises GateError.
    """
    import numpy as np

    from edgeslim.onnxio.export import export_onnx

    shape = tuple(int(d) for d in input_shape)
    res = export_onnx(model, shape, out, opset, dynamic_batch)
    for note in res.warnings:  # export_onnx records its notes; a notebook user hears them here
        warnings.warn(f"edgeslim export: {note}", stacklevel=2)
    if check_parity:
        from edgeslim.deploy.export.parity import ParityConfig, fp32_parity, gate
        from edgeslim.runtime import open_backend

        x = np.random.default_rng(0).standard_normal((samples, *shape)).astype(np.float32)
        cfg = ParityConfig(samples=samples, batch_size=samples if dynamic_batch else 1, min_top1_agreement=0.0)
        ref = open_backend(model, "torch", input_shape=shape)
        gate(fp32_parity(ref, open_backend(res.path, "onnxruntime"), x, cfg))
    return res.path


def quantize(model_or_onnx: nn.Module | str | Path, calib_data: np.ndarray | torch.Tensor, out: str | Path, *,
             target: str | None = None, per_channel: bool = True, symmetric: bool | None = None,
             calibrate_method: str = "minmax", opset: int = 17) -> Path:
    """Static INT8 (QDQ) ONNX from a model or a float ONNX, calibrated on ``calib_data`` (N, C, H, W).

    ``target`` (a deploy profile, e.g. ``jetson-orin-nano``) builds what that runtime takes:
    for TensorRT, int8 activations and weights with zero point 0 and an opset it parses; the
    result is checked against the profile and an InputError names any node it would reject.
    Without a target, activations are uint8 (onnxruntime's fastest CPU format).
    """
    from edgeslim.compress import quantize as Q
    from edgeslim.fsutil import temp_path_beside

    calib = _numpy(calib_data)
    profile = _profile(target, opset)
    sym = _symmetric(profile, symmetric)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.stem}.quant-", dir=out.parent))
    try:
        src = _float_onnx(model_or_onnx, tuple(calib.shape[1:]), scratch / "float.onnx", opset)
        prep = Q.preprocess(src, scratch / "prep.onnx")
        settings = Q.PtqSettings(calibrate_method, per_channel=per_channel, symmetric_activations=sym)
        tmp = temp_path_beside(out)
        Q.quantize_static_qdq(prep, tmp, calib, settings)
        _check_profile(tmp, profile)
        tmp.replace(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def _numpy(x: Any) -> np.ndarray:
    import numpy as np

    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if arr.ndim != 4:
        raise InputError(f"calibration data must be a batch (N, C, H, W); given shape {tuple(arr.shape)}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _profile(target: str | None, opset: int) -> Any:
    if target is None:
        return None
    from edgeslim.deploy.profiles import get_profile

    profile = get_profile(target)
    if opset > profile.max_opset:
        raise InputError(f"opset {opset} is newer than target '{target}' parses (<= {profile.max_opset}); "
                         f"pass opset={profile.max_opset}")
    return profile


def _symmetric(profile: Any, symmetric: bool | None) -> bool:
    if profile is not None and profile.accepts.int8_activations == "symmetric":
        if symmetric is False:
            raise InputError(f"symmetric=False conflicts with target '{profile.name}': {profile.accepts.runtime} "
                             "builds only symmetric INT8 QDQ (zero point 0); drop symmetric or the target")
        return True
    return bool(symmetric)


def _float_onnx(model_or_onnx: Any, shape: tuple[int, ...], out: Path, opset: int) -> Path:
    if isinstance(model_or_onnx, (str, Path)):
        path = Path(model_or_onnx)
        if path.suffix != ".onnx" or not path.is_file():
            raise InputError(f"'{path}' is not an existing .onnx file; pass an nn.Module or a float ONNX path")
        return path
    from edgeslim.onnxio.export import export_onnx

    return export_onnx(model_or_onnx, shape, out, opset, True).path


def _check_profile(path: Path, profile: Any) -> None:
    if profile is None:
        return
    from edgeslim.deploy.compat import check_onnx_for_profile, first_problem_message

    problems = check_onnx_for_profile(path, profile)
    if problems:
        path.unlink(missing_ok=True)
        raise InputError(first_problem_message(problems, f"the INT8 model does not suit '{profile.name}'"))


def evaluate(model_or_onnx: nn.Module | str | Path, images: np.ndarray | torch.Tensor,
             labels: np.ndarray | torch.Tensor | Sequence[int], *, batch_size: int = 64,
             num_classes: int | None = None) -> dict[str, Any]:
    """top-1, top-5, macro-F1, per-class accuracy and confusion matrix on preprocessed images.

    An ONNX path runs in onnxruntime (as deployed); a module runs in torch on the CPU.
    """
    import numpy as np

    from edgeslim.measure import topk_metrics

    x = _numpy(images)
    y = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels, dtype=np.int64).ravel()
    if len(y) != len(x):
        raise InputError(f"{len(x)} images but {len(y)} labels; give one label per image")
    if isinstance(model_or_onnx, (str, Path)):
        from edgeslim.runtime import open_backend

        backend: Any = open_backend(model_or_onnx, "onnxruntime")
    else:
        from edgeslim.runtime import open_backend

        backend = open_backend(model_or_onnx, "torch", input_shape=tuple(x.shape[1:]))
    logits = np.concatenate([backend.run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    return topk_metrics(logits, y, num_classes or int(max(logits.shape[1], y.max() + 1)))


def load_model(path: str | Path, like: nn.Module | None = None) -> nn.Module:
    """Reopen a ``model.pt`` a run saved (see :func:`edgeslim.models.serialize.load_model`)."""
    from edgeslim.models.serialize import load_model as _load

    return _load(path, like)


def run(recipe: str | Path | dict[str, Any] | Recipe, model: nn.Module | None = None,
        quiet: bool = True) -> RunResult:
    """Run a recipe; ``model`` replaces ``model.source`` with an nn.Module you built in Python.

    The module is registered as an in-process source (``object:<Class>-<hash>``); the run
    records its class so ``edgeslim export/bench/deploy`` can reopen the run when the class is
    importable (or pass ``like=`` to :func:`load_model`). ``model.checkpoint`` still applies.
    """
    from edgeslim.pipeline import run_pipeline
    from edgeslim.recipe import Recipe, deep_merge, load_recipe, parse_recipe

    over: dict[str, Any] = {}
    if model is not None:  # validated as the recipe's source (what each stage needs depends on it)
        from edgeslim.models.sources import register_object

        over = {"model": {"source": register_object(model)}}
    if isinstance(recipe, (Recipe, dict)):
        raw = recipe.resolved() if isinstance(recipe, Recipe) else copy.deepcopy(recipe)
        rec = parse_recipe(deep_merge(raw, over), "<recipe>" if isinstance(recipe, Recipe) else "<dict>")
    else:
        rec = load_recipe(recipe, over or None)
    from edgeslim.progress import Reporter

    return run_pipeline(rec, Reporter(quiet=quiet))
