"""Quick median latency used by the pipeline for each stage's ``latency_ms``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def quick_latency_ms(backend: Any, input_shape: tuple[int, ...], iters: int = 50, warmup: int = 5,
                     batch: int = 1) -> float:
    """Median wall time of ``iters`` runs at batch 1 after ``warmup`` runs."""
    x = np.random.default_rng(0).standard_normal((batch, *input_shape)).astype(np.float32)
    for _ in range(warmup):
        backend.run(x)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.run(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)
