"""The zoo file: ``models:`` (one entry per model) plus default settings at the top level.

.. code-block:: yaml

    input_size: 64            # defaults for every model (any ZooSettings key)
    precisions: [fp32, int8]
    models:
      - source: torchvision:squeezenet1_1
      - source: timm:resnet18d
        input_size: 96          # a per-model override
      - source: nets/mynet.py:Net
        checkpoint: weights.pt
        calibration: calib/     # images or .npy inputs for static INT8

Read with the bounded YAML loader; validated by pydantic with one line per problem and
"did you mean". Family shortcuts (``--torchvision``, ``--timm PATTERN``) add entries.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from edgeslim.config import Config
from edgeslim.errors import InputError, RecipeError, did_you_mean

SCHEMA = "edgeslim.zoo/1"
PRECISIONS = ("fp32", "int8")


class ZooSettings(Config):
    """What is done to each model; every key may be a default (top level) or a per-model override."""

    input_size: int | None = Field(None, ge=8, le=1024, description="image side; default: the source's own")
    channels: Literal[1, 3] = 3
    num_classes: int | None = Field(None, ge=1, le=100_000, description="head size; default: the builder's")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="builder arguments")
    checkpoint: str | None = Field(None, description="weights for the model (state dict / safetensors)")
    opset: int = Field(18, ge=13, le=23)
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto"
    precisions: list[Literal["fp32", "int8"]] = Field(default_factory=lambda: ["fp32", "int8"])
    int8: Literal["auto", "static", "static_matmul", "dynamic"] = Field(
        "auto", description="auto: static_matmul for a graph with attention (a Softmax node), else static; "
        "static: QDQ on every op onnxruntime quantizes; static_matmul: QDQ on the weight layers only "
        "(Conv/MatMul/Gemm with a constant input; attention, norms, GELU, Adds stay float); dynamic: "
        "activations at run time")
    calibration: str | None = Field(None, description="folder of images/.npy for static INT8; default: "
                                    "synthetic shape images (labelled as such in the row)")
    calibration_samples: int = Field(32, ge=1, le=10_000)
    parity_samples: int = Field(16, ge=1, le=10_000)
    rtol: float = Field(1e-4, ge=0, description="FP32 parity: error allowed relative to max|reference|")
    atol: float = Field(0.0, ge=0, description="FP32 parity: absolute error allowed on top")
    min_agreement: float = Field(0.99, ge=0, le=1, description="FP32 parity: top-1 agreement")
    int8_min_agreement: float = Field(0.9, ge=0, le=1, description="INT8 top-1 agreement with FP32, "
                                      "on the images where FP32's top-1 is decisive")
    int8_min_margin: float = Field(0.5, ge=0, description="a decisive image: FP32 top-1 minus runner-up "
                                   ">= this many logit standard deviations")
    int8_min_decisive: int = Field(8, ge=1, le=10_000, description="fewer decisive images: agreement "
                                   "is inconclusive and only the error gate applies")
    int8_max_rel_err: float = Field(0.3, gt=0, description="INT8 gate: max |INT8 - FP32| / max |FP32|")
    backends: list[str] = Field(default_factory=lambda: ["onnxruntime"], min_length=1)
    latency_iters: int = Field(50, ge=1, le=100_000)
    latency_warmup: int = Field(5, ge=0, le=10_000)
    threads: int = Field(1, ge=1, le=512, description="intra-op threads of torch and the runtimes")
    timeout_s: float = Field(900.0, gt=0, description="per model; a hang past it becomes a failed row")
    memory_gb: float | None = Field(None, gt=0, description="address-space cap of the worker; "
                                    "default: 80% of RAM / workers")
    seed: int = 0
    randomize_zero_weights: bool = Field(True, description="random-init zero heads (ViT) get random "
                                         "values, so parity is not 0 vs 0 (never with a checkpoint)")

    @field_validator("precisions")
    @classmethod
    def _fp32_first(cls, v: list[str]) -> list[str]:
        if "fp32" not in v:
            raise ValueError("must include fp32 (INT8 is made from the FP32 export), e.g. [fp32, int8]")
        return list(dict.fromkeys(v))

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, v: list[str]) -> list[str]:
        from edgeslim.runtime.registry import backend_names

        names = [n for n in backend_names() if n not in ("torch", "tensorrt")]
        for b in v:
            if b not in names:
                raise ValueError(f"unknown backend '{b}'{did_you_mean(b, names)}; valid: {', '.join(names)}")
        return list(dict.fromkeys(v))


_SETTING_KEYS = tuple(ZooSettings.model_fields)


class ZooEntry(Config):
    """One model: ``source`` (any model source), an optional ``name`` and setting overrides."""

    source: str = Field(..., min_length=1)
    name: str | None = Field(None, min_length=1, max_length=200)
    # every ZooSettings key may be overridden; None means "the default"
    input_size: int | None = Field(None, ge=8, le=1024)
    channels: Literal[1, 3] | None = None
    num_classes: int | None = Field(None, ge=1, le=100_000)
    kwargs: dict[str, Any] | None = None
    checkpoint: str | None = None
    opset: int | None = Field(None, ge=13, le=23)
    exporter: Literal["auto", "dynamo", "torchscript"] | None = None
    precisions: list[Literal["fp32", "int8"]] | None = None
    int8: Literal["auto", "static", "static_matmul", "dynamic"] | None = None
    calibration: str | None = None
    calibration_samples: int | None = Field(None, ge=1, le=10_000)
    parity_samples: int | None = Field(None, ge=1, le=10_000)
    rtol: float | None = Field(None, ge=0)
    atol: float | None = Field(None, ge=0)
    min_agreement: float | None = Field(None, ge=0, le=1)
    int8_min_agreement: float | None = Field(None, ge=0, le=1)
    int8_min_margin: float | None = Field(None, ge=0)
    int8_min_decisive: int | None = Field(None, ge=1, le=10_000)
    int8_max_rel_err: float | None = Field(None, gt=0)
    backends: list[str] | None = None
    latency_iters: int | None = Field(None, ge=1, le=100_000)
    latency_warmup: int | None = Field(None, ge=0, le=10_000)
    threads: int | None = Field(None, ge=1, le=512)
    timeout_s: float | None = Field(None, gt=0)
    memory_gb: float | None = Field(None, gt=0)
    seed: int | None = None
    randomize_zero_weights: bool | None = None


class ZooFile(ZooSettings):
    """The whole file: defaults (any ZooSettings key) and ``models:``."""

    models: list[ZooEntry] = Field(default_factory=list)


def default_name(source: str) -> str:
    """The matrix's ``model`` for a source: itself, or the file's base name for a path."""
    head, sep, tail = source.rpartition(":")
    if sep and ("/" in head or head.endswith(".py")):
        return f"{Path(head).name}:{tail}"
    return Path(source).name if "/" in source or "\\" in source else source


def folder_name(name: str) -> str:
    """DIR/<folder>/ for a model name: one safe path component (hash-suffixed when changed)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "model"
    if slug != name:
        slug += "-" + hashlib.sha256(name.encode()).hexdigest()[:6]
    return slug


def load_zoo_file(path: str | Path) -> ZooFile:
    """Read and validate a zoo file; RecipeError (exit 2) with one line per problem."""
    from edgeslim.recipe import format_validation
    from edgeslim.safe_yaml import load_yaml_file

    raw = load_yaml_file(path, what="zoo file")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError([f"{path}: a zoo file is a YAML mapping with 'models:' (a list of '- source: NAME') "
                           f"and optional default settings; got {type(raw).__name__}"])
    models = raw.get("models", [])
    problems: list[str] = []
    try:
        zoo = ZooFile.model_validate({**raw, "models": []})
    except ValidationError as exc:
        problems += [f"{path}: {p}" for p in format_validation(exc, ZooFile)]
        zoo = None
    if not isinstance(models, list):
        problems.append(f"{path}: models: must be a list of '- source: NAME' entries; given {type(models).__name__}")
        models = []
    entries: dict[int, ZooEntry] = {}
    for i, item in enumerate(models):
        if isinstance(item, str):  # `- timm:resnet18` is a common shorthand slip
            problems.append(f"{path}: models.{i}: write '- source: {item}' (each entry is a mapping)")
            continue
        try:
            entries[i] = ZooEntry.model_validate(item)
        except ValidationError as exc:
            problems += [f"{path}: models.{i}.{p}" for p in format_validation(exc, ZooEntry)]
    if problems:  # with what can be checked of the valid entries, so that one run lists everything
        raise RecipeError(problems + check_entries(list(entries.values()), str(path), list(entries)))
    assert zoo is not None
    zoo.models = list(entries.values())
    return zoo


def merged_settings(defaults: ZooSettings, entry: ZooEntry) -> ZooSettings:
    """The defaults with the entry's own (non-None) keys on top."""
    over = {k: v for k, v in entry.model_dump(exclude={"source", "name"}).items() if v is not None}
    base = {k: getattr(defaults, k) for k in ZooSettings.model_fields}  # a ZooFile also has models:
    return ZooSettings.model_validate({**base, **over})


def torchvision_entries(max_params: float) -> list[ZooEntry]:
    """Every torchvision classification model up to ``max_params`` (weights metadata only: no download)."""
    from torchvision import models as tvm

    rows = []
    for name in tvm.list_models(module=tvm):
        w = tvm.get_model_weights(name).DEFAULT
        if w.meta["num_params"] <= max_params:
            rows.append((int(w.meta["num_params"]), name))
    return [ZooEntry(source=f"torchvision:{n}") for _, n in sorted(rows)]


def timm_entries(pattern: str) -> list[ZooEntry]:
    """timm architectures matching ``pattern`` in the installed timm's ``list_models``."""
    from edgeslim.errors import require

    timm = require("timm", "timm")
    names = timm.list_models(pattern)  # type: ignore[attr-defined]
    if not names:
        raise InputError(f"--timm '{pattern}' matches no model of the installed timm; try a wider pattern "
                         "such as 'resnet*' (python -c 'import timm; print(timm.list_models())')")
    return [ZooEntry(source=f"timm:{n}") for n in names]


def check_entries(entries: list[ZooEntry], where: str, indices: list[int] | None = None) -> list[str]:
    """Problems pydantic cannot see: unknown sources, missing files, duplicate names."""
    from edgeslim.models.source_registry import check_source

    problems: list[str] = []
    seen: dict[str, int] = {}
    folders: dict[str, str] = {}
    timm_names = _timm_names() if any(e.source.startswith("timm:") for e in entries) else None
    for i, e in zip(indices or range(len(entries)), entries, strict=True):
        try:
            check_source(e.source)
        except InputError as exc:
            problems.append(f"{where}: models.{i}.source: {exc}")
        arch = e.source[5:] if e.source.startswith("timm:") else None
        if arch and timm_names is not None and arch not in timm_names:
            problems.append(f"{where}: models.{i}.source: unknown timm model '{arch}'"
                            f"{did_you_mean(arch, timm_names)} (the installed timm's list_models())")
        for key in ("checkpoint", "calibration"):
            val = getattr(e, key)
            if val and not Path(val).exists():
                problems.append(f"{where}: models.{i}.{key}: '{val}' does not exist (relative to {Path.cwd()})")
        name = e.name or default_name(e.source)
        if name in seen:
            problems.append(f"{where}: models.{i}: model '{name}' is listed twice (also models.{seen[name]}); "
                            "give one of them a distinct 'name:'")
        seen.setdefault(name, i)
        folder = folder_name(name)
        if folder in folders and folders[folder] != name:
            problems.append(f"{where}: models.{i}: '{name}' and '{folders[folder]}' share the folder name "
                            f"'{folder}'; give one a distinct 'name:'")
        folders.setdefault(folder, name)
    return problems


def _timm_names() -> set[str] | None:
    try:
        import timm
    except ImportError:
        return None  # building the model reports the missing package with its pip line
    return set(timm.list_models())
