"""Shared helpers of the latency_*.py benchmarks: the plain conv nets the gate is tested on."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EDGESLIM = [sys.executable, "-m", "edgeslim"]


def plain_cnn(body_layers: int, width: int = 32):
    """stem conv + ``body_layers`` identical 3x3 convs + head: one more body layer adds a known
    share of the work (about 16% at 6 -> 7 layers)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(body_layers):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    return nn.Sequential(*layers).eval()


def export(model, path: Path, image_size: int = 32) -> Path:
    from edgeslim.onnxio.export import export_onnx

    export_onnx(model, (3, image_size, image_size), path, dynamic_batch=False)
    return path


def run_cli(*args: str) -> tuple[int, str, float]:
    """Run ``edgeslim ARGS`` in a fresh process (what CI does); return (code, stdout, seconds)."""
    t0 = time.perf_counter()
    p = subprocess.run([*EDGESLIM, *args], capture_output=True, text=True, check=False)
    if p.returncode not in (0, 1):
        raise RuntimeError(
            f"edgeslim {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-400:]}"
        )
    return p.returncode, p.stdout, time.perf_counter() - t0


def write_result(name: str, obj: dict) -> Path:
    from edgeslim.fsutil import atomic_write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, obj)
    print(json.dumps({k: v for k, v in obj.items() if not isinstance(v, list)}, indent=1))
    return path
