#!/usr/bin/env python3
"""Standalone edge runner: needs only numpy plus onnxruntime or tensorrt (no torch, no edgeslim).

Shipped inside every deploy bundle; also importable as ``edgeslim.deploy.runner`` so the
timing loop and summary statistics exist in exactly one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

RESULT_SCHEMA = "edgeslim.bench/1"


def time_calls(fn: Callable[[], object], warmup: int = 10, min_iters: int = 50, min_time_s: float = 1.0,
               max_iters: int = 100_000) -> list[float]:
    """Call ``fn`` ``warmup`` times, then until both ``min_iters`` calls and ``min_time_s`` seconds
    have passed; return per-call wall times in milliseconds."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max_iters and (len(samples) < min_iters or time.perf_counter() - start < min_time_s):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def summarize(samples_ms: list[float], batch: int = 1) -> dict:
    """mean, median, p90/p95/p99, std, min, max (ms) and throughput (items/s)."""
    a = np.asarray(samples_ms, dtype=np.float64)
    med = float(np.median(a))
    return {"iters": int(a.size), "mean_ms": float(a.mean()), "median_ms": med,
            "p90_ms": float(np.percentile(a, 90)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "std_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min_ms": float(a.min()), "max_ms": float(a.max()),
            "throughput": float(batch * 1e3 / med) if med > 0 else 0.0}
