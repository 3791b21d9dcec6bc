"""Recipe settings of the compression stages (distill, prune, quantize)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgeslim.config import Config
from edgeslim.stages.registry import StageConfig
from edgeslim.train.config import ModeKeys, TrainConfig


class BudgetMixin(Config):
    """``accuracy_budget`` / ``on_budget``: the accuracy guard every compressing stage has."""

    on_budget: Literal["warn", "fail"] = Field(
        "fail", description="what a drop over accuracy_budget does: fail the stage, or warn and keep the model"
    )


class KDSpec(Config):
    """Knowledge distillation from a float teacher during recovery / QAT."""

    teacher: str = Field(
        "auto", description="auto: the model before this stage; or an earlier stage's name"
    )
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(
        0.7, ge=0, le=1, description="weight of the KD term (1 - alpha goes to the labels)"
    )


class FeatureKD(Config):
    student_layers: list[str]
    teacher_layers: list[str]
    weight: float = Field(1.0, ge=0)


class StudentSpec(ModeKeys):
    kind: Literal["current", "width", "model"] = Field(
        "current",
        description="current: the chain's model (e.g. pruned); width: a thinner teacher copy; "
        "model: a registry architecture",
    )
    width: float = Field(0.5, gt=0, lt=1, description="kind=width: fraction of channels kept")
    source: str | None = Field(
        None, description="kind=model: registry name (tinycnn, torchvision:resnet18 ...)"
    )
    kwargs: dict = Field(default_factory=dict, description="kind=model: builder arguments")

    def inactive_keys(self) -> dict[str, str]:
        out = {} if self.kind == "width" else {"width": "kind: width"}
        if self.kind != "model":
            out.update(source="kind: model", kwargs="kind: model")
        return out

    @model_validator(mode="after")
    def _model_needs_source(self) -> StudentSpec:
        if self.kind == "model" and not self.source:
            raise ValueError("kind: model needs source (a model name), e.g. student: {kind: model, source: tinycnn}")
        return self


class DistillConfig(StageConfig, BudgetMixin):
    stage: Literal["distill"] = "distill"
    accuracy_budget: float = Field(
        5.0, ge=0, description="max validation top-1 drop of the student vs the chain's model, in points"
    )
    teacher: str | list[str] = Field("current", description="stage name(s); a list is an ensemble")
    student: StudentSpec = Field(default_factory=StudentSpec)
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.7, ge=0, le=1)
    features: FeatureKD | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)

    def needs(self) -> tuple[str, ...]:
        if self.student.kind in ("current", "width"):  # the student is the chain's model, or a copy of it
            return ("module",)
        teachers = [self.teacher] if isinstance(self.teacher, str) else self.teacher
        return ("torch",) if "current" in teachers else ()

    def makes(self) -> tuple[str, ...]:
        return ("module", "torch", "model_file")


class PruneTarget(Config):
    """Exactly one of: channel ratio removed, or the fraction of MACs / params to keep."""

    ratio: float | None = Field(
        None, gt=0, lt=1, description="fraction of channels removed per layer"
    )
    macs: float | None = Field(
        None, gt=0, lt=1, description="keep at most this fraction of the MACs"
    )
    params: float | None = Field(
        None, gt=0, lt=1, description="keep at most this fraction of the parameters"
    )

    @model_validator(mode="after")
    def _one(self) -> PruneTarget:
        given = [k for k in ("ratio", "macs", "params") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of ratio, macs, params (given: {', '.join(given) or 'none'}); "
                "e.g. target: {macs: 0.4}"
            )
        return self


class Recovery(Config):
    train: TrainConfig | None = Field(
        None, description="fine-tuning after each pruning step (none: skip)"
    )
    kd: KDSpec | None = Field(None, description="distill from the unpruned model while recovering")


class SparseSpec(Config):
    """Group-lasso sparse pre-training: pushes whole channels towards zero before pruning."""

    reg: float = Field(1e-4, gt=0)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=2))


class PruneConfig(StageConfig, BudgetMixin):
    stage: Literal["prune"] = "prune"
    accuracy_budget: float = Field(
        5.0, ge=0, description="max validation top-1 drop vs the unpruned model (after recovery), in points"
    )
    bn_recalibrate_batches: int = Field(
        20, ge=0, description="training batches that re-estimate BatchNorm statistics after each pruning "
        "step (train-mode BN, no gradients); 0 disables"
    )
    importance: Literal["l1", "l2", "bn_scale", "taylor", "random"] = "l2"
    scope: Literal["local", "global"] = "local"
    target: PruneTarget = Field(default_factory=lambda: PruneTarget(ratio=0.5))
    steps: int = Field(1, ge=1, le=50, description="iterative pruning steps (recovery after each)")
    round_to: int | None = Field(
        8, ge=1, description="channel counts rounded to a multiple of this"
    )
    ignored_layers: list[str] | None = Field(
        None, description="layers never pruned (default: the head)"
    )
    max_ratio: float = Field(0.95, gt=0, lt=1, description="no layer loses more than this fraction")
    recovery: Recovery = Field(default_factory=Recovery)
    sparse: SparseSpec | None = None

    def needs(self) -> tuple[str, ...]:
        return ("module",)

    def makes(self) -> tuple[str, ...]:
        return ("module", "torch", "model_file")


class CalibSpec(ModeKeys):
    samples: int = Field(128, ge=1)
    source: Literal["train", "folder"] = "train"
    folder: str | None = Field(None, description="source=folder: images or .npy inputs")
    seed: int | None = Field(None, description="default: the run seed")

    def inactive_keys(self) -> dict[str, str]:
        return {} if self.source == "folder" else {"folder": "source: folder"}

    @model_validator(mode="after")
    def _folder_needs_path(self) -> CalibSpec:
        if self.source == "folder" and not self.folder:
            raise ValueError("source: folder needs folder (a path), e.g. calibration: {source: folder, folder: calib/}")
        return self


class QatSpec(Config):
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=2))
    kd: KDSpec | None = None


class SensitivitySpec(Config):
    enabled: bool = True
    max_float_layers: int = Field(8, ge=1)


class TargetSpec(Config):
    """Where the model will run. ``target: jetson-orin-nano`` (a deploy profile name) is short for
    ``target: {profile: jetson-orin-nano}``: the INT8 model is built the way that runtime takes it."""

    profile: str | None = Field(
        None, description="deploy profile the model must suit (default: the recipe's deploy stage target)"
    )
    providers: list[str] = Field(default_factory=lambda: ["CPUExecutionProvider"])
    threads: int | None = Field(None, ge=1, description="default: run.threads")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: object) -> object:
        return {"profile": value} if isinstance(value, str) else value

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is not None:
            from edgeslim.deploy.profiles import get_profile

            get_profile(value)  # an unknown name raises with the valid ones and a did-you-mean
        return value


QuantPrecision = Literal["int8", "int8_dynamic", "fp16", "bf16", "fp32"]


class QuantizeConfig(StageConfig, BudgetMixin, ModeKeys):
    stage: Literal["quantize"] = "quantize"
    precision: Literal["int8", "int8_dynamic", "fp16", "bf16", "fp32", "auto"] = "int8"
    candidates: list[QuantPrecision] | None = Field(
        None,
        description="precision: auto: the precisions to measure (default fp32, int8, int8_dynamic, bf16 where "
        "the CPU has it natively; +fp16 on a GPU), each in every backend that runs it",
    )
    backends: list[str] | None = Field(
        None,
        description="runtimes the candidates are measured in (default: the target's runtimes, e.g. x86-cpu: "
        "openvino, onnxruntime; no target: onnxruntime)",
    )
    method: Literal["ptq", "qat"] = "ptq"
    calibration: CalibSpec = Field(default_factory=CalibSpec)
    calibrate_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    percentile: float = Field(99.999, gt=90, le=100)
    per_channel: bool = True
    symmetric_activations: bool | None = Field(
        None, description="int8 activations with zero point 0; default: true for a TensorRT target, else false"
    )
    reduce_range: bool = False
    preprocess: bool = True
    accuracy_budget: float = Field(
        1.0, ge=0, description="max validation top-1 drop vs the float ONNX (onnxruntime), in points"
    )
    sensitivity: SensitivitySpec = Field(default_factory=SensitivitySpec)
    exclude_layers: list[str] = Field(
        default_factory=list, description="ONNX node names kept in float"
    )
    qat: QatSpec = Field(default_factory=QatSpec)
    target: TargetSpec = Field(default_factory=TargetSpec)
    opset: int = Field(17, ge=13, le=23, description="must be <= what the target's runtime parses")
    latency_iters: int = Field(100, ge=5, description="timed batch-1 calls per candidate (interleaved rounds)")

    def needs(self) -> tuple[str, ...]:
        return ("module",) if self.method == "qat" else ()

    def makes(self) -> tuple[str, ...]:
        return ("onnx",)

    def inactive_keys(self) -> dict[str, str]:
        out = {} if self.method == "qat" else {"qat": "method: qat"}
        if self.precision != "auto":
            out["candidates"] = "precision: auto"
        return out

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        from edgeslim.errors import unknown_name
        from edgeslim.runtime.providers import BACKENDS

        if not value:
            raise ValueError("backends is empty; list one or more of " + ", ".join(BACKENDS))
        for name in value:
            if name not in BACKENDS or name == "torch":
                raise unknown_name("quantize backend", name, [b for b in BACKENDS if b != "torch"])
        return list(dict.fromkeys(value))
