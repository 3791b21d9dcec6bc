"""The bench stage: the full ``edgeslim bench`` on the current deployable artifact.

Writes ``bench.json`` (schema edgeslim.bench/1, raw samples, host fingerprint) into the stage
folder and records median/p90/p99/throughput as the stage's metrics.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeslim.stages.context import StageContext, StageOutput
from edgeslim.stages.registry import StageConfig, register_stage


class BenchConfig(StageConfig):
    stage: Literal["bench"] = "bench"
    iters: int = Field(200, ge=5, description="timed calls at least (per batch size)")
    min_time_s: float = Field(1.0, ge=0, description="timed seconds at least (per batch size)")
    warmup: int = Field(20, ge=0)
    batch: int = Field(1, ge=1, description="batch size of the headline figures")
    sweep: list[int] = Field(
        default_factory=list, description="extra batch sizes to measure, e.g. [4, 16]"
    )
    threads: int | None = Field(None, ge=1, description="intra-op threads (default: run.threads)")
    artifact: Literal["auto", "torch", "onnx"] = "auto"
    backend: Literal["onnxruntime", "openvino", "torch", "tensorrt"] | None = Field(
        None, description="runtime that times the artifact (default: by file type; ONNX: onnxruntime)"
    )

    def needs(self) -> tuple[str, ...]:
        return {"torch": ("model_file",), "onnx": ("onnx",)}.get(self.artifact, ("artifact",))


@register_stage("bench", BenchConfig)
def run_bench(cfg: BenchConfig, ctx: StageContext) -> StageOutput:
    """Benchmark the latest ONNX artifact in onnxruntime or ``backend`` (or the torch model.pt)."""
    from edgeslim.deploy.gate.bench import BenchOptions, format_table, run_benchmark
    from edgeslim.errors import StageError
    from edgeslim.fsutil import atomic_write_json

    if cfg.artifact != "torch" and ctx.onnx_path is not None:
        target = ctx.onnx_path
    elif cfg.artifact != "onnx" and ctx.model_path is not None:
        target = ctx.model_path
    else:
        raise StageError(
            f"bench (artifact: {cfg.artifact}) found nothing to measure; put it after "
            "export (onnx) or after a stage that saves a model (torch)"
        )
    data_spec = ctx.recipe.data
    batches = [cfg.batch, *[b for b in cfg.sweep if b != cfg.batch]]
    opts = BenchOptions(
        batches=batches,
        warmup=cfg.warmup,
        min_iters=cfg.iters,
        min_time_s=cfg.min_time_s,
        threads=cfg.threads or ctx.recipe.run.threads,
        image_size=data_spec.image_size,
        in_chans=data_spec.channels,
        device=str(ctx.device.type),
        backend=cfg.backend,
    )
    result = run_benchmark(target, opts, reporter=ctx.reporter)
    atomic_write_json(ctx.workdir / "bench.json", result)
    for line in format_table(result).splitlines():
        ctx.log(f"  {line}")
    metrics = {
        "latency_ms": round(result["median_ms"], 4),
        "p90_ms": round(result["p90_ms"], 4),
        "p99_ms": round(result["p99_ms"], 4),
        "throughput": round(result["throughput"], 2),
        "backend": result["settings"]["backend"],
        "latency_backend": result["settings"]["backend"],  # which runtime measured latency_ms
        "batch": cfg.batch,
        "bench_file": "bench.json",
    }
    if len(batches) > 1:
        metrics["sweep"] = {str(r["batch"]): round(r["median_ms"], 4) for r in result["sweep"]}
    return StageOutput(metrics=metrics, measure=False)
