"""Backend-against-backend agreement: relative error and top-1 agreement (pure numpy).

The gate for a second runtime: OpenVINO f32 against onnxruntime in its precise mode on the
same ONNX and the same inputs. ``deploy/parity.py`` builds its per-output reports on the same
two measures (max abs error relative to ``max |reference|``; argmax agreement).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def relative_error(ref: np.ndarray, got: np.ndarray) -> float:
    """max |ref - got| / max |ref| (0 when both are all zero, inf on a shape mismatch)."""
    r, g = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    if r.shape != g.shape:
        return float("inf")
    err = float(np.max(np.abs(r - g))) if r.size else 0.0
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    return err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))


def top1_agreement(ref: np.ndarray, got: np.ndarray) -> float:
    """Share of rows whose argmax agrees (2-D logits)."""
    return float((np.asarray(ref).argmax(-1) == np.asarray(got).argmax(-1)).mean())


def decisive_rows(ref: np.ndarray, min_margin: float) -> np.ndarray:
    """Rows whose reference top-1 beats its runner-up by ``min_margin`` logit standard deviations.

    A near-tie (random or untrained weights, a blurry image) flips under any rounding, so its
    top-1 says nothing about a lower precision; the margin is in units of the row's own spread
    so it is scale-free. A single-output row has no runner-up and is never decisive.
    """
    r = np.asarray(ref, np.float64).reshape(len(ref), -1)
    if r.shape[1] < 2:
        return np.zeros(len(r), bool)
    top2 = np.sort(r, axis=1)[:, -2:]
    spread = r.std(axis=1)
    return (top2[:, 1] - top2[:, 0]) >= min_margin * np.where(spread > 0, spread, np.inf)


def run_batches(backend: Any, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """First output of ``backend.run`` over ``x`` in batches, concatenated."""
    return np.concatenate([backend.run(x[i:i + batch]) for i in range(0, len(x), batch)])


def compare_backends(reference: Any, candidate: Any, x: np.ndarray, batch: int = 16) -> dict[str, Any]:
    """Relative error and top-1 agreement of ``candidate`` against ``reference`` on inputs ``x``."""
    ref, got = run_batches(reference, x, batch), run_batches(candidate, x, batch)
    return {"n": int(len(x)), "rel_err": relative_error(ref, got), "top1_agreement": top1_agreement(ref, got),
            "max_abs_err": float(np.max(np.abs(ref.astype(np.float64) - got))) if ref.shape == got.shape
            else float("inf")}
