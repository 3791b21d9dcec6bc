"""QAT inside the quantize stage: fake-quant training (shared engine) exported to QDQ ONNX."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from torch import nn

    from edgeslim.compress.configs import QuantizeConfig
    from edgeslim.data.bundle import DataBundle
    from edgeslim.stages.context import StageContext


def qat_to_onnx(
    model: nn.Module,
    data: DataBundle,
    cfg: QuantizeConfig,
    ctx: StageContext,
    calib: np.ndarray,
    out: Path,
) -> tuple[Path, dict[str, Any]]:
    """Fine-tune a fake-quantized copy of ``model`` (KD if asked); export it as QDQ."""
    from edgeslim.compress.distill import kd_loss
    from edgeslim.compress.qat import calibrate, prepare_qat
    from edgeslim.models.serialize import save_model
    from edgeslim.models.surgery import find_head
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.train.engine import eval_top1, fit

    float_model = copy.deepcopy(model).cpu().eval()
    skip = list(cfg.exclude_layers)  # for QAT these are torch module names
    qmodel = prepare_qat(copy.deepcopy(model).cpu(), skip)
    calibrate(qmodel, torch.from_numpy(calib))
    before = eval_top1(qmodel, data, "val")
    kd = cfg.qat.kd
    loss = kd_loss([float_model], kd.temperature, kd.alpha) if kd is not None else None
    res = fit(
        qmodel,
        data,
        cfg.qat.train,
        loss_fn=loss,
        workdir=ctx.workdir / "qat",
        reporter=ctx.reporter,
        device=ctx.device,
        seed=ctx.seed,
    )
    qmodel = res.model.cpu().eval()
    save_model(qmodel, ctx.workdir / "qat_model.pt")
    exp = export_onnx(qmodel, data.input_shape, out, cfg.opset, True)
    for note in exp.warnings:  # e.g. the dynamo exporter's fallback: said unless --quiet
        ctx.log(f"[yellow]quantize: QAT export: {note}[/yellow]")
    return exp.path, {
        "qat": {
            "val_top1_fakequant_before": before,
            "val_top1_fakequant_after": res.best.get("val_top1"),
            "exporter": exp.exporter,
            "head": find_head(float_model)[0],
            "epochs_run": len(res.history),
        }
    }
