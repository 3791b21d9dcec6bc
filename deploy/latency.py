"""Quick median latency used by the pipeline for each stage's ``latency_ms``.

It times with the same ``time_calls``/``summarize`` as ``edgeslim bench`` and the device
runner (``deploy/runner.py``), so a stage's latency_ms and a bench median are the same kind
of number; only the iteration count differs.
"""

from __future__ import annotations

from typing import Any

from edgeslim.deploy.runner import summarize, time_calls


def quick_latency_ms(
    backend: Any, input_shape: tuple[int, ...], iters: int = 50, warmup: int = 5, batch: int = 1
) -> float:
    """Median wall time (ms) of ``iters`` calls of ``backend.run`` after ``warmup`` calls.

    Args:
        backend: anything with ``run(np.ndarray)`` (deploy.backends).
        input_shape: one input without the batch dimension, e.g. (3, 32, 32).
        iters: timed calls (no minimum duration: this runs after every stage).
        warmup: untimed calls first.
        batch: batch size of each call.
    """
    from edgeslim.deploy.bench import make_input

    x = make_input(tuple(input_shape), batch)
    samples = time_calls(
        lambda: backend.run(x), warmup=warmup, min_iters=iters, min_time_s=0.0, max_iters=iters
    )
    return float(summarize(samples, batch)["median_ms"])
