"""The non-dominated front of (accuracy up, latency down) points and its 2-D hypervolume.

Hypervolume: the area of the (latency, accuracy) region that some point of the front dominates,
bounded by a reference point (``ref_accuracy``, ``ref_latency_ms``): for every latency bound
``L`` up to the reference, the best accuracy reachable at latency <= L, integrated over L (a
sweep over the points sorted by latency). Normalised by the reference box
``ref_latency_ms x (1 - ref_accuracy)`` (accuracy is a fraction), so 1.0 would be a point of
accuracy 1 at latency 0. The reference is written next to every figure: hypervolumes are only
comparable under the same reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REF_LATENCY_FACTOR = 1.1  # reference latency = 1.1 x the slowest observed point


def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """``a`` is at least as good in both objectives and better in one."""
    ge = a["accuracy"] >= b["accuracy"] and a["latency_ms"] <= b["latency_ms"]
    return ge and (a["accuracy"] > b["accuracy"] or a["latency_ms"] < b["latency_ms"])


def pareto_front(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points no other point dominates, fastest first; of equal points the first given is kept.

    >>> pareto_front([{"accuracy": .9, "latency_ms": 1.0}, {"accuracy": .8, "latency_ms": 2.0},
    ...               {"accuracy": .95, "latency_ms": 3.0}])
    [{'accuracy': 0.9, 'latency_ms': 1.0}, {'accuracy': 0.95, 'latency_ms': 3.0}]
    """
    front: list[dict[str, Any]] = []
    seen: set[tuple[float, float]] = set()
    for p in points:
        key = (float(p["accuracy"]), float(p["latency_ms"]))
        if key in seen or any(dominates(q, p) for q in points):
            continue
        seen.add(key)
        front.append(p)
    return sorted(front, key=lambda p: (p["latency_ms"], -p["accuracy"]))


def hypervolume(points: Sequence[dict[str, Any]], ref_latency_ms: float, ref_accuracy: float = 0.0) -> float:
    """Area dominated by ``points`` inside the reference box (unnormalised: accuracy x ms).

    >>> hypervolume([{"accuracy": 0.5, "latency_ms": 1.0}, {"accuracy": 1.0, "latency_ms": 2.0}], 4.0)
    2.5
    """
    best, area = ref_accuracy, 0.0
    inside = sorted((p for p in points if p["latency_ms"] < ref_latency_ms and p["accuracy"] > ref_accuracy),
                    key=lambda p: p["latency_ms"])
    edges = [p["latency_ms"] for p in inside[1:]] + [ref_latency_ms] if inside else []
    for p, right in zip(inside, edges, strict=True):
        best = max(best, float(p["accuracy"]))
        area += (best - ref_accuracy) * (right - p["latency_ms"])
    return area


def reference(points: Sequence[dict[str, Any]], ref_accuracy: float = 0.0) -> dict[str, float]:
    """The default reference point: accuracy 0, latency 1.1 x the slowest point."""
    slowest = max((float(p["latency_ms"]) for p in points), default=0.0)
    return {"accuracy": ref_accuracy, "latency_ms": REF_LATENCY_FACTOR * slowest}


def hypervolume_report(points: Sequence[dict[str, Any]], ref: dict[str, float] | None = None) -> dict[str, Any]:
    """``{value, normalized, reference}`` for ``points`` (all trials; dominated ones add nothing)."""
    ref = ref or reference(points)
    box = ref["latency_ms"] * (1.0 - ref["accuracy"])
    hv = hypervolume(points, ref["latency_ms"], ref["accuracy"])
    return {"value": hv, "normalized": hv / box if box > 0 else 0.0, "reference": dict(ref),
            "units": "validation accuracy (fraction) x latency (ms)",
            "reference_rule": f"accuracy {ref['accuracy']:g}, latency {REF_LATENCY_FACTOR:g} x the slowest point "
                              "unless given; normalized = value / (ref latency x (1 - ref accuracy))"}
