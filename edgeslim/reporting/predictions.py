"""Test-split predictions a stage keeps (``test_predictions.npz``) and what the report makes of
them: the confusion matrix, per-class accuracy, and the per-class change between two artifacts.

Every measured stage stores its artifact's predicted class and the true class of each test image
(a few bytes per image), so the report shows the final artifact's confusion matrix, as measured
in the runtime it ships in, without running any model again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FILE = "test_predictions.npz"
# A class is flagged when it lost more than this many points from the float model AND more
# than one of its test images (a smaller change cannot be told from a single flipped image).
COLLAPSE_POINTS = 5.0


def save_predictions(folder: Path, pred: np.ndarray, labels: np.ndarray) -> Path:
    """Write ``FILE`` in ``folder`` (a stage's temp folder: it becomes visible with the stage)."""
    path = folder / FILE
    with open(path, "wb") as fh:
        np.savez(fh, pred=np.asarray(pred, dtype=np.int32), label=np.asarray(labels, dtype=np.int32))
    return path


def load_predictions(folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(pred, label) from ``folder/FILE``, or None when absent or unreadable (no pickle)."""
    path = folder / FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            pred, label = z["pred"].astype(np.int64), z["label"].astype(np.int64)
    except (OSError, ValueError, KeyError):
        return None
    if pred.shape != label.shape or pred.ndim != 1:
        return None
    return pred, label


def confusion(pred: np.ndarray, label: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    n = max(num_classes, int(max(pred.max(initial=-1), label.max(initial=-1))) + 1)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (label, pred), 1)
    return cm


@dataclass
class ClassRow:
    name: str
    n: int  # test images of the class
    accuracy: float  # the final artifact's (0..1)
    reference: float | None  # the float model's, when there is one
    change_points: float | None
    flagged: bool


def class_rows(cm: np.ndarray, names: list[str], ref_cm: np.ndarray | None) -> list[ClassRow]:
    """Per-class accuracy of ``cm`` with the change from ``ref_cm`` (same test images)."""
    rows = []
    for c in range(cm.shape[0]):
        n = int(cm[c].sum())
        acc = float(cm[c, c] / n) if n else 0.0
        ref = chg = None
        flagged = False
        if ref_cm is not None and c < ref_cm.shape[0] and ref_cm[c].sum():
            ref = float(ref_cm[c, c] / ref_cm[c].sum())
            chg = (acc - ref) * 100
            one_image = 100.0 / max(n, 1)
            flagged = -chg > max(COLLAPSE_POINTS, one_image) + 1e-9
        rows.append(ClassRow(names[c] if c < len(names) else str(c), n, acc, ref, chg, flagged))
    return rows


def collapse_warnings(rows: list[ClassRow], final: str, reference: str) -> list[str]:
    return [f"class '{r.name}' lost {-r.change_points:.1f} points in the final artifact ({final}): "
            f"{r.reference:.3f} in the float model ({reference}) -> {r.accuracy:.3f} on {r.n} test images"
            for r in rows if r.flagged and r.change_points is not None and r.reference is not None]


def summary(rows: list[ClassRow]) -> dict[str, Any]:
    return {"classes": len(rows), "flagged": [r.name for r in rows if r.flagged]}
