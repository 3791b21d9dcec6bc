"""The recipe's ``search:`` block as ``edgeslim search`` reads it: searchable compression settings.

The syntax is ``edgeslim tune``'s (``edgeslim.tune.space.ParamSpec``: ``{low, high, log, step}``
or ``{choices: [...]}``, optional ``path``/``grid``/``type``), so users learn one. What differs:
a parameter belongs to a *stage* (the prune stage's ``importance``, the quantize stage's
``precision``), found from its short name when the recipe has one stage of that kind, or named
with ``stage: LABEL`` or a ``LABEL.`` prefix (``prune-early.target_ratio``) when it has several.
Problems are RecipeError lines naming ``search.<key path>``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError

from edgeslim.config import Config
from edgeslim.errors import RecipeError, did_you_mean
from edgeslim.tune.space import ParamSpec, set_path

# Short name -> {stage kind: dotted key inside that stage}.
SHORT: dict[str, dict[str, str]] = {
    "target_macs": {"prune": "target.macs"},
    "target_params": {"prune": "target.params"},
    "target_ratio": {"prune": "target.ratio"},
    "ratio": {"prune": "target.ratio"},
    "importance": {"prune": "importance"},
    "round_to": {"prune": "round_to"},
    "steps": {"prune": "steps"},
    "scope": {"prune": "scope"},
    "max_ratio": {"prune": "max_ratio"},
    "recovery_epochs": {"prune": "recovery.train.epochs"},
    "kd_alpha": {"prune": "recovery.kd.alpha", "distill": "alpha", "quantize": "qat.kd.alpha"},
    "kd_temperature": {"prune": "recovery.kd.temperature", "distill": "temperature",
                       "quantize": "qat.kd.temperature"},
    "width": {"distill": "student.width"},
    "precision": {"quantize": "precision"},
    "backend": {"quantize": "backends"},
    "calibrate_method": {"quantize": "calibrate_method"},
    "calibration_samples": {"quantize": "calibration.samples"},
    "per_channel": {"quantize": "per_channel"},
}
# A prune target is exactly one of ratio/macs/params: a searched one replaces the whole mapping.
WHOLE = {"target.macs", "target.params", "target.ratio"}
AS_LIST = {"backends"}  # one searched runtime, written as the stage's one-element list
RECIPE_SCOPE = ("data.", "model.")
TUNE_ONLY = ("metric", "direction", "pruner")


class SearchParam(ParamSpec):
    """A tune ``ParamSpec`` plus the stage it sets."""

    stage: str | None = Field(None, description="stage name or label (default: the one stage its short name fits)")


class LatencySpec(Config):
    """How each artifact is timed (batch 1, median; both minimums must be reached)."""

    warmup: int = Field(10, ge=0, description="untimed calls first")
    min_iters: int = Field(50, ge=1, description="timed calls at least")
    min_time_s: float = Field(1.0, ge=0, description="timed seconds at least")
    anchored: bool = Field(True, description="time each artifact in rounds interleaved with the study's "
                           "anchor (its first artifact) and scale by the anchor's figure: machine drift "
                           "between trials cancels (local timing only)")
    rounds: int = Field(10, ge=1, le=1000, description="interleaved rounds of an anchored measurement")


class CompressSearch(Config):
    """``search:`` block of a recipe for ``edgeslim search`` (see README)."""

    stage: str | None = Field(None, description="default stage (name or label) of params without their own")
    trials: int = Field(20, ge=1)
    sampler: Literal["nsga2", "tpe", "random", "grid"] = "tpe"
    population: int | None = Field(None, ge=2, description="nsga2: population size (default trials/3, 4..50)")
    startup_trials: int | None = Field(None, ge=0, description="tpe: random trials first (default ~N/3)")
    grid_points: int = Field(3, ge=2, description="grid: points per numeric range without a 'grid' list")
    seed: int | None = Field(None, description="sampler seed (default: run.seed)")
    storage: str | None = Field(None, description="Optuna RDB URL (default: sqlite in <run>/search)")
    study: str | None = Field(None, description="study name (default: run.name)")
    backend: str | None = Field(None, description="runtime that runs and times the artifact (default: "
                                "the one its quantize stage chose, else onnxruntime)")
    threads: int | None = Field(None, ge=1, description="intra-op threads when timing (default: run.threads)")
    latency: LatencySpec = Field(default_factory=LatencySpec)
    baseline: bool = Field(True, description="first trial: the recipe's own values of the searched keys "
                           "(those inside the space), so the front starts at what the recipe gives; "
                           "not with the grid sampler")
    explore_bounds: bool = Field(True, description="next, one trial at each end of each numeric range "
                                 "(other keys at the recipe's values), at most a quarter of the trials: "
                                 "the ends of the trade-off are measured, not left to chance; not with grid")
    params: dict[str, SearchParam] = Field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """Where one searched parameter is written: stage ``index`` (None: the recipe) at ``path``."""

    name: str
    spec: SearchParam
    index: int | None
    path: str

    def values(self) -> list[Any]:
        """The values validated up front: every choice, or both ends of a range."""
        return list(self.spec.choices) if self.spec.choices else [self.spec.low, self.spec.high]


@dataclass
class SearchPlan:
    spec: CompressSearch
    targets: list[Target]
    artifact_index: int  # the last stage that writes the ONNX the trials measure
    first_index: int  # stages before it are shared by every trial

    def stage_names(self, raw: dict[str, Any]) -> list[str]:
        return [_stage_name(s) for s in raw["stages"]]


def _stage_name(s: Any) -> str:
    return str(s.get("label") or s.get("stage")) if isinstance(s, dict) else "?"


def _example() -> str:
    return "e.g. search: {params: {target_macs: {low: 0.2, high: 0.6}, precision: {choices: [int8, fp32]}}}"


def parse_search(raw: dict[str, Any], recipe: Any, source: str = "<recipe>") -> SearchPlan:
    """Validate ``raw['search']`` against the (already validated) ``recipe``."""
    from edgeslim.recipe import format_validation

    block = raw.get("search")
    if not isinstance(block, dict):
        raise RecipeError([f"{source}: search: missing; `edgeslim search` needs a 'search:' mapping whose "
                           f"params name compression settings, {_example()}"])
    tune_keys = [k for k in TUNE_ONLY if k in block]
    if tune_keys:
        raise RecipeError([f"{source}: search.{k}: an `edgeslim tune` key; `edgeslim search` has two fixed "
                           "objectives (validation accuracy of the final artifact, its measured latency): "
                           "remove it" for k in tune_keys])
    try:
        spec = CompressSearch.model_validate(block)
    except ValidationError as exc:
        raise RecipeError([f"{source}: search.{p}" for p in format_validation(exc, CompressSearch)]) from exc
    if not spec.params:
        raise RecipeError([f"{source}: search.params: no searchable setting; list at least one, {_example()} "
                           f"(short names: {', '.join(SHORT)})"])
    stages = raw.get("stages") or []
    art = artifact_index(recipe)
    if art is None:
        raise RecipeError([f"{source}: stages: no stage writes an ONNX; `edgeslim search` measures the deployed "
                           "artifact: add a quantize or export stage after the searched ones"])
    problems: list[str] = []
    targets = []
    for name, p in spec.params.items():
        t = resolve(name, p, spec.stage, stages, problems, source)
        if t is None:
            continue
        if t.index is not None and t.index > art:
            problems.append(f"{source}: search.params.{name}: sets stage {t.index:02d}-{_stage_name(stages[t.index])}, "
                            f"after {art:02d}-{_stage_name(stages[art])} whose ONNX the search measures; "
                            "search settings of the stages up to it")
            continue
        targets.append(t)
    if problems:
        raise RecipeError(problems)
    first = min((0 if t.index is None else t.index) for t in targets)
    plan = SearchPlan(spec, targets, art, first)
    _check_values(raw, plan, source)
    return plan


def artifact_index(recipe: Any) -> int | None:
    """Index of the last stage that writes an ONNX (quantize, export): what a trial measures."""
    idx = [i for i, s in enumerate(recipe.stages) if "onnx" in s.makes()]
    return idx[-1] if idx else None


def _find_stage(want: str, stages: list[Any]) -> tuple[int | None, str | None]:
    """(index, None) for a unique label/name match, else (None, why)."""
    hits = [i for i, s in enumerate(stages) if isinstance(s, dict) and want in (s.get("label"), s.get("stage"))]
    labelled = [i for i in hits if stages[i].get("label") == want]
    if len(labelled) == 1:
        return labelled[0], None
    if len(hits) == 1:
        return hits[0], None
    names = [_stage_name(s) for s in stages]
    if not hits:
        return None, f"no stage '{want}'{did_you_mean(want, names)}; stages: {', '.join(names) or 'none'}"
    return None, f"{len(hits)} stages are '{want}'; give each a label: and name that"


def resolve(name: str, p: SearchParam, default_stage: str | None, stages: list[Any], problems: list[str],
            source: str) -> Target | None:
    """The stage and key a parameter sets, or None with the problem appended."""
    where = f"{source}: search.params.{name}"
    short, stage = name, p.stage or default_stage
    head, _, rest = name.partition(".")
    if rest and p.stage is None and _find_stage(head, stages)[0] is not None:
        short, stage = rest, head
    if p.path and p.path.startswith(RECIPE_SCOPE):
        return Target(name, p, None, p.path)
    if p.path is None and short not in SHORT:
        problems.append(f"{where}: unknown short name '{short}'{did_you_mean(short, SHORT)}; valid: "
                        f"{', '.join(SHORT)}; or give path: (a dotted key) and stage:")
        return None
    kinds = SHORT.get(short, {})
    if stage is None:
        if p.path is not None:
            problems.append(f"{where}: path '{p.path}' needs stage: (the stage name or label it is in)")
            return None
        hits = [i for i, s in enumerate(stages) if isinstance(s, dict) and s.get("stage") in kinds]
        if short.startswith("kd_"):  # only stages that distil have a KD weight to search
            hits = [i for i in hits if _kd_ready(stages[i], kinds[stages[i]["stage"]])] or hits
        if len(hits) != 1:
            names = ", ".join(_stage_name(stages[i]) for i in hits)
            why = (f"the recipe has no {' or '.join(kinds)} stage" if not hits
                   else f"several stages fit ({names}): give stage: LABEL or name it LABEL.{short}")
            problems.append(f"{where}: {why}")
            return None
        idx = hits[0]
    else:
        idx, why = _find_stage(stage, stages)
        if idx is None:
            problems.append(f"{where}: stage: {why}")
            return None
    kind = stages[idx].get("stage")
    path = p.path or kinds.get(kind)
    if path is None:
        problems.append(f"{where}: '{short}' is a setting of a {' or '.join(kinds)} stage, and "
                        f"{idx:02d}-{_stage_name(stages[idx])} is a {kind} stage")
        return None
    if short.startswith("kd_") and p.path is None and not _kd_ready(stages[idx], path):
        problems.append(f"{where}: {idx:02d}-{_stage_name(stages[idx])} has no {path.rsplit('.', 1)[0]} to weight; "
                        "add it to the stage (e.g. recovery: {kd: {teacher: finetune}}) so the search does not "
                        "turn distillation on behind your back")
        return None
    return Target(name, p, idx, path)


def _kd_ready(stage: dict[str, Any], path: str) -> bool:
    """The KD settings ``path`` lives in are there (a distill stage's own ``alpha`` always is)."""
    return "." not in path or _has(stage, path.rsplit(".", 1)[0])


def _has(obj: Any, path: str) -> bool:
    for k in path.split("."):
        if not isinstance(obj, dict) or not isinstance(obj.get(k), dict):
            return False
        obj = obj[k]
    return True


def write_value(stage: dict[str, Any], path: str, value: Any) -> None:
    if path in WHOLE:
        stage["target"] = {path.split(".", 1)[1]: value}
    elif path in AS_LIST:
        stage[path] = [value]
    else:
        set_path(stage, path, value)


def apply_values(raw: dict[str, Any], plan: SearchPlan, values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the raw recipe with ``values`` written in and the ``search:`` block removed."""
    out = copy.deepcopy(raw)
    out.pop("search", None)
    by_name = {t.name: t for t in plan.targets}
    for name, value in values.items():
        t = by_name[name]
        if t.index is None:
            set_path(out, t.path, value)
        else:
            write_value(out["stages"][t.index], t.path, value)
    return out


def recipe_values(raw: dict[str, Any], plan: SearchPlan) -> dict[str, Any]:
    """The recipe's own value of each searched key, where it lies inside the searched space (the
    baseline trial); a key the recipe leaves unset, or sets outside the space, is left to the
    sampler (Optuna samples the parameters a queued trial does not fix)."""
    out: dict[str, Any] = {}
    for t in plan.targets:
        obj: Any = raw if t.index is None else raw["stages"][t.index]
        for k in t.path.split("."):
            obj = obj.get(k) if isinstance(obj, dict) else None
        if t.path in AS_LIST:
            obj = obj[0] if isinstance(obj, list) and len(obj) == 1 else None
        if obj is not None and _inside(t.spec, obj):
            out[t.name] = obj
    return out


def bound_values(raw: dict[str, Any], plan: SearchPlan) -> list[dict[str, Any]]:
    """The trials ``explore_bounds`` queues: each end of each numeric range in turn, the other
    keys at the recipe's values (:func:`recipe_values`), at most ``trials // 4`` of them.

    Why: a sampler's first trials are random, and a 12-trial study rarely lands on a range's end,
    which is where the fastest (most compressed) and the most accurate (least compressed)
    artifacts usually lie; a grid visits them by construction."""
    base = recipe_values(raw, plan)
    out: list[dict[str, Any]] = []
    for t in plan.targets:
        if t.spec.type == "categorical":
            continue
        for end in (t.spec.low, t.spec.high):
            v = int(end) if t.spec.type == "int" else float(end)
            if base.get(t.name) != v and _inside(t.spec, v):
                out.append({**base, t.name: v})
    return out[: plan.spec.trials // 4]


def _inside(p: SearchParam, v: Any) -> bool:
    if p.type == "categorical":
        return any(type(v) is type(c) and v == c for c in p.choices or [])
    if isinstance(v, bool) or not isinstance(v, int | float) or not p.low <= v <= p.high:
        return False
    if p.type == "int":
        return isinstance(v, int) and (v - int(p.low)) % int(p.step or 1) == 0
    return not p.step or abs((v - p.low) / p.step - round((v - p.low) / p.step)) < 1e-9


def _check_values(raw: dict[str, Any], plan: SearchPlan, source: str) -> None:
    """Every choice (or both ends of a range) must make a valid recipe: one line per problem."""
    from edgeslim.recipe import parse_recipe

    problems: list[str] = []
    for t in plan.targets:
        for v in t.values():
            try:
                parse_recipe(apply_values(raw, plan, {t.name: v}), source)
            except RecipeError as exc:
                problems += [f"{source}: search.params.{t.name} (stage key {t.path}, value {v!r}): "
                             f"{line.split(': ', 2)[-1]}" for line in exc.problems]
                break
    if problems:
        raise RecipeError(list(dict.fromkeys(problems)))
