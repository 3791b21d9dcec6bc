"""Verify, before shipping, that each runtime a bundle may run scores what the run measured.

A run's accuracy is measured in onnxruntime (the quantize and export stages evaluate there). A
target's runner may open another runtime first: the x86-cpu profile tries OpenVINO, then
onnxruntime. For a float model the two agree to ~1e-6 (benchmarks/openvino_zoo_parity.py), but an
INT8 QDQ graph is re-fused by each runtime its own way, and they can disagree: OpenVINO 2026.4
scored a symmetric-INT8 (TensorRT-style) model 6 points below onnxruntime (0.8667 vs 0.9278) on
the same test images. Shipping that bundle would run a model less accurate than the report says.

So for an INT8 model, every other CPU runtime of the bundle's order that is installed here is run
on the run's test split beside onnxruntime. One more than ``budget`` points below the reference
(the quantize stage's default budget) is dropped from the order and listed under ``skipped``
with the measured figures; the figures of every check are kept under ``verified``. A runtime that
cannot run here (TensorRT on a CPU host, a library not installed) is listed under ``unverified``
with the reason, so the manifest says what was and was not checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = "onnxruntime"
BUDGET_POINTS = 1.0
MAX_IMAGES = 1000  # enough for a 0.3-point resolution; bounds deploy time on big test splits


def needs_check(section: dict[str, Any]) -> list[str]:
    """The backends of ``section`` (a manifest ``runtime`` section) that run INT8 and are not the
    reference, when the reference is in the order (else there is nothing to fall back to)."""
    order, backends = section["order"], section["backends"]
    if REFERENCE not in order:
        return []
    return [b for b in order if b != REFERENCE and backends[b].get("precision") == "int8"]


def _top1(backend: Any, x: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([backend.run(x[i:i + batch]) for i in range(0, len(x), batch)]).argmax(1)


def _why_not_here(name: str) -> str | None:
    from edgeslim.runtime.providers import backend_spec
    from edgeslim.runtime.registry import unavailable_reason

    if "cpu" not in backend_spec(name).devices:
        return f"{name} does not run on this host's CPU; verify on the device (runner.py --images)"
    try:  # probes this backend only (available_backends would probe every one)
        why = unavailable_reason(name)
    except ImportError as exc:
        why = str(exc)
    return f"{why}; install it to verify before shipping" if why else None


def verify_runtimes(onnx_path: Path, section: dict[str, Any], data: Any, threads: int | None,
                    budget: float = BUDGET_POINTS) -> dict[str, Any]:
    """``section`` with each INT8 runtime checked against onnxruntime on ``data``'s test split.

    ``data`` is the run's DataBundle (or None when it cannot be rebuilt here). Returns a new
    section; a runtime more than ``budget`` top-1 points below the reference is removed from
    ``order``/``backends`` and added to ``skipped``.
    """
    todo = needs_check(section)
    if not todo:
        return section
    out = {**section, "order": list(section["order"]), "backends": dict(section["backends"]),
           "skipped": dict(section.get("skipped", {})), "verified": {}, "unverified": {}}
    if data is None:
        out["unverified"] = {b: "the run's data cannot be read here" for b in todo}
        return out
    from edgeslim.runtime import open_backend

    x, y = (t.numpy() for t in data.dataset("test").tensors())
    x, y = x[:MAX_IMAGES], y[:MAX_IMAGES]
    ref = _top1(open_backend(onnx_path, REFERENCE, threads=threads), x)
    ref_acc = float((ref == y).mean())
    for name in todo:
        why = _why_not_here(name)
        if why:
            out["unverified"][name] = why
            continue
        got = _top1(open_backend(onnx_path, name, threads=threads), x)
        acc = float((got == y).mean())
        rec = {"top1": round(acc, 4), "reference": REFERENCE, "reference_top1": round(ref_acc, 4),
               "agreement": round(float((got == ref).mean()), 4), "images": int(len(y)), "budget_points": budget}
        rec["kept"] = (ref_acc - acc) * 100 <= budget
        out["verified"][name] = rec
        if not rec["kept"]:
            _drop(out, name, f"{name} scored {acc:.4f} top-1 on the test split where {REFERENCE} scores "
                             f"{ref_acc:.4f} on the same INT8 file ({len(y)} images; more than {budget:g} "
                             f"point(s) lower): the runner uses {REFERENCE}")
    return out


def _drop(section: dict[str, Any], name: str, why: str) -> None:
    section["order"].remove(name)
    section["backends"].pop(name)
    section["skipped"][name] = why
    chosen = section.get("chosen")
    if chosen and chosen.get("applied") and chosen.get("backend") == name:
        section["chosen"] = {**chosen, "applied": False, "why": why}
