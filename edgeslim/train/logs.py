"""Per-epoch metric files (JSONL, CSV), TensorBoard scalars and checkpoint files of a fit."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from edgeslim.fsutil import atomic_write_text


def _scalars(rec: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class MetricsLog:
    """Writes ``metrics.jsonl`` + ``metrics.csv`` (rewritten whole each epoch) and TensorBoard.

    Rewriting the small files each epoch means a resumed fit reproduces the full history.
    """

    def __init__(self, folder: Path | None, tensorboard: bool):
        self.folder, self._tb, self._tb_wanted, self._tb_logged = folder, None, tensorboard, 0
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def write(self, history: list[dict[str, Any]]) -> None:
        if self.folder is None or not history:
            return
        atomic_write_text(
            self.folder / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history)
        )
        cols = list(dict.fromkeys(k for r in history for k in _scalars(r)))
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in history:
            w.writerow(_scalars(r))
        atomic_write_text(self.folder / "metrics.csv", out.getvalue())
        self._tensorboard(history)

    def _tensorboard(self, history: list[dict[str, Any]]) -> None:
        if not self._tb_wanted:
            return
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # optional extra: logs still go to JSONL/CSV
                self._tb_wanted = False
                return
            self._tb = SummaryWriter(str(self.folder / "tensorboard"))
        for rec in history[self._tb_logged :]:
            for k, v in _scalars(rec).items():
                if k != "epoch":
                    self._tb.add_scalar(k.replace("_", "/", 1), v, rec["epoch"])
        self._tb_logged = len(history)
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def epoch_summary(rec: dict[str, Any], monitor: str | None = None) -> str:
    """The figures of one epoch record for a progress line: ``loss 0.4512 val_loss 0.4011
    val_acc 0.8750 time 1.9s`` (keys the record lacks are left out; ``monitor`` is added when it
    is another figure, e.g. ``val_macro_f1 0.8412``)."""
    shown = [("train_loss", "loss"), ("val_loss", "val_loss"), ("val_top1", "val_acc")]
    if monitor and monitor not in ("train_loss", "val_loss", "val_top1"):
        shown.append((monitor, monitor))
    parts = [f"{label} {rec[key]:.4f}" for key, label in shown
             if isinstance(rec.get(key), (int, float)) and not isinstance(rec.get(key), bool)]
    if isinstance(rec.get("epoch_train_s"), (int, float)):
        parts.append(f"time {rec['epoch_train_s']:.1f}s")
    return " ".join(parts)
