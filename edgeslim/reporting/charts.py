"""The report's charts as PNG bytes (matplotlib's Agg renderer, no pyplot state, no display).

Each function returns None when matplotlib is not installed; the page then says so and keeps
its tables. Output is deterministic for the same inputs (no timestamp in the PNG), so a
regenerated report is byte-identical.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from edgeslim.mplstyle import default_style

F = TypeVar("F", bound=Callable[..., Any])

PALETTE = ("#4472c4", "#ed7d31", "#70ad47", "#ffc000", "#7030a0", "#2f9e9e", "#c00000")
MISSING = "charts need matplotlib (pip install matplotlib); the tables hold the same figures"


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _styled(fn: F) -> F:
    """Draw ``fn``'s chart on matplotlib's defaults (``edgeslim.mplstyle``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not available():
            return None
        with default_style():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


@_styled
def stage_bars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
               compact: bool = False) -> bytes | None:
    """One bar chart per (title, values) side by side; a missing value leaves its bar out
    (``compact``: and its stage, so a runtime's chart shows only the stages it measured)."""
    if not available() or not series:
        return None
    fig = _figure(min(4.2 * len(series), 13), 2.9)
    axes = fig.subplots(1, len(series), squeeze=False)[0]
    for i, (ax, (title, values)) in enumerate(zip(axes, series, strict=True)):
        keep = [j for j, v in enumerate(values) if v is not None]
        names = [labels[j] for j in keep] if compact else list(labels)
        xs = list(range(len(keep))) if compact else keep
        ax.bar(xs, [values[j] for j in keep], color=PALETTE[i % len(PALETTE)], width=0.6)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 2 else 0, ha="right" if
                      len(names) > 2 else "center", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


@_styled
def training_curves(title: str, segments: Sequence[tuple[str, list[dict[str, Any]]]]) -> bytes | None:
    """Loss and accuracy per epoch; several logs (pruning's recovery after each step) follow each
    other on one axis, split by dashed lines and labelled."""
    if not available() or not any(rows for _, rows in segments):
        return None
    fig = _figure(11, 3.0)
    loss_ax, acc_ax = fig.subplots(1, 2)
    offset = 0
    for s, (label, rows) in enumerate(segments):
        xs = [offset + int(r.get("epoch", i + 1)) for i, r in enumerate(rows)]
        for ax, key, style in ((loss_ax, "train_loss", "-"), (loss_ax, "val_loss", "--"),
                               (acc_ax, "val_top1", "-"), (acc_ax, "train_top1", ":")):
            pts = [(x, r[key]) for x, r in zip(xs, rows, strict=True) if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", markersize=3,
                        color=PALETTE[s % len(PALETTE)], label=f"{label} {key}" if len(segments) > 1 else key)
        if s and rows:
            for ax in (loss_ax, acc_ax):
                ax.axvline(offset + 0.5, color="#999", linestyle="--", linewidth=0.8)
        offset = max(xs, default=offset)
    loss_ax.set_title(f"{title}: loss", fontsize=10)
    acc_ax.set_title(f"{title}: accuracy", fontsize=10)
    from matplotlib.ticker import MaxNLocator

    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch" + (" (consecutive logs)" if len(segments) > 1 else ""), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return _png(fig)


@_styled
def confusion_matrix(cm: Any, names: Sequence[str], title: str) -> bytes | None:
    """Heatmap of counts (rows: true class, columns: predicted), numbers written up to 25 classes."""
    if not available():
        return None
    import numpy as np

    n = cm.shape[0]
    side = min(max(3.5, 0.45 * n + 1.8), 12)
    fig = _figure(side + 1, side)
    ax = fig.subplots()
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the true class")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.6 else "black")
    ticks = list(range(n))
    shown = [str(x) for x in names[:n]] + [str(i) for i in range(len(names), n)]
    ax.set_xticks(ticks, shown if n <= 40 else [""] * n, rotation=45 if n > 8 else 0, fontsize=8)
    ax.set_yticks(ticks, shown if n <= 40 else [""] * n, fontsize=8)
    ax.set_xlabel("predicted", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    ax.set_title(title, fontsize=10)
    return _png(fig)


@_styled
def pareto(points: Sequence[dict[str, Any]], title: str) -> bytes | None:
    """Accuracy against latency of a search's points (front points joined by a line)."""
    pts = [p for p in points if isinstance(p.get("accuracy"), (int, float))
           and isinstance(p.get("latency_ms"), (int, float))]
    if not available() or not pts:
        return None
    fig = _figure(6.5, 4)
    ax = fig.subplots()
    pts.sort(key=lambda p: p["latency_ms"])
    ax.plot([p["latency_ms"] for p in pts], [p["accuracy"] for p in pts], "-o", color=PALETTE[0])
    ax.set_xlabel("latency ms (measured)", fontsize=9)
    ax.set_ylabel("accuracy", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _png(fig)
