"""The recipe: one YAML file naming a model, a data source, an ordered list of stages and run settings.

Validated before anything runs; every problem becomes one line naming the file, the key path,
what was given, what is valid, and a "did you mean" for close misspellings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SerializeAsAny, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from edgeslim.config import Config
from edgeslim.data.augment import AugmentSpec
from edgeslim.errors import RecipeError, did_you_mean
from edgeslim.stages.registry import StageConfig, get_stage, stage_names


class ModelSpec(Config):
    """``model:`` where the starting network comes from."""

    source: str = Field("tinycnn", description="built-in name, torchvision:<name> or timm:<name>")
    weights: str | None = Field(
        None, description="torchvision weights enum (DEFAULT, IMAGENET1K_V1), from the local cache")
    checkpoint: str | None = Field(None, description="local .pt/.pth state dict or .safetensors")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra builder arguments")
    head_init: Literal["default", "xavier", "kaiming"] = "default"


class DataSpec(Config):
    """``data:`` the images, their splits, preprocessing and augmentation."""

    source: str = Field("digits", description="digits | imagefolder | cifar10 | synthetic")
    root: str | None = None
    image_size: int = Field(32, ge=8, le=1024)
    channels: Literal[1, 3] = 3
    classes: list[str] | None = Field(None, description="subset of class names, relabelled in this order")
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    train_per_class: int | None = Field(None, ge=1, description="cap on training images per class (few-shot)")
    mean: list[float] | None = None
    std: list[float] | None = None
    batch_size: int = Field(64, ge=1, description="evaluation batch size")
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    synthetic_classes: int = Field(4, ge=2, le=8)
    synthetic_per_class: int = Field(64, ge=4)
    skip_bad_images: bool = Field(
        False, description="imagefolder: skip unreadable files (listed in run.json) instead of failing")


class RunSpec(Config):
    """``run:`` name, where outputs go, seed, threads."""

    name: str = Field("run", description="the run folder's name: one safe path component")
    output_dir: str = "runs"
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: all cores)")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    latency_iters: int = Field(50, ge=5, description="iterations for each stage's latency_ms")

    @field_validator("name", mode="before")
    @classmethod
    def _safe_name(cls, v: Any) -> Any:
        if isinstance(v, str) and folder_name_problem(v) is None:
            return v
        why = folder_name_problem(v) if isinstance(v, str) else "is not a string"
        raise PydanticCustomError("run_name", why + "; a valid run name is one folder name matching the pattern "
                                  "{pattern} (letters, digits, '.', '_', '-'; a letter or digit first), "
                                  "e.g. 'demo-2'", {"pattern": _NAME.pattern})


_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def folder_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a folder edgeslim writes (None when it can).

    Run names (``<output_dir>/<name>``) and stage labels (``<run>/NN-<label>``) both become
    folders whose stale siblings edgeslim removes, so each must be exactly one safe path
    component: not '.', '..', empty, hidden or a path.
    """
    if name in ("", ".", ".."):
        return "is empty" if not name else "would name the output folder or its parent"
    if "\0" in name:
        return "holds a NUL character"
    if "/" in name or "\\" in name:
        return "is a path, not a single folder name"
    if not _NAME.fullmatch(name):
        return ("starts with '.' or '-'" if name[0] in ".-" else "is too long" if len(name) > 100
                else "holds characters other than letters, digits, '.', '_' and '-'")
    if name.split(".")[0].upper() in _RESERVED or name.endswith("."):
        return "is reserved on Windows (CON, NUL, COM1..., or a trailing '.')"
    return None


run_name_problem = folder_name_problem  # the name tune and older callers import


def label_problems(stages: list[StageConfig]) -> list[str]:
    """One line per stage label that cannot be part of a folder name (``NN-<label>``)."""
    out = []
    for i, cfg in enumerate(stages):
        if cfg.label is None:
            continue
        why = folder_name_problem(cfg.label)
        if why is None and cfg.label.endswith(".failed"):
            why = "ends in '.failed', the suffix of a failed stage's kept folder"
        if why:
            out.append(f"stages[{i}].label: {cfg.label!r} {why}; a label becomes the stage folder's name "
                       "(NN-<label>): one folder name of letters, digits, '.', '_', '-', a letter or digit "
                       "first, e.g. label: prune-50")
    return out


class Recipe(Config):
    run: RunSpec = Field(default_factory=RunSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    stages: list[SerializeAsAny[StageConfig]] = Field(default_factory=list)
    search: dict[str, Any] | None = Field(None, description="hyperparameter search space (edgeslim tune)")

    def run_dir(self) -> Path:
        return Path(self.run.output_dir) / self.run.name

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe file; raise RecipeError with one line per problem."""
    from edgeslim.errors import InputError
    from edgeslim.safe_yaml import load_yaml_file

    try:
        raw = load_yaml_file(path, "recipe")  # bounded: size, aliases, expansion, depth
    except RecipeError:
        raise
    except InputError as exc:
        raise RecipeError([str(exc)]) from exc
    if overrides:
        raw = deep_merge(raw or {}, overrides) if isinstance(raw, dict) or raw is None else raw
    return parse_recipe(raw, str(path))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_recipe(raw: Any, source: str = "<recipe>") -> Recipe:
    if not isinstance(raw, dict):
        raise RecipeError([f"{source}: a recipe is a YAML mapping with keys run, model, data, stages; "
                           f"got {type(raw).__name__}"])
    problems: list[str] = []
    base = {k: v for k, v in raw.items() if k != "stages"}
    try:
        recipe = Recipe.model_validate(base)
    except ValidationError as exc:
        problems += [f"{source}: {p}" for p in format_validation(exc, Recipe)]
        recipe = None
    stages_raw = raw.get("stages")
    typed: list[StageConfig] = []
    # A missing list is said only on its own: with a typo such as 'stagse' the unknown-key line
    # (with its did-you-mean) already names the fix.
    if stages_raw == [] or stages_raw is None and not problems:
        problems.append(f"{source}: stages: {'is empty' if stages_raw == [] else 'is missing'}: a recipe runs at "
                        "least one stage; add e.g. 'stages: [{stage: finetune, train: {epochs: 5}}, {stage: export}]' "
                        f"(stages: {', '.join(stage_names())})")
        stages_raw = []
    elif stages_raw is None:
        stages_raw = []
    elif not isinstance(stages_raw, list):
        problems.append(f"{source}: stages: must be a list of '- stage: NAME' items; given {type(stages_raw).__name__}")
        stages_raw = []
    for i, item in enumerate(stages_raw):
        cfg = _parse_stage(item, i, source, problems)
        if cfg is not None:
            typed.append(cfg)
    problems += [f"{source}: {p}" for p in label_problems(typed)]
    if recipe is not None:
        problems += [f"{source}: {p}" for p in check_names(recipe.model, recipe.data, "")]
    for i, cfg in enumerate(typed):
        data = getattr(cfg, "data", None)
        if isinstance(data, DataSpec):
            problems += [f"{source}: stages[{i}].{p}" for p in check_names(None, data, "")]
    if recipe is not None and not problems and len(typed) == len(stages_raw):
        problems += [f"{source}: {p}" for p in check_stage_inputs(recipe.model.source, typed)]
    if problems:
        raise RecipeError(problems)
    assert recipe is not None
    recipe.stages = typed
    return recipe


def _parse_stage(item: Any, i: int, source: str, problems: list[str]) -> StageConfig | None:
    where = f"{source}: stages[{i}]"
    if not isinstance(item, dict) or "stage" not in item:
        problems.append(f"{where}: each stage is a mapping with 'stage: NAME'; "
                        f"valid names: {', '.join(stage_names())}")
        return None
    name = str(item["stage"])
    if name not in stage_names():
        problems.append(f"{where}.stage: unknown stage '{name}'{did_you_mean(name, stage_names())}; "
                        f"valid: {', '.join(stage_names())}")
        return None
    cls = get_stage(name).config_cls
    try:
        return cls.model_validate(item)
    except ValidationError as exc:
        problems += [f"{where}.{p}" for p in format_validation(exc, cls)]
        return None


def check_names(model: ModelSpec | None, data: DataSpec | None, prefix: str) -> list[str]:
    """Registry names that pydantic cannot check: model source and data source."""
    from edgeslim.data.sources import data_sources
    from edgeslim.errors import InputError

    out = []
    if data is not None and data.source not in data_sources():
        out.append(f"{prefix}data.source: unknown data source '{data.source}'"
                   f"{did_you_mean(data.source, data_sources())}; valid: {', '.join(data_sources())}")
    if model is not None:
        try:
            check_model_name(model.source)
        except InputError as exc:
            out.append(f"{prefix}model.source: {exc}")
            return out
        from edgeslim.models.factory import check_model_kwargs

        try:  # zoo models only: a user's file is imported by the run's preflight, not here
            check_model_kwargs(model)
        except InputError as exc:
            out.append(f"{prefix}{exc}")
    return out


def check_model_name(name: str) -> None:
    """Raise InputError for a model source that cannot work: an unknown form or name, a file
    that does not exist, a package that is not importable (no user code runs, no weights load)."""
    from edgeslim.models.source_registry import check_source

    check_source(name)


def check_stage_inputs(source: str, stages: list[StageConfig]) -> list[str]:
    """One line per stage that would not get what it needs (see ``StageConfig.needs``).

    What is available starts from the model source (an editable module, a torch callable, or a
    frozen ONNX graph) and grows with what each stage makes (``StageConfig.makes``): a recipe may
    start at any stage, but a stage that edits a model refuses a frozen source, and one that
    reads an ONNX or a saved model.pt needs an earlier stage that wrote it.
    """
    from edgeslim.models.source_registry import frozen_refusal, source_info

    info = source_info(source)
    have = {"model", "module"} if info.editable else {"model"}
    if info.editable or info.kind in ("torchscript", "exported"):
        have.add("torch")
    out = []
    for i, cfg in enumerate(stages):
        missing = [n for n in cfg.needs() if not (n in have or n == "artifact" and have & {"onnx", "model_file"})]
        if not missing:
            have.update(cfg.makes())
            continue
        if missing[0] == "module" and not info.editable:
            out.append(f"stages[{i}]: {frozen_refusal(source, cfg.stage, needs_module=True)}")
        else:
            out.append(f"stages[{i}] ({cfg.label or cfg.stage}): {_MISSING[missing[0]]}")
        # A refused stage makes no model for the stages after it (each is judged on its own), but
        # its ONNX is assumed so that one missing export is not reported again by every later stage.
        have.update(m for m in cfg.makes() if m == "onnx")
    return out


_MISSING = {
    "module": "needs an editable nn.Module and no earlier stage made one; give model.source as "
              "path/to/file.py:ClassName with model.checkpoint",
    "torch": "needs a model torch can run, but model.source is an ONNX graph; use artifact: onnx after an "
             "export stage, or give the network's Python class (path/to/file.py:ClassName)",
    "onnx": "needs an ONNX model and no earlier stage writes one; put an export (or quantize) stage before it",
    "model_file": "needs a model.pt saved by an earlier stage (pretrain, finetune, distill, prune); "
                  "use artifact: onnx after an export stage instead",
    "artifact": "needs an artifact (model.pt or ONNX) written by an earlier stage; put an export stage before it",
}


def format_validation(exc: ValidationError, root: type[Config]) -> list[str]:
    """One line per pydantic error: key path, what was given, what is valid."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join(loc) or "(top)"
        given = err.get("input")
        if err["type"] == "extra_forbidden":
            valid = _fields_at(root, loc[:-1])
            hint = did_you_mean(loc[-1], valid)
            lines.append(f"{path}: unknown key '{loc[-1]}'{hint}; valid keys: {', '.join(valid)}")
        elif err["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        else:
            shown = repr(given) if not isinstance(given, dict) else "a mapping"
            lines.append(f"{path}: {err['msg']}; given {shown[:80]}")
    return lines


def _fields_at(cls: Any, loc: list[str]) -> list[str]:
    """The valid keys of the config class found by walking ``loc`` from ``cls``."""
    for part in loc:
        fields = getattr(cls, "model_fields", {})
        if part not in fields:
            return sorted(fields)
        ann = fields[part].annotation
        cls = next((a for a in getattr(ann, "__args__", (ann,)) if hasattr(a, "model_fields")), ann)
    return sorted(getattr(cls, "model_fields", {}))
