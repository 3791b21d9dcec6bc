"""The recipe's ``search:`` block: which stage to tune, the metric, sampler, pruner and space.

Validated here (edgeslim.recipe keeps ``search`` as a plain mapping) and reported as
RecipeError lines naming ``search.<key path>``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from edgeslim.config import Config
from edgeslim.errors import RecipeError

# Short names for the usual knobs of a training stage's ``train:`` block.
SHORTCUTS = {
    "lr": "train.optimizer.lr",
    "optimizer": "train.optimizer.name",
    "momentum": "train.optimizer.momentum",
    "weight_decay": "train.optimizer.weight_decay",
    "backbone_lr_mult": "train.optimizer.backbone_lr_mult",
    "batch_size": "train.batch_size",
    "epochs": "train.epochs",
    "dropout": "train.dropout",
    "label_smoothing": "train.label_smoothing",
    "warmup_steps": "train.schedule.warmup_steps",
    "schedule": "train.schedule.name",
    "freeze_epochs": "train.freeze.epochs",
    "grad_clip_norm": "train.grad_clip_norm",
    "mixup_alpha": "data.augment.mixup_alpha",
    "cutmix_alpha": "data.augment.cutmix_alpha",
}
RECIPE_SCOPE = ("data.", "model.")  # paths starting so apply to the recipe, not the stage


class ParamSpec(Config):
    """One dimension: a float/int range (``low``/``high``, ``log``, ``step``) or ``choices``."""

    type: Literal["float", "int", "categorical"] | None = Field(
        None, description="inferred when omitted"
    )
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = None
    grid: list[Any] | None = Field(
        None, description="values the grid sampler tries (default: grid_points)"
    )
    path: str | None = Field(
        None, description="dotted key in the stage (or data./model. in the recipe)"
    )

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type is None:
            if self.choices is not None:
                self.type = "categorical"
            elif isinstance(self.low, int) and isinstance(self.high, int) and not self.log:
                self.type = "int"
            else:
                self.type = "float"
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs 'choices: [a, b, ...]'")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(
                f"a {self.type} range needs low < high; given low={self.low}, high={self.high}"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0; given low={self.low}")
        return self


class SearchSpec(Config):
    """``search:`` block of a recipe (see README, finetune section)."""

    stage: str | None = Field(
        None, description="stage name or label to tune (default: last pretrain/finetune)"
    )
    metric: str = Field("best_val_top1", description="a metric of that stage (run.json)")
    direction: Literal["maximize", "minimize"] = "maximize"
    trials: int = Field(20, ge=1)
    sampler: Literal["grid", "random", "tpe"] = "tpe"
    startup_trials: int | None = Field(
        None, ge=0, description="tpe: random trials first (default ~N/3)"
    )
    grid_points: int = Field(
        3, ge=2, description="grid: points per numeric range without a 'grid' list"
    )
    pruner: Literal["none", "median", "hyperband"] = "median"
    seed: int | None = Field(None, description="sampler seed (default: run.seed)")
    storage: str | None = Field(
        None, description="Optuna RDB URL (default: sqlite in the run folder)"
    )
    study: str | None = Field(None, description="study name (default: run.name)")
    params: dict[str, ParamSpec] = Field(..., min_length=1)


def param_path(name: str, spec: ParamSpec) -> str:
    return spec.path or SHORTCUTS.get(name, f"train.{name}")


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        nxt = obj.get(k)
        if not isinstance(nxt, dict):
            nxt = obj[k] = {}
        obj = nxt
    obj[keys[-1]] = value


def target_index(raw_stages: list[dict[str, Any]], want: str | None) -> int | None:
    """Index of the stage to tune: by label/name, or the last pretrain/finetune stage."""
    for i in reversed(range(len(raw_stages))):
        s = raw_stages[i]
        if (want is None and s.get("stage") in ("finetune", "pretrain")) or (
            want is not None and want in (s.get("label"), s.get("stage"))
        ):
            return i
    return None


def parse_search(raw: dict[str, Any], source: str = "<recipe>") -> tuple[SearchSpec, int]:
    """Validate ``raw['search']`` against the recipe; returns the spec and the tuned stage index."""
    from edgeslim.recipe import format_validation, parse_recipe

    block = raw.get("search")
    if not isinstance(block, dict):
        raise RecipeError(
            [
                f"{source}: search: missing; `edgeslim tune` needs a 'search:' mapping with "
                "params (e.g. search: {params: {lr: {low: 1e-4, high: 1e-1, log: true}}})"
            ]
        )
    try:
        spec = SearchSpec.model_validate(block)
    except ValidationError as exc:
        raise RecipeError(
            [f"{source}: search.{p}" for p in format_validation(exc, SearchSpec)]
        ) from exc
    stages = raw.get("stages") or []
    idx = target_index(stages, spec.stage)
    if idx is None:
        names = [s.get("label") or s.get("stage") for s in stages if isinstance(s, dict)]
        raise RecipeError(
            [
                f"{source}: search.stage: no stage '{spec.stage or 'pretrain/finetune'}' to tune; "
                f"stages: {', '.join(map(str, names)) or 'none'}"
            ]
        )
    problems = []
    for name, p in spec.params.items():
        trial_raw = apply_params(raw, idx, {name: p.choices[0] if p.choices else p.low}, spec)
        try:
            parse_recipe(trial_raw, source)
        except RecipeError as exc:
            problems += [
                f"{source}: search.params.{name} (path {param_path(name, p)}): "
                f"{line.split(': ', 1)[-1]}"
                for line in exc.problems
            ]
    if problems:
        raise RecipeError(problems)
    return spec, idx


def apply_params(
    raw: dict[str, Any], idx: int, values: dict[str, Any], spec: SearchSpec
) -> dict[str, Any]:
    """A copy of the raw recipe with ``values`` written into stage ``idx`` (or the recipe)."""
    out = copy.deepcopy(raw)
    out.pop("search", None)
    for name, value in values.items():
        path = param_path(name, spec.params[name])
        if path.startswith(RECIPE_SCOPE):
            set_path(out, path, value)
        else:
            set_path(out["stages"][idx], path, value)
    return out
