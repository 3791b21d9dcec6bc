"""The Pareto plot: every completed trial, the front as a step line, axes with units and where
latency was measured. ``pareto_png`` returns PNG bytes (for embedding, e.g. as a data URI in an
HTML report); ``png_from_search_dir`` redraws it from a finished search folder's files alone.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from edgeslim.fsutil import atomic_write_bytes


def axis_label(env: dict[str, Any]) -> str:
    """'latency (ms, batch-1 median) - onnxruntime on AMD EPYC 7B13, 2 threads' (from summary.json fields)."""
    lat = env.get("latency_measured") or {}
    where = str(lat.get("where", "?")).removeprefix("local ")
    threads = f", {lat['threads']} thread(s)" if lat.get("threads") else ""
    return f"latency (ms, batch-1 median) - {lat.get('backend', '?')} on {where}{threads}"


def pareto_png(points: list[dict[str, Any]], front: list[dict[str, Any]], xlabel: str, title: str) -> bytes:
    """PNG bytes of the trials (grey) and the front (red steps, trial numbers), drawn on
    matplotlib's defaults (``edgeslim.mplstyle``)."""
    from edgeslim.mplstyle import default_style

    with default_style():
        return _draw(points, front, xlabel, title)


def _draw(points: list[dict[str, Any]], front: list[dict[str, Any]], xlabel: str, title: str) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    try:
        ax.scatter([p["latency_ms"] for p in points], [p["accuracy"] for p in points], s=22, c="#9e9e9e",
                   label=f"trials ({len(points)})", zorder=2)
        fx, fy = [p["latency_ms"] for p in front], [p["accuracy"] for p in front]
        ax.step(fx, fy, where="post", c="#d62728", lw=1.4, zorder=3)
        ax.scatter(fx, fy, s=40, c="#d62728", label=f"Pareto front ({len(front)})", zorder=4)
        for p in front:
            ax.annotate(f"#{p['trial']}", (p["latency_ms"], p["accuracy"]), textcoords="offset points",
                        xytext=(4, -10), fontsize=7)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("validation accuracy (top-1, fraction)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        return buf.getvalue()
    finally:
        plt.close(fig)


def write_pareto_png(points: list[dict[str, Any]], front: list[dict[str, Any]], out: Path, env: dict[str, Any],
                     study: str) -> Path:
    return atomic_write_bytes(out, pareto_png(points, front, axis_label(env), f"edgeslim search '{study}': "
                                              "accuracy vs measured latency of the deployed artifact"))


def png_from_search_dir(search_dir: str | Path) -> bytes | None:
    """Redraw ``<run>/search/pareto.png`` from its trials.csv and summary.json (None when absent)."""
    import json

    d = Path(search_dir)
    try:
        with open(d / "trials.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("state") == "COMPLETE"]
        summary = json.loads((d / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    pts = [{"trial": int(r["trial"]), "accuracy": float(r["accuracy"]), "latency_ms": float(r["latency_ms"]),
            "pareto": r.get("pareto") == "True"} for r in rows]
    if not pts:
        return None
    front = sorted((p for p in pts if p["pareto"]), key=lambda p: p["latency_ms"])
    return pareto_png(pts, front, axis_label(summary), f"edgeslim search '{summary.get('study', '?')}'")
