"""The deploy stage: an edge bundle (model, manifest, runner, README) for a device profile."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeslim.stages.context import StageContext, StageOutput
from edgeslim.stages.registry import StageConfig, register_stage


class DeployConfig(StageConfig):
    stage: Literal["deploy"] = "deploy"
    target: str = Field("x86-cpu", description="deploy profile (edgeslim deploy --help lists them)")
    include_images: bool = Field(True, description="write the test split as PNG class folders")

    def needs(self) -> tuple[str, ...]:
        return ("onnx",)


@register_stage("deploy", DeployConfig)
def run_deploy(cfg: DeployConfig, ctx: StageContext) -> StageOutput:
    """Write an edge bundle (model, manifest, runner, README) for a device profile."""
    from edgeslim.deploy.bundle.build import build_bundle

    if ctx.onnx_path is None:
        from edgeslim.errors import StageError

        raise StageError("stage 'deploy' needs an ONNX model: put an export stage before it")
    rec = next((r for r in reversed(ctx.history) if r.onnx_file and r.status == "completed"), None)
    info = build_bundle(
        ctx.run_dir,
        ctx.workdir / "bundle",
        cfg.target,
        include_images=cfg.include_images,
        onnx_record=rec,
        history=ctx.history,
        recipe=ctx.recipe,
    )
    return StageOutput(
        metrics={"target": cfg.target, "bundle": "bundle", "files": len(info["files"])},
        measure=False,
    )
