"""The export stage: the current torch model to one ONNX file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeslim.stages.context import StageContext, StageOutput
from edgeslim.stages.registry import StageConfig, register_stage


class ExportConfig(StageConfig):
    stage: Literal["export"] = "export"
    opset: int = Field(18, ge=13, le=23)
    dynamic_batch: bool = True
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto"


@register_stage("export", ExportConfig)
def run_export(cfg: ExportConfig, ctx: StageContext) -> StageOutput:
    """Export the current model to ONNX."""
    from edgeslim.deploy.export import export_onnx

    data = ctx.data()
    model = ctx.require_model("export")
    meta = {"edgeslim.class_names": data.class_names, "edgeslim.mean": data.mean, "edgeslim.std": data.std,
            "edgeslim.input_shape": list(data.input_shape), "edgeslim.recipe_hash": ctx.recipe.run.name}
    res = export_onnx(model, data.input_shape, ctx.workdir / "model.onnx", cfg.opset, cfg.dynamic_batch, meta,
                      cfg.exporter)
    return StageOutput(onnx=res.path, metrics={"exporter": res.exporter, "opset": res.opset})
