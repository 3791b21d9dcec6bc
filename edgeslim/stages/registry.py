"""The stage registry: a stage is a config class plus a run function, registered by name.

Adding a stage is one new module with ``@register_stage("name", NameConfig)``; the pipeline
runner never changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeslim.config import Config
from edgeslim.errors import unknown_name

if TYPE_CHECKING:
    from edgeslim.stages.context import StageContext, StageOutput


class StageConfig(Config):
    """Base of every stage's settings. ``stage`` is the registered name."""

    stage: str
    label: str | None = None  # optional folder suffix, e.g. "prune-50"

    def needs(self) -> tuple[str, ...]:
        """What this stage takes from the chain, checked by ``edgeslim validate``.

        ``module``: an editable nn.Module (the recipe's model when it has a Python class, or an
        earlier stage's); ``torch``: a model torch can run (also a TorchScript / .pt2 source);
        ``onnx``: an ONNX an earlier stage wrote; ``model_file``: a model.pt an earlier stage
        saved; ``artifact``: either of the last two. Every stage gets *a* model: with no earlier
        stage, the recipe's ``model:`` is opened.
        """
        return ()

    def makes(self) -> tuple[str, ...]:
        """What this stage adds to the chain for later stages (same names as :meth:`needs`)."""
        return ()


RunFn = Callable[["StageConfig", "StageContext"], "StageOutput"]


@dataclass(frozen=True)
class StageDef:
    name: str
    config_cls: type[StageConfig]
    run: RunFn
    doc: str


_STAGES: dict[str, StageDef] = {}

# Modules that register stages. Optional ones (not yet written, or whose dependency is
# missing) are skipped only when the module itself is absent.
STAGE_MODULES = (
    "edgeslim.stages.core",
    "edgeslim.stages.finetune",
    "edgeslim.compress.stages",
    "edgeslim.deploy.export.stage",
    "edgeslim.deploy.bundle.stage",
    "edgeslim.deploy.gate.stage",
)


def register_stage(name: str, config_cls: type[StageConfig]) -> Callable[[RunFn], RunFn]:
    def deco(fn: RunFn) -> RunFn:
        if name in _STAGES:
            raise ValueError(f"stage '{name}' is already registered")
        _STAGES[name] = StageDef(name, config_cls, fn, (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


def load_stage_modules() -> None:
    for mod in STAGE_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def get_stage(name: str) -> StageDef:
    load_stage_modules()
    if name not in _STAGES:
        raise unknown_name("stage", name, _STAGES)
    return _STAGES[name]


def stage_names() -> list[str]:
    load_stage_modules()
    return sorted(_STAGES)
