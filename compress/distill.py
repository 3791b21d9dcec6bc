"""Knowledge distillation losses (Hinton KD, ensembles, feature distillation with 1x1 adapters).

Every loss here has the shared engine's signature ``loss_fn(logits, targets, inputs)`` so
distillation, recovery after pruning and QAT all train through ``edgeslim.train.engine.fit``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from edgeslim.compress.prune import resolve_layers
from edgeslim.errors import InputError

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ADAPTER_ATTR = "_kd_adapters"


def soft_targets(
    teachers: Sequence[nn.Module], x: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Softened class probabilities averaged over the teacher ensemble."""
    with torch.no_grad():
        probs = [F.softmax(t(x) / temperature, dim=1) for t in teachers]
    return torch.stack(probs).mean(0)


def hinton_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    y: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """``alpha * T^2 * KL(teacher || student) + (1 - alpha) * CE(student, y)``."""
    log_p = F.log_softmax(student_logits / temperature, dim=1)
    kd = F.kl_div(log_p, teacher_probs, reduction="batchmean") * temperature**2
    return alpha * kd + (1 - alpha) * F.cross_entropy(student_logits, y)


@dataclass
class FeaturePairs:
    """Student/teacher layer pairs whose outputs are matched through learnable 1x1 adapters."""

    student_layers: list[str]
    teacher_layers: list[str]
    weight: float = 1.0
    _s_feats: dict[str, torch.Tensor] = field(default_factory=dict)
    _t_feats: dict[str, torch.Tensor] = field(default_factory=dict)
    _handles: list = field(default_factory=list)

    def attach(
        self, student: nn.Module, teacher: nn.Module, example: torch.Tensor
    ) -> nn.ModuleList:
        """Hook both models and build adapters (kept on the student while training)."""
        if len(self.student_layers) != len(self.teacher_layers):
            raise InputError(
                f"distill.features: {len(self.student_layers)} student_layers but "
                f"{len(self.teacher_layers)} teacher_layers; give one per student layer"
            )
        for mods, names, store in (
            (resolve_layers(student, self.student_layers), self.student_layers, self._s_feats),
            (resolve_layers(teacher, self.teacher_layers), self.teacher_layers, self._t_feats),
        ):
            for mod, name in zip(mods, names, strict=True):
                self._handles.append(
                    mod.register_forward_hook(
                        lambda m, a, out, n=name, s=store: s.__setitem__(n, out)
                    )
                )
        with torch.no_grad():
            student.eval(), teacher.eval()
            student(example), teacher(example)
        adapters = nn.ModuleList()
        for sn, tn in zip(self.student_layers, self.teacher_layers, strict=True):
            s, t = self._s_feats[sn], self._t_feats[tn]
            adapters.append(_adapter(s.shape[1], t.shape[1], s.dim()))
        self.adapters = adapters
        return adapters

    def loss(self) -> torch.Tensor:
        total = torch.zeros(())
        for ad, sn, tn in zip(self.adapters, self.student_layers, self.teacher_layers, strict=True):
            s, t = ad(self._s_feats[sn]), self._t_feats[tn].detach()
            if s.dim() == 4 and s.shape[-2:] != t.shape[-2:]:
                s = F.adaptive_avg_pool2d(s, t.shape[-2:])
            total = total + F.mse_loss(s, t)
        return self.weight * total

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _adapter(cin: int, cout: int, dim: int) -> nn.Module:
    return nn.Conv2d(cin, cout, 1, bias=False) if dim == 4 else nn.Linear(cin, cout, bias=False)


def kd_loss(
    teachers: Sequence[nn.Module],
    temperature: float = 4.0,
    alpha: float = 0.7,
    features: FeaturePairs | None = None,
) -> LossFn:
    """A loss for ``fit``: Hinton KD from ``teachers`` (+ optional feature matching)."""
    for t in teachers:
        t.eval()
        for p in t.parameters():
            p.requires_grad_(False)

    placed: list[torch.device] = []

    def loss(logits: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if placed != [x.device]:  # the engine moved the student (e.g. to CUDA): follow it once
            for t in teachers:
                t.to(x.device)
            placed[:] = [x.device]
        # Teachers run on the same (augmented) batch the student saw.
        out = hinton_loss(logits, soft_targets(teachers, x, temperature), y, temperature, alpha)
        if features is not None:
            out = out + features.loss()
        return out

    return loss


def attach_adapters(student: nn.Module, adapters: nn.Module) -> None:
    """Adapters ride on the student during training so the engine's optimizer updates them."""
    student.add_module(ADAPTER_ATTR, adapters)


def detach_adapters(student: nn.Module) -> None:
    """Remove the adapters before saving: they are not part of the deployed network."""
    if ADAPTER_ATTR in student._modules:
        del student._modules[ADAPTER_ATTR]
