"""The bench stage: latency of the current deployable artifact."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeslim.stages.context import StageContext, StageOutput
from edgeslim.stages.registry import StageConfig, register_stage


class BenchConfig(StageConfig):
    stage: Literal["bench"] = "bench"
    iters: int = Field(200, ge=5)
    warmup: int = Field(20, ge=0)
    batch: int = Field(1, ge=1)
    artifact: Literal["auto", "torch", "onnx"] = "auto"


@register_stage("bench", BenchConfig)
def run_bench(cfg: BenchConfig, ctx: StageContext) -> StageOutput:
    """Measure median latency of the current artifact (ONNX in onnxruntime when there is one)."""
    from edgeslim.deploy.backends import open_backend
    from edgeslim.deploy.latency import quick_latency_ms

    data = ctx.data()
    if cfg.artifact != "torch" and ctx.onnx_path is not None:
        backend = open_backend(ctx.onnx_path, intra_op_threads=ctx.recipe.run.threads)
    else:
        backend = open_backend(ctx.require_model("bench"), data.input_shape)
    ms = quick_latency_ms(backend, data.input_shape, cfg.iters, cfg.warmup, cfg.batch)
    ctx.log(f"  median {ms:.3f} ms ({backend.name}, batch {cfg.batch})")
    return StageOutput(metrics={"latency_ms": round(ms, 4), "backend": backend.name, "batch": cfg.batch},
                       measure=False)
