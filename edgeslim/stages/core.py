"""The evaluate stage: full metrics of the current artifact on a split."""

from __future__ import annotations

from typing import Literal

from edgeslim.stages.context import StageContext, StageOutput
from edgeslim.stages.registry import StageConfig, register_stage


class EvaluateConfig(StageConfig):
    stage: Literal["evaluate"] = "evaluate"
    split: Literal["train", "val", "test"] = "test"
    artifact: Literal["auto", "torch", "onnx"] = "auto"

    def needs(self) -> tuple[str, ...]:
        return {"torch": ("torch",), "onnx": ("onnx",)}.get(self.artifact, ())


@register_stage("evaluate", EvaluateConfig)
def run_evaluate(cfg: EvaluateConfig, ctx: StageContext) -> StageOutput:
    """Evaluate the current artifact (ONNX in onnxruntime when there is one)."""
    from edgeslim.measure import evaluate
    from edgeslim.runtime import open_backend

    data = ctx.data()
    use_onnx = cfg.artifact == "onnx" or (cfg.artifact == "auto" and ctx.onnx_path is not None)
    model = None if use_onnx and ctx.onnx_path is not None else ctx.model
    if model is None:
        backend = open_backend(ctx.onnx_path, "onnxruntime", threads=ctx.recipe.run.threads)
    elif getattr(model, "kind", None) == "onnx":  # an ONNX source, first in the recipe
        backend = open_backend(model.path, "onnxruntime", threads=ctx.recipe.run.threads)
    else:  # a torch model, or a TorchScript / ExportedProgram source's module
        module = model if hasattr(model, "state_dict") else model.module
        backend = open_backend(module, "torch", input_shape=tuple(data.input_shape), device=ctx.device.type)
    ev = evaluate(backend, data, cfg.split)
    ctx.log(f"  {cfg.split} top-1 {ev['top1']:.4f} on {backend.name}")
    return StageOutput(metrics={f"{cfg.split}_{k}": v for k, v in ev.items()} | {"evaluated_on": backend.name},
                       measure=False)
