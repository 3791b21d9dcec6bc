"""The compression stages: distill, prune, quantize (registered with the stage registry)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from edgeslim.compress.configs import DistillConfig, KDSpec, PruneConfig, QuantizeConfig
from edgeslim.errors import InputError
from edgeslim.stages.context import StageContext, StageOutput
from edgeslim.stages.registry import register_stage

if TYPE_CHECKING:
    from torch import nn


def current_model(ctx: StageContext, stage: str, data: Any, editable: bool = True) -> Any:
    """The chain's model, or the recipe's starting model when this stage comes first.

    A recipe may start at any stage: with no earlier model the recipe's ``model:`` is built
    (a checkpoint goes straight to prune/quantize). A frozen source (ONNX, ExportedProgram,
    TorchScript) is returned opened (``FrozenModel``) where ``editable`` is False, and refused
    with the stages that can run on it where an editable module is needed.
    """
    return ctx.editable_model(stage) if editable else ctx.model


def _torch_callable(model: Any, stage: str, source: str) -> nn.Module:
    """An nn.Module to run: the model itself, or a TorchScript / ExportedProgram source's module."""
    if hasattr(model, "state_dict"):
        return copy.deepcopy(model)
    if getattr(model, "module", None) is not None:
        return model.module
    raise InputError(f"stage '{stage}': the teacher 'current' is model.source '{source}', an ONNX graph torch "
                     "cannot run; give the network's Python class (path/to/file.py:ClassName) or a TorchScript / "
                     ".pt2 file")


def teacher_models(ctx: StageContext, names: str | list[str], stage: str) -> list[nn.Module]:
    """Models of earlier stages by name (``current``: the chain's model; a frozen TorchScript or
    ExportedProgram source can teach, it is only run)."""
    out = []
    for name in [names] if isinstance(names, str) else names:
        if name == "current":
            out.append(_torch_callable(current_model(ctx, stage, None, editable=False), stage,
                                       ctx.recipe.model.source))
            continue
        rec = ctx.find(name)
        if rec is None:
            done = sorted({h.name for h in ctx.history if h.status == "completed" and h.model_file})
            raise InputError(
                f"{stage}: teacher '{name}' is not an earlier stage with a model; "
                f"valid: current, {', '.join(done) or '(none)'}"
            )
        out.append(ctx.load_model_of(rec))
    return out


def kd_teacher(ctx: StageContext, kd: KDSpec, before: nn.Module, stage: str) -> nn.Module:
    return (
        copy.deepcopy(before) if kd.teacher == "auto" else teacher_models(ctx, kd.teacher, stage)[0]
    )


def _student(cfg: DistillConfig, ctx: StageContext, teacher: nn.Module, data: Any) -> nn.Module:
    import torch

    from edgeslim.compress.prune import pruned_copy_with_width

    s = cfg.student
    if s.kind == "current":
        return copy.deepcopy(current_model(ctx, "distill", data))
    if s.kind == "width":
        return pruned_copy_with_width(teacher, torch.zeros(1, *data.input_shape), s.width)
    if not s.source:
        raise InputError(
            "distill.student.kind is 'model' but student.source is empty; "
            "give a registry name, e.g. student: {kind: model, source: tinycnn}"
        )
    from edgeslim.models.factory import model_from_spec
    from edgeslim.recipe import ModelSpec

    return model_from_spec(
        ModelSpec(source=s.source, kwargs=s.kwargs), data.input_shape[0], data.num_classes
    )


@register_stage("distill", DistillConfig)
def run_distill(cfg: DistillConfig, ctx: StageContext) -> StageOutput:
    """Knowledge distillation (Hinton KD, optional feature KD) into a smaller student."""
    import torch

    from edgeslim.compress.distill import FeaturePairs, attach_adapters, detach_adapters, kd_loss
    from edgeslim.measure import count_macs
    from edgeslim.train.engine import eval_top1, fit

    data = ctx.data()
    teachers = teacher_models(ctx, cfg.teacher, "distill")
    student = _student(cfg, ctx, teachers[0], data)
    feats = None
    if cfg.features is not None:
        feats = FeaturePairs(
            cfg.features.student_layers, cfg.features.teacher_layers, cfg.features.weight
        )
        attach_adapters(
            student, feats.attach(student, teachers[0], torch.zeros(2, *data.input_shape))
        )
    loss = kd_loss(teachers, cfg.temperature, cfg.alpha, feats)
    res = fit(
        student,
        data,
        cfg.train,
        loss_fn=loss,
        workdir=ctx.workdir,
        reporter=ctx.reporter,
        device=ctx.device,
        seed=ctx.seed,
    )
    student = res.model.cpu()
    if feats is not None:
        feats.detach()
        detach_adapters(student)
    shape = data.input_shape
    t_macs, s_macs = count_macs(teachers[0], shape), count_macs(student, shape)
    teacher_val = eval_top1(teachers[0].cpu(), data, "val")
    metrics = {
        "accuracy_guard": _distill_guard(cfg, ctx, data, student, teacher_val),
        "teacher_val_top1": teacher_val,
        "student_val_top1": res.best.get("val_top1"),
        "student_kind": cfg.student.kind,
        "teachers": [cfg.teacher] if isinstance(cfg.teacher, str) else cfg.teacher,
        "macs_fraction_of_teacher": round(s_macs / max(t_macs, 1), 4),
        "epochs_run": len(res.history),
    }
    _warn(ctx, metrics)
    return StageOutput(model=student, class_names=data.class_names, metrics=metrics)


def _distill_guard(cfg: DistillConfig, ctx: StageContext, data: Any, student: nn.Module,
                   teacher_val: float) -> dict[str, Any]:
    """Student vs its parent: the chain's model (the teacher when this stage comes first)."""
    from edgeslim.compress.guards import check_budget
    from edgeslim.models.serialize import save_model
    from edgeslim.train.engine import eval_top1

    chain = ctx.model  # the chain's model; a frozen source is the teacher itself
    parent = eval_top1(chain.cpu(), data, "val") if hasattr(chain, "state_dict") else teacher_val
    knobs = "train the student longer (train.epochs), use a wider student (student.width) or feature KD (features)"
    return check_budget("distill", parent, eval_top1(student, data, "val"), cfg.accuracy_budget, cfg.on_budget,
                        len(data.val), knobs, keep=lambda: save_model(student, ctx.workdir / "model.pt"))


@register_stage("prune", PruneConfig)
def run_prune(cfg: PruneConfig, ctx: StageContext) -> StageOutput:
    """Structured channel pruning (torch-pruning) with recovery fine-tuning between steps."""
    from edgeslim.compress.pruning_loop import prune_with_recovery

    data = ctx.data()
    model = current_model(ctx, "prune", data)
    teacher = None
    if cfg.recovery.kd is not None:
        teacher = kd_teacher(ctx, cfg.recovery.kd, model, "prune")
    model, metrics = prune_with_recovery(model, data, cfg, ctx, teacher)
    _warn(ctx, metrics)
    return StageOutput(model=model, class_names=ctx.class_names or data.class_names, metrics=metrics)


@register_stage("quantize", QuantizeConfig)
def run_quantize(cfg: QuantizeConfig, ctx: StageContext) -> StageOutput:
    """INT8 (static QDQ PTQ or QAT), dynamic INT8 or FP16 ONNX, chosen by measurement."""
    from edgeslim.compress.quantize_stage import quantize_model

    data = ctx.data()
    model = current_model(ctx, "quantize", data, editable=cfg.method == "qat")
    path, metrics = quantize_model(model, data, cfg, ctx)
    if metrics.get("warning"):
        ctx.log(f"[yellow]warning:[/yellow] {metrics['warning']}")
    _warn(ctx, metrics)
    return StageOutput(onnx=path, class_names=ctx.class_names or data.class_names, metrics=metrics)


def _warn(ctx: StageContext, metrics: dict[str, Any]) -> None:
    """An accuracy guard's warning (on_budget: warn) goes to the log and the stage's warnings."""
    msg = metrics.get("accuracy_guard", {}).get("warning")
    if msg:
        ctx.log(f"[yellow]warning:[/yellow] {msg}")
        metrics.setdefault("warnings", []).append(msg)
