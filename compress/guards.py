"""Accuracy guards shared by every compressing stage, and BatchNorm re-estimation after pruning.

One function, :func:`check_budget`, compares a stage's model with its parent on the validation
split and fails (or warns) when the drop exceeds the stage's ``accuracy_budget``; prune,
distill and quantize all call it. :func:`chance_warning` flags a model at chance level.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeslim.errors import GateError

if TYPE_CHECKING:
    from torch import nn

    from edgeslim.data.bundle import DataBundle

# Defaults, in percentage points of validation top-1 (see README "Accuracy guards"):
# pruning and distillation trade a few points for size by design; quantization should be
# nearly lossless, and its budget also steers the sensitivity scan.
DEFAULT_BUDGET = {"prune": 5.0, "distill": 5.0, "quantize": 1.0}


def check_budget(stage: str, parent_acc: float, child_acc: float, budget: float, on_budget: str,
                 n_val: int, knobs: str, keep: Callable[[], None] | None = None) -> dict[str, Any]:
    """Compare validation top-1 with the parent's; fail or warn when the drop is over budget.

    A drop of one validation image is never judged: below that the split cannot resolve a
    difference (on a 32-image split one image is 3.1 points), so the budget applied is
    ``max(budget, 100 / n_val)`` and both are recorded.

    Args:
        stage: the stage name, used in the message and the option names.
        parent_acc, child_acc: validation top-1 (0..1) of the parent and of the stage's result.
        budget: allowed drop in points; on_budget: ``fail`` (GateError) or ``warn``.
        n_val: validation images; knobs: what to change to lose less (one phrase).
        keep: called before failing, e.g. to save the rejected model for inspection.

    Returns:
        The ``accuracy_guard`` record for the stage metrics (with ``warning`` when over budget).
    """
    drop = (parent_acc - child_acc) * 100
    resolution = 100.0 / max(n_val, 1)
    applied = max(budget, resolution)
    rec: dict[str, Any] = {
        "parent_val_top1": round(parent_acc, 4), "val_top1": round(child_acc, 4), "drop_points": round(drop, 3),
        "budget_points": budget, "applied_budget_points": round(applied, 3), "val_images": n_val,
        "on_budget": on_budget, "within_budget": drop <= applied + 1e-9,
    }
    if rec["within_budget"]:
        return rec
    msg = (
        f"{stage}: validation top-1 fell from {parent_acc:.4f} to {child_acc:.4f} ({drop:.1f} points), over its "
        f"accuracy_budget of {budget:g} points ({n_val} val images); {knobs}, or raise {stage}.accuracy_budget "
        f"(or set {stage}.on_budget: warn to keep the model anyway)"
    )
    if on_budget == "fail":
        if keep is not None:
            keep()
        raise GateError(msg)
    rec["warning"] = msg
    return rec


def chance_warning(accuracy: float, num_classes: int, n: int, what: str = "test accuracy") -> str | None:
    """A warning when ``accuracy`` is at or near chance level (1 / classes), else None.

    "Near" is within two binomial standard deviations of a random guesser on ``n`` images (at
    least 5 points), so a genuinely weak but learned model is not flagged.
    """
    if num_classes < 2 or n <= 0:
        return None
    chance = 1.0 / num_classes
    margin = max(0.05, 2 * math.sqrt(chance * (1 - chance) / n))
    if accuracy > chance + margin:
        return None
    return (
        f"{what} {accuracy:.3f} is at chance level for {num_classes} classes ({chance:.3f}): the model has not "
        "learned the task; check that data.mean/std match how the checkpoint was trained, that the class "
        "folders are in the checkpoint's order (data.classes), and the training settings"
    )


def recalibrate_bn(model: nn.Module, data: DataBundle, batches: int, batch_size: int = 32, seed: int = 0) -> int:
    """Re-estimate BatchNorm running statistics on training batches; returns batches used.

    After pruning, each BatchNorm's running mean/var describe channels of a network that no
    longer exists (its inputs lost channels upstream). A few forward passes with the BatchNorm
    layers in train mode, no gradients and ``momentum=None`` (a cumulative average, so every
    batch counts equally) replace them with the statistics of the pruned network. Dropout and
    the rest stay in eval mode, and images are not augmented: the statistics are the ones
    inference will see.
    """
    import torch
    from torch import nn

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or batches <= 0:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    used = 0
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            # drop_last: a last batch of one image cannot give a variance (BatchNorm1d after pooling)
            loader = data.loader("train", batch_size, shuffle=True, seed=seed,
                                 drop_last=len(data.train) > batch_size)
            for x, _ in loader:
                if used >= batches:
                    break
                model(x.to(dev))
                used += 1
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)
    return used
