"""The part of the runtime layer that also runs on a device without edgeslim: stdlib + numpy only.

Why this file exists (the single-source design): the bundle's runner (``runner.py``) is shipped
to devices that have numpy and an inference library but not edgeslim, yet it must time, probe
the CPU and open sessions exactly as ``edgeslim bench``/``check``/``precision: auto`` do. So:

* **Code** both sides need lives here once: the timing core (``time_calls``/``summarize`` and
  ``RESULT_SCHEMA``), the CPU feature probe (``cpu_features``/``bf16_support``) and the
  translation of a session config
  into onnxruntime ``SessionOptions`` and OpenVINO compile properties (``ort_session_options``,
  ``ov_compile_config``). The bundle copies this file verbatim next to ``runner.py`` as
  ``edgeslim_portable.py`` (hashed in the manifest like every file); the runner loads that copy
  by its path once the manifest has verified it (never through sys.path).
* **Data** (which providers, which precisions, which properties) is decided by
  ``edgeslim.runtime.providers`` when the bundle is built and written into ``manifest.json`` as a
  resolved session config (``providers.runner_config``). The runner holds no provider table.

Hence this module imports nothing from edgeslim and nothing but the standard library and numpy
(a test parses its imports), and takes the onnxruntime/OpenVINO module objects as arguments.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- timing core

RESULT_SCHEMA = "edgeslim.bench/1"  # a bench result, from edgeslim bench or a device's runner


def time_calls(
    fn: Callable[[], object],
    warmup: int = 10,
    min_iters: int = 50,
    min_time_s: float = 1.0,
    max_iters: int = 100_000,
) -> list[float]:
    """Call ``fn`` ``warmup`` times, then until both ``min_iters`` calls and ``min_time_s`` seconds
    have passed; return per-call wall times in milliseconds."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < max_iters and (
        len(samples) < min_iters or time.perf_counter() - start < min_time_s
    ):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def summarize(samples_ms: list[float], batch: int = 1) -> dict:
    """mean, median, p90/p95/p99, std, min, max (ms) and throughput (items/s)."""
    a = np.asarray(samples_ms, dtype=np.float64)
    med = float(np.median(a))
    return {
        "iters": int(a.size),
        "mean_ms": float(a.mean()),
        "median_ms": med,
        "p90_ms": float(np.percentile(a, 90)),
        "p95_ms": float(np.percentile(a, 95)),
        "p99_ms": float(np.percentile(a, 99)),
        "std_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "throughput": float(batch * 1e3 / med) if med > 0 else 0.0,
    }


# --------------------------------------------------------------------------- CPU probe

# Flags that decide which reduced precisions a CPU runs natively (Linux /proc/cpuinfo names).
CPU_FLAGS = (
    "avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
)


def read_cpuinfo() -> str:
    """The text of /proc/cpuinfo, or "" where there is none (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def cpu_features(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model and the flags in :data:`CPU_FLAGS` (True/False) from a /proc/cpuinfo text.

    ``cpuinfo`` defaults to this machine's; tests pass a fake one. x86 lists ``flags``, Arm lists
    ``Features`` (where ``bf16``/``i8mm`` are the matching names, reported under ``arm``).
    """
    text = read_cpuinfo() if cpuinfo is None else cpuinfo
    model, flags = "", set()
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware") and not model:
            model = val.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(val.split())
    out: dict[str, Any] = {"model": model, "cores": os.cpu_count()}
    out.update({f: f in flags for f in CPU_FLAGS})
    out["arm"] = {f: f in flags for f in ("bf16", "i8mm", "asimddp")} if "asimd" in flags else None
    out["known"] = bool(flags)
    return out


def bf16_support(features: dict[str, Any]) -> tuple[bool, str]:
    """(native, why): BF16 is a latency candidate only where the CPU computes it natively.

    Native means AVX512_BF16 (dot products, Zen 4 / Cooper Lake and later) or AMX-BF16 (Sapphire
    Rapids and later). Elsewhere OpenVINO would emulate BF16 through FP32, which is slower than
    FP32 and less accurate, so the reason is recorded instead.
    """
    if not features.get("known"):
        return False, "CPU flags unknown (no /proc/cpuinfo): BF16 not assumed native"
    have = [f for f in ("amx_bf16", "avx512_bf16") if features.get(f)]
    if have:
        return True, f"native BF16 ({', '.join(have)})"
    return False, "no native BF16 on this CPU (needs avx512_bf16 or amx_bf16 in /proc/cpuinfo)"


def int8_support(features: dict[str, Any]) -> tuple[bool, str]:
    """(fast, why): INT8 always runs; VNNI/AMX-INT8 is what makes it fast."""
    have = [f for f in ("amx_int8", "avx512_vnni", "avx_vnni") if features.get(f)]
    if have:
        return True, f"INT8 dot products in hardware ({', '.join(have)})"
    return False, "no VNNI/AMX-INT8: INT8 runs but gains less over FP32"


# --------------------------------------------------------------------------- session configs

ORT_OPT_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
                  "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def ort_session_options(ort: Any, cfg: dict[str, Any]) -> Any:
    """onnxruntime ``SessionOptions`` from a JSON-able config (every setting explicit).

    Keys: ``threads`` (intra-op, None = onnxruntime's default: all cores), ``inter_threads``,
    ``allow_spinning`` (bool), ``execution_mode`` (sequential|parallel), ``graph_optimization``
    (disabled|basic|extended|all) and ``precise`` (reference run: basic graph optimizations,
    deterministic compute, no reduced-precision fast math).
    """
    so = ort.SessionOptions()
    if cfg.get("threads"):
        so.intra_op_num_threads = int(cfg["threads"])
    if cfg.get("inter_threads"):
        so.inter_op_num_threads = int(cfg["inter_threads"])
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if cfg.get("allow_spinning") else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if cfg.get("allow_spinning") else "0")
    parallel = cfg.get("execution_mode", "sequential") == "parallel"
    so.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    level = "basic" if cfg.get("precise") else cfg.get("graph_optimization", "all")
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_OPT_LEVELS[level])
    if cfg.get("precise"):
        so.use_deterministic_compute = True
        # Arm builds may run FP32 GEMMs in BF16 when this is on; a reference run never does.
        so.add_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16", "0")
    return so


def ov_compile_config(cfg: dict[str, Any]) -> dict[str, str]:
    """OpenVINO CPU ``compile_model`` properties from a JSON-able config.

    Keys: ``threads`` (INFERENCE_NUM_THREADS), ``inference_precision`` (f32|bf16), ``pinning``
    (ENABLE_CPU_PINNING, default on), ``precise`` (EXECUTION_MODE_HINT=ACCURACY). Always one
    stream and the latency hint: batch-1 latency is what edgeslim measures and ships.
    """
    out = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_PRECISION_HINT": str(cfg.get("inference_precision") or "f32"),
        "ENABLE_CPU_PINNING": "YES" if cfg.get("pinning", True) else "NO",
    }
    if cfg.get("threads"):
        out["INFERENCE_NUM_THREADS"] = str(int(cfg["threads"]))
    if cfg.get("precise"):
        out["EXECUTION_MODE_HINT"] = "ACCURACY"
    return out
