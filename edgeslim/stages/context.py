"""What a stage receives (StageContext) and what it returns (StageOutput)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeslim.data.build import ModelNorm
    from edgeslim.data.bundle import DataBundle
    from edgeslim.progress import Reporter
    from edgeslim.recipe import DataSpec, ModelSpec, Recipe

# Sources whose weights were trained elsewhere, with a normalisation edgeslim cannot see.
_TRAINED_KINDS = ("onnx", "exported", "torchscript", "edgeslim", "object")


def model_norm(spec: ModelSpec) -> ModelNorm:
    """The normalisation ``model:`` brings (see ``data.build.ModelNorm``).

    torchvision weights: their transforms' mean/std; timm: the architecture's pretrained
    config; an edgeslim model.pt: the mean/std its run used (``normalization`` in its run.json).
    A user's checkpoint or frozen graph brings none: ``data.mean/std`` apply, else a warning.
    """
    from edgeslim.data.build import ModelNorm
    from edgeslim.models.source_registry import source_info, source_normalization

    info = source_info(spec.source)
    trained = bool(spec.checkpoint or spec.weights) or info.kind in _TRAINED_KINDS
    got = source_normalization(spec.source, spec.weights)
    where = (f"{spec.source} weights {spec.weights} transforms" if info.kind == "torchvision"
             else f"{spec.source} pretrained config")
    if got is None and info.kind == "edgeslim" and info.file is not None:
        got, where = _run_normalization(info.file)
    if got is None:
        return ModelNorm(trained=trained)
    return ModelNorm(tuple(got[0]), tuple(got[1]), where, trained)


def _run_normalization(model_file: Path) -> tuple[Any, str]:
    """mean/std recorded in the run.json of the run that saved ``runs/x/NN-stage/model.pt``."""
    import json

    run_json = model_file.resolve().parent.parent / "run.json"
    try:
        norm = json.loads(run_json.read_text()).get("normalization") or {}
        if isinstance(norm.get("mean"), list) and isinstance(norm.get("std"), list):
            return (norm["mean"], norm["std"]), f"{run_json} normalization"
    except (OSError, ValueError, AttributeError):
        pass  # not inside a run folder, or an older run: the recipe's data.mean/std apply
    return None, ""


@dataclass
class StageRecord:
    """A completed (or failed) stage as written in run.json."""

    index: int
    name: str
    dir: Path
    status: str = "pending"
    key: str = ""
    wall_s: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    artifact: str | None = None  # file name inside dir: model.pt or model.onnx
    model_file: str | None = None  # model.pt when the stage saved a torch model
    onnx_file: str | None = None
    class_names: list[str] | None = None
    error: str | None = None

    @classmethod
    def from_meta(cls, m: dict[str, Any], folder: Path) -> StageRecord:
        """The inverse of :meth:`to_json` for a finished stage's meta.json.

        meta.json's ``artifact`` is run-relative (``00-pretrain/model.pt``) while the record
        keeps the bare file name; it is derived the way ``finish_stage`` set it (the ONNX file
        when there is one, else the torch model) instead of being read back and prefixed again.
        """
        artifact = m.get("onnx_file") or m.get("model_file")
        return cls(int(m["index"]), str(m["name"]), folder, "completed", str(m["key"]), float(m.get("wall_s", 0.0)),
                   dict(m.get("metrics") or {}), artifact, m.get("model_file"), m.get("onnx_file"),
                   m.get("class_names"))

    def to_json(self, run_dir: Path) -> dict[str, Any]:
        rel = self.dir.relative_to(run_dir).as_posix() if self.dir.is_relative_to(run_dir) else str(self.dir)
        return {
            "index": self.index, "name": self.name, "dir": rel, "status": self.status, "key": self.key,
            "wall_s": round(self.wall_s, 3), "artifact": f"{rel}/{self.artifact}" if self.artifact else None,
            "model_file": self.model_file, "onnx_file": self.onnx_file, "class_names": self.class_names,
            "metrics": self.metrics, "error": self.error,
        }


@dataclass
class StageOutput:
    """What a stage hands back to the runner.

    model: a torch model (carrying its spec) to save as ``model.pt``; it becomes the current model.
    onnx: path of an ONNX file written inside ``ctx.workdir``; it becomes the deployable artifact
        and the standard metrics (accuracy, latency, size) are measured on it in onnxruntime.
    metrics: stage-specific figures; the runner adds params, macs, size_bytes, test_accuracy and
        latency_ms unless the stage set them (or ``measure`` is False).
    """

    model: nn.Module | None = None
    onnx: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    data: DataSpec | None = None  # the data the model was trained/evaluated on, when not recipe.data
    measure: bool = True


@dataclass
class StageContext:
    recipe: Recipe
    index: int
    workdir: Path
    run_dir: Path
    seed: int
    device: torch.device
    reporter: Reporter
    history: list[StageRecord]
    model_path: Path | None = None  # model.pt of the last stage that saved a torch model
    onnx_path: Path | None = None  # last ONNX artifact in the chain
    class_names: list[str] | None = None  # classes the current model predicts
    key: str = ""  # this stage's cache key (settings, upstream stages, data fingerprint)
    _model: Any = None
    _norm: Any = None

    @property
    def model(self) -> Any:
        """The current model, loaded on first use; stages may modify their copy.

        The model.pt of the last stage that saved one, else the recipe's starting model
        (``models.factory.starting_model``): an nn.Module, or a ``FrozenModel`` for an ONNX /
        TorchScript / ExportedProgram source. A recipe may start at any stage.
        """
        if self._model is None:
            if self.model_path is not None:
                from edgeslim.models.serialize import load_model

                self._model = load_model(self.model_path)
            else:
                self._model = self.starting_model()
        return self._model

    @property
    def from_source(self) -> bool:
        """True when no earlier stage saved a model: :attr:`model` is the recipe's ``model:``."""
        return self.model_path is None

    def starting_model(self) -> Any:
        """The recipe's ``model:`` built for the recipe's data (classes, channels)."""
        from edgeslim.models.factory import starting_model

        data = self.data()
        return starting_model(self.recipe.model, data.input_shape[0], data.num_classes)

    def editable_model(self, stage: str) -> nn.Module:
        """The current model as an nn.Module this stage may edit; a frozen source is refused
        with the one-line reason (``edgeslim validate`` says the same before a run)."""
        from edgeslim.errors import InputError

        if self.from_source:
            from edgeslim.models.source_registry import frozen_refusal

            reason = frozen_refusal(self.recipe.model.source, stage, needs_module=True)
            if reason:
                raise InputError(reason)
        return self.model

    def require_model(self, stage: str) -> Any:
        """The current model (an nn.Module or a FrozenModel): every stage has one."""
        return self.model

    def data(self, override: DataSpec | None = None) -> DataBundle:
        from edgeslim.data import build_data

        if self._norm is None:
            self._norm = model_norm(self.recipe.model)
        return build_data(override or self.recipe.data, self.recipe.run.seed, self._norm)

    def find(self, name: str) -> StageRecord | None:
        """The latest completed earlier stage called ``name``."""
        for rec in reversed(self.history):
            if rec.name == name and rec.status == "completed":
                return rec
        return None

    def load_model_of(self, rec: StageRecord) -> nn.Module:
        from edgeslim.errors import StageError
        from edgeslim.models.serialize import load_model

        if not rec.model_file:
            raise StageError(f"stage {rec.index:02d}-{rec.name} saved no torch model")
        return load_model(rec.dir / rec.model_file)

    def log(self, msg: str) -> None:
        self.reporter.log(msg)
