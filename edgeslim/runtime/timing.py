"""The timing core: one ``time_calls``/``summarize`` for bench, check, stages and the device runner.

The two primitives live in ``portable.py`` (shipped inside bundles); this module re-exports them
and adds what only the tool needs: a fixed input, a quick median for stage metrics, and
interleaved rounds for comparing several backends in one process fairly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeslim.runtime.portable import summarize, time_calls

__all__ = ["time_calls", "summarize", "make_input", "quick_latency_ms", "interleaved_rounds",
           "interleaved_summary"]


def make_input(shape: tuple[int, ...], batch: int = 1, seed: int = 0) -> np.ndarray:
    """A fixed float32 batch of ``shape`` (no batch dim); latency does not depend on the values."""
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def quick_latency_ms(
    backend: Any, input_shape: tuple[int, ...], iters: int = 50, warmup: int = 5, batch: int = 1
) -> float:
    """Median wall time (ms) of ``iters`` calls of ``backend.run`` after ``warmup`` calls.

    Args:
        backend: anything with ``run(np.ndarray)``.
        input_shape: one input without the batch dimension, e.g. (3, 32, 32).
        iters: timed calls (no minimum duration: this runs after every stage).
        warmup: untimed calls first.
        batch: batch size of each call.
    """
    x = make_input(tuple(input_shape), batch)
    samples = time_calls(lambda: backend.run(x), warmup=warmup, min_iters=iters, min_time_s=0.0, max_iters=iters)
    return float(summarize(samples, batch)["median_ms"])


def interleaved_rounds(
    fns: dict[str, Callable[[], object]], rounds: int, calls: int, warmup: int = 3
) -> dict[str, list[list[float]]]:
    """Time every function in rounds; each round runs ``calls`` calls of each, in an order that
    rotates by one every round (A B C, B C A, C A B, ...).

    Machine noise (other jobs, frequency changes) then falls on every function alike and no
    one gains by going first, so ratios are fair even when absolute figures drift.

    Returns:
        name -> one list of per-call milliseconds per round.
    """
    names = list(fns)
    for n in names:
        time_calls(fns[n], warmup=warmup, min_iters=0, min_time_s=0.0, max_iters=0)
    out: dict[str, list[list[float]]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names) if names else 0
        for n in names[k:] + names[:k]:
            out[n].append(time_calls(fns[n], warmup=0, min_iters=calls, min_time_s=0.0, max_iters=calls))
    return out


def interleaved_summary(per_round: dict[str, list[list[float]]], batch: int = 1) -> dict[str, dict[str, Any]]:
    """``summarize`` over all calls of each function, plus the spread of per-round medians."""
    out = {}
    for n, rounds in per_round.items():
        flat = [s for r in rounds for s in r]
        meds = [float(np.median(r)) for r in rounds if r]
        s = summarize(flat, batch)
        s["round_medians_ms"] = [round(m, 4) for m in meds]
        s["rounds"] = len(rounds)
        out[n] = s
    return out
