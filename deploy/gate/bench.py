"""``edgeslim bench``: latency, throughput and memory of an artifact, with a host fingerprint.

Timing and per-run statistics come from ``edgeslim.runtime.timing`` (``time_calls``/
``summarize`` of ``runtime/portable.py``), the very file a bundle ships to its device runner,
so a local and a remote number mean the same thing. Artifacts (ONNX, OpenVINO IR, TensorRT
engines, edgeslim model.pt, registry names, bundle folders) open in a runtime backend chosen by
``--backend`` or the file type (``artifact.py``), which adds the input shape, size, params, MACs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError
from edgeslim.runtime.portable import RESULT_SCHEMA
from edgeslim.runtime.timing import make_input, summarize, time_calls

# Fields of the host fingerprint that must match before two stored results may be compared.
FINGERPRINT_KEYS = ("cpu", "cores", "machine", "gpu", "gpu_driver")


@dataclass
class BenchOptions:
    """How to measure. ``min_iters`` AND ``min_time_s`` must both be reached per batch size."""

    batches: list[int] = field(default_factory=lambda: [1])
    warmup: int = 10
    min_iters: int = 50
    min_time_s: float = 1.0
    threads: int | None = None  # intra-op threads (None: the runtime's default)
    inter_threads: int | None = None
    provider: str = "auto"  # onnx in onnxruntime: auto | cpu | cuda | tensorrt
    device: str = "cpu"  # torch artifacts: cpu | cuda
    backend: str | None = None  # onnxruntime | openvino | torch | tensorrt (None: by file type)
    precision: str | None = None  # e.g. bf16 on openvino (None: what the artifact holds)
    image_size: int | None = None  # torch artifacts / ONNX with dynamic spatial dims
    in_chans: int = 3
    checkpoint: str | None = None  # registry name + local weights
    num_classes: int | None = None
    seed: int = 0


# --------------------------------------------------------------------------- host fingerprint


def _nvidia_smi(query: str) -> list[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, f"--query-{query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return (
        [ln.strip() for ln in out.stdout.splitlines() if ln.strip()] if out.returncode == 0 else []
    )


def host_fingerprint() -> dict[str, Any]:
    """runrecord.host_info plus GPU driver and the runtime versions that change latency.

    torch is not imported for this: the GPU comes from ``nvidia-smi`` (or from torch when the
    artifact already loaded it).
    """
    from edgeslim.runrecord import host_info, versions

    info = host_info(with_gpu=False)
    gpus = _nvidia_smi("gpu=name,driver_version")
    if gpus:
        name, _, driver = gpus[0].partition(",")
        info["gpu"], info["gpu_driver"], info["gpu_count"] = name.strip(), driver.strip(), len(gpus)
    elif "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        torch = sys.modules["torch"]
        info["gpu"], info["cuda"] = torch.cuda.get_device_name(0), torch.version.cuda
    v = versions()
    info["runtimes"] = {k: v.get(k) for k in ("python", "numpy", "onnxruntime", "torch")}
    import importlib.metadata as md

    for name in ("openvino", "tensorrt"):  # versions without importing them
        try:
            info["runtimes"][name] = md.version(name)
        except Exception:  # not installed (PackageNotFoundError) or broken metadata
            info["runtimes"][name] = None
    from edgeslim.runtime.portable import CPU_FLAGS, cpu_features

    feats = cpu_features()  # what decides INT8/BF16 speed: shown beside every number
    info["cpu_flags"] = [f for f in CPU_FLAGS if feats.get(f)]
    return info


def fingerprint_mismatch(
    a: dict[str, Any], b: dict[str, Any], runtime: str | None = None
) -> list[str]:
    """Differences between two host fingerprints that make their latencies incomparable."""
    diffs = [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in FINGERPRINT_KEYS if a.get(k) != b.get(k)]
    if runtime:
        ra, rb = (a.get("runtimes") or {}).get(runtime), (b.get("runtimes") or {}).get(runtime)
        if ra != rb:
            diffs.append(f"{runtime} version: {ra!r} vs {rb!r}")
    return diffs


# --------------------------------------------------------------------------- memory probes


def reset_peak_rss() -> None:
    """Reset the process's peak-RSS mark (Linux), so each batch size reports its own peak."""
    # Not Linux or not permitted: the lifetime peak is reported instead.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (since the last reset on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def gpu_memory_mb(backend: Any) -> float | None:
    """GPU memory this process holds (MiB): torch's peak on CUDA, else nvidia-smi's per-process."""
    torch = sys.modules.get("torch")
    dev = getattr(backend, "device", None)
    if torch is not None and dev is not None and getattr(dev, "type", "") == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    for row in _nvidia_smi("compute-apps=pid,used_memory"):
        pid, _, used = row.partition(",")
        if pid.strip() == str(os.getpid()):
            return float(used)
    return None


# --------------------------------------------------------------------------- measuring


def one_line(exc: BaseException, limit: int = 300) -> str:
    """The exception's text on one line, its middle cut when long (onnxruntime puts the source
    location first and the useful sentence -- 'cannot be reshaped ... Input shape: ...' -- last)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else f"{text[:100]} ... {text[-(limit - 105):]}"


def quiet_runtime_logs() -> None:
    """onnxruntime logs a failing node to stderr itself (colour codes, several lines); bench and
    check report the failure in one line of their own, so its logger keeps only fatal errors."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        onnxruntime.set_default_logger_severity(4)


def run_failure(what: str, exc: BaseException) -> InputError:
    """A model that raises when it runs is bad input (exit 2), told in one line."""
    return InputError(f"{what} failed at run time ({type(exc).__name__}: {one_line(exc)}); check "
                      "that it runs on its own: edgeslim bench FILE")


def measure_batch(
    backend: Any, input_shape: tuple[int, ...], batch: int, opts: BenchOptions
) -> dict[str, Any]:
    """Time one batch size: warm-up, then until ``min_iters`` and ``min_time_s`` both pass."""
    x = make_input(input_shape, batch, opts.seed)
    torch = sys.modules.get("torch")
    dev = getattr(backend, "device", None)
    if torch is not None and getattr(dev, "type", "") == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    reset_peak_rss()
    samples = time_calls(
        lambda: backend.run(x),
        warmup=opts.warmup,
        min_iters=opts.min_iters,
        min_time_s=opts.min_time_s,
    )
    out = {"batch": batch, **summarize(samples, batch), "peak_rss_mb": round(peak_rss_mb(), 2)}
    gpu = gpu_memory_mb(backend)
    if gpu is not None:
        out["gpu_memory_mb"] = round(gpu, 2)
    out["samples_ms"] = [round(s, 5) for s in samples]
    return out


def run_benchmark(
    artifact: str | os.PathLike, opts: BenchOptions | None = None, reporter: Any = None
) -> dict[str, Any]:
    """Benchmark an artifact at each batch size of ``opts.batches``; return the result dict.

    Args:
        artifact: .onnx, .engine/.plan, edgeslim model.pt, a bundle/stage folder, or a registry
            name (``tinyresnet``, ``torchvision:resnet18``).
        opts: measurement settings.
        reporter: optional edgeslim.progress.Reporter for a progress bar over batch sizes.

    Returns:
        A JSON-able dict (schema ``edgeslim.bench/1``): the first batch size's statistics at
        the top level, every batch size under ``sweep``, raw ``samples_ms`` included.
    """
    from edgeslim.deploy.gate.artifact import open_artifact

    opts = opts or BenchOptions()
    art = open_artifact(artifact, opts)
    for b in opts.batches:
        if art.fixed_batch is not None and b != art.fixed_batch:
            raise InputError(
                f"'{artifact}' has a fixed batch size of {art.fixed_batch}; --batch {b} "
                f"is not possible; use --batch {art.fixed_batch} or export with a dynamic batch"
            )
    from edgeslim.progress import NULL

    sweep = []
    with (reporter or NULL).task("bench", total=len(opts.batches)) as advance:
        for b in opts.batches:
            try:
                sweep.append(measure_batch(art.backend, art.input_shape, b, opts))
            except Exception as exc:  # onnxruntime/OpenVINO raise their own types
                raise run_failure(f"'{art.name}' (batch {b})", exc) from exc
            advance(1, info=f"batch {b}: {sweep[-1]['median_ms']:.3f} ms")
    first = dict(sweep[0])
    result: dict[str, Any] = {
        "schema": RESULT_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **first,
        "artifact": art.describe(),
        "settings": _settings(opts, art),
        "host": host_fingerprint(),
        "sweep": sweep,
    }
    return result


def _settings(opts: BenchOptions, art: Any) -> dict[str, Any]:
    return {
        "warmup": opts.warmup,
        "min_iters": opts.min_iters,
        "min_time_s": opts.min_time_s,
        "batches": list(opts.batches),
        "input_shape": list(art.input_shape),
        "intra_op_threads": art.threads.get("intra"),
        "inter_op_threads": art.threads.get("inter"),
        "threads_requested": {"intra": opts.threads, "inter": opts.inter_threads},
        "backend": art.backend_name,
        "providers": art.providers,
        "device": art.device,
        "runtime": art.runtime(),
    }


# --------------------------------------------------------------------------- output


_COLS = (
    ("median_ms", 7),
    ("mean_ms", 7),
    ("p90_ms", 7),
    ("p95_ms", 7),
    ("p99_ms", 7),
    ("std_ms", 6),
    ("min_ms", 7),
)


def _num(v: Any) -> str:
    return f"{v:,}" if isinstance(v, (int, float)) else "-"


def format_table(result: dict[str, Any]) -> str:
    """Human summary: one row per batch size, then artifact and host lines."""
    a, s, h = result["artifact"], result["settings"], result["host"]
    head = (
        f"{'batch':>5} {'median':>9} {'mean':>9} {'p90':>9} {'p95':>9} {'p99':>9} {'std':>8} "
        f"{'min':>9} {'items/s':>10} {'iters':>6} {'peak RSS':>10}"
    )
    lines = [
        f"{a['name']}  ({a['kind']}, {s['backend']}"
        f"{' ' + ','.join(s['providers']) if s.get('providers') else ''}, "
        f"threads intra={s['intra_op_threads']} inter={s['inter_op_threads']})",
        head,
    ]
    for r in result["sweep"]:
        mem = f"{r['peak_rss_mb']:.0f} MiB" if r.get("peak_rss_mb") is not None else "-"
        if r.get("gpu_memory_mb") is not None:
            mem += f" / GPU {r['gpu_memory_mb']:.0f}"
        ms = " ".join(f"{r[k]:>{w}.3f}ms" for k, w in _COLS)
        lines.append(f"{r['batch']:>5} {ms} {r['throughput']:>10.1f} {r['iters']:>6} {mem:>10}")
    macs, params = _num(a.get("macs")), _num(a.get("params"))
    lines.append(
        f"size {_num(a.get('size_bytes'))} B   params {params}   MACs {macs}   "
        f"input {s['input_shape']}"
    )
    gpu = (
        f"   GPU {h['gpu']} (driver {h.get('gpu_driver') or h.get('cuda') or '?'})"
        if h.get("gpu")
        else ""
    )
    where = f" (remote {h['remote']})" if h.get("remote") else ""
    lines.append(f"host {h.get('cpu')} x{h.get('cores')}{gpu}{where}")
    return "\n".join(lines)


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read a stored bench JSON, refusing anything that is not an ``edgeslim.bench/1`` result."""
    import json

    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"bench result '{p}' does not exist; create one with: edgeslim bench MODEL --json {p}"
        )
    try:
        obj = json.loads(p.read_text())
    except OSError as exc:
        raise InputError(f"bench result '{p}' cannot be read ({exc.strerror or exc}); check its permissions") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            f"'{p}' is not valid JSON ({exc}); pass a file written by edgeslim bench --json"
        ) from exc
    if not isinstance(obj, dict) or obj.get("schema") != RESULT_SCHEMA or "samples_ms" not in obj:
        got = obj.get("schema") if isinstance(obj, dict) else type(obj).__name__
        raise InputError(
            f"'{p}' is not an edgeslim bench result (schema {got!r}, expected "
            f"{RESULT_SCHEMA!r} with samples_ms); write one with: edgeslim bench MODEL --json FILE"
        )
    return obj
