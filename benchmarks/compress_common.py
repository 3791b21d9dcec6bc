"""Shared helpers of the compression benchmarks: interleaved latency, JSON output."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def interleaved_latency_ms(
    runners: dict[str, Any], x: np.ndarray, rounds: int = 7, iters: int = 15, warmup: int = 5
) -> dict[str, dict[str, float]]:
    """Median batch latency of each runner, measured in alternating rounds in one process.

    Alternating rounds spread machine noise (other jobs on a shared box) evenly over the runners,
    so ratios are fair even when absolute figures drift.
    """
    for fn in runners.values():
        for _ in range(warmup):
            fn(x)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            for _ in range(iters):
                t0 = time.perf_counter()
                fn(x)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {
        k: {
            "median_ms": round(float(np.median(v)), 4),
            "p90_ms": round(float(np.percentile(v, 90)), 4),
            "n": len(v),
        }
        for k, v in times.items()
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    from edgeslim.fsutil import atomic_write_json

    payload = {
        "benchmark": name,
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor(),
            "machine": platform.machine(),
        },
        **payload,
    }
    path = atomic_write_json(RESULTS / f"{name}.json", payload)
    print(json.dumps(payload, indent=2)[:4000])
    return path
